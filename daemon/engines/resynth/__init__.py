"""The `resynth` engine: speech recognition → Russian stress → TTS, fitted to the source's timeline.

Stages (one module each, plain functions or small classes, models loaded once
per worker): ``asr`` (Silero VAD slots + faster-whisper words), ``stress``
(silero-stress), ``tts`` (Silero torch.package or Piper), ``fit`` (time-stretch
and placement), ``prosody`` (PRESERVE_PROSODY), ``transcript``/``align`` (SRT,
VTT, TXT beside the input), ``speak`` (a text file read aloud).  ``bundle`` holds the
worker's models (``ResynthModels``), shared by the engine and the text reader.

Importing this package is light; models load in ``ResynthEngine(settings)``.
"""

__all__ = ["ResynthEngine", "ResynthModels", "synthesize_text"]


def __getattr__(name: str):
    # Lazy: the daemon's parent imports ``transcript`` from this package and must not pull in
    # the engine's modules (and whatever they may import) along with it.
    if name == "ResynthEngine":
        from daemon.engines.resynth.engine import ResynthEngine

        return ResynthEngine
    if name == "ResynthModels":
        from daemon.engines.resynth.bundle import ResynthModels

        return ResynthModels
    if name == "synthesize_text":
        from daemon.engines.resynth.speak import synthesize_text

        return synthesize_text
    raise AttributeError(name)
