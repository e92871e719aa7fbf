"""Voice engines.  Heavy libraries are imported inside ``load_engine`` only.

An engine turns a mono float32 chunk into a chunk of exactly the same length:

    engine.process(audio, sample_rate, voice=..., hints=...) -> (audio_out, info)

``info`` is a small JSON-able dict (e.g. the phrases resynth spoke), merged into
the output's sidecar by the pipeline.  ``hints`` may carry per-chunk data such as
transcript phrases (times relative to the chunk start, in seconds).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Collection, Protocol

import numpy as np

from daemon.capabilities import Capabilities


class Engine(Protocol):
    name: str

    def process(self, audio: np.ndarray, sample_rate: int, *, voice: str,
                hints: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]: ...

    def models(self) -> list[dict[str, Any]]:
        """Models in use: name, path, sha256 (for sidecars and `voice-daemon models`)."""
        ...


#: what each engine can do (``daemon/capabilities.py``)
_ABLE = {"shift": {},
         "resynth": {"recognises_speech": True, "reads_transcripts": True, "reads_text": True, "has_voices": True}}


def abilities(engine: str) -> Capabilities:
    """What ``engine`` can do by itself, without the voice folders and output formats the
    settings add (``capabilities``)."""
    return Capabilities(engine=engine, **_ABLE[engine])


def capabilities(settings, *, voices: Collection[str] | None = None) -> Capabilities:
    """What the configured engine can do, with the settings' output formats.  ``voices``: the
    voices an inbox folder may name (by default ``voice_folders(settings)``)."""
    from daemon.audio.io import output_formats

    return replace(abilities(settings.engine),
                   voice_folders=frozenset(voice_folders(settings) if voices is None else voices),
                   **output_formats(settings.output_format))


def voice_folders(settings) -> frozenset[str]:
    """The voices an inbox subfolder may name (``inbox/<voice>/x.wav``): those the synthesiser in
    use has now (no Silero speaker without a Silero model) and the configured voice.  `shift` has no
    voices: a folder named like a Silero speaker is only a label carried into its log lines."""
    if settings.engine == "shift":
        from daemon.settings import SILERO_SPEAKERS

        return frozenset(SILERO_SPEAKERS) | {settings.voice}
    from daemon.models.voices import folder_names

    return folder_names(settings) | {settings.voice}


def load_engine(settings) -> Engine:
    """Build the configured engine with its models loaded (call once per worker)."""
    if settings.engine == "shift":
        from daemon.engines.shift import ShiftEngine

        return ShiftEngine(settings)
    if settings.engine == "resynth":
        from daemon.engines.resynth import ResynthEngine

        return ResynthEngine(settings)
    raise ValueError(f"unknown engine {settings.engine!r}")


#: Silero's model ids whose speakers are known without loading them (``random`` picks one).
KNOWN_SILERO_SPEAKERS = {"v4_ru": ("aidar", "baya", "kseniya", "xenia", "eugene", "random"),
                         "v5_ru": ("aidar", "baya", "kseniya", "xenia", "eugene", "random")}


def voice_problem(settings, voice: str, *, explicit: bool = True) -> str | None:
    """Why ``voice`` cannot be used with the configured engine, in a few words, found without
    loading a model (so a mistake is reported before the seconds of loading); None if it can,
    or if only the loaded model could tell (a Silero ``.pt`` file of one's own).

    ``explicit``: the user chose it; the default (a Silero speaker) is fine for a
    one-speaker Piper voice, which has nothing to choose."""
    if settings.engine == "shift":
        return None if not explicit else ("the shift engine has no voices: it shifts pitch and formants "
                                          "(--semitones, --formant); voices need --engine resynth")
    from daemon.models.voices import rhvoice_for, tts_of

    tts = tts_of(settings)
    if tts == "rhvoice":
        if rhvoice_for(settings, voice) is not None:
            return None
        from daemon.models.system_tts import rhvoice_voices

        names = sorted(rhvoice_voices(settings.rhvoice_data))
        return f"not an RHVoice voice; valid: {', '.join(names)}, or a Silero name (its sex is kept)" if names else None
    if tts in ("festival", "espeak"):
        return None  # their backends check the name against what is installed when they start
    if tts == "piper":
        names = _piper_voices(settings)
        if names is None or voice in names or (len(names) == 1 and not explicit):
            return None
        return f"not a speaker of the Piper voice {settings.piper_voice}; valid: {', '.join(names)}"
    model = settings.tts_model.strip() or "v4_ru"
    names = KNOWN_SILERO_SPEAKERS.get(model)
    if names is None or voice in names:
        return None
    return f"not a speaker of the Silero model {model}; valid: {', '.join(names)}"


def _piper_voices(settings) -> list[str] | None:
    """The speakers of the configured Piper voice, from its JSON config; None if it is missing
    (the engine reports that itself when it loads, with the way out)."""
    from daemon.errors import ModelError
    from daemon.models import registry

    try:
        return registry.piper_speakers(settings)
    except ModelError:
        return None
