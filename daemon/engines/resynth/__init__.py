"""The `resynth` engine: speech recognition → Russian stress → TTS, fitted to the source's timeline.

Stages (one module each, plain functions or small classes, models loaded once
per worker): ``asr`` (Silero VAD slots + faster-whisper words), ``stress``
(silero-stress), ``tts`` (Silero torch.package or Piper), ``fit`` (time-stretch
and placement), ``prosody`` (PRESERVE_PROSODY), ``transcript``/``align`` (SRT,
VTT, TXT beside the input), ``speak`` (a text file read aloud).

Importing this package is light; models load in ``ResynthEngine(settings)``.
"""

from daemon.engines.resynth.engine import ResynthEngine
from daemon.engines.resynth.speak import synthesize_text

__all__ = ["ResynthEngine", "synthesize_text"]
