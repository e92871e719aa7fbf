"""Voice engines.  Heavy libraries are imported inside ``load_engine`` only.

An engine turns a mono float32 chunk into a chunk of exactly the same length:

    engine.process(audio, sample_rate, voice=..., hints=...) -> (audio_out, info)

``info`` is a small JSON-able dict (e.g. the phrases resynth spoke), merged into
the output's sidecar by the pipeline.  ``hints`` may carry per-chunk data such as
transcript phrases (times relative to the chunk start, in seconds).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

#: The range of voice pitch (Hz) both engines analyse with Praat.
MIN_PITCH, MAX_PITCH = 75.0, 600.0


class Engine(Protocol):
    name: str

    def process(self, audio: np.ndarray, sample_rate: int, *, voice: str,
                hints: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]: ...

    def models(self) -> list[dict[str, Any]]:
        """Models in use: name, path, sha256 (for sidecars and `voice-daemon models`)."""
        ...


def voice_folders(settings) -> frozenset[str]:
    """The voices an inbox subfolder may name (``inbox/<voice>/x.wav``): the Silero speakers
    and the configured voice."""
    from daemon.settings import SILERO_SPEAKERS

    return frozenset(SILERO_SPEAKERS) | {settings.voice}


def load_engine(settings) -> Engine:
    """Build the configured engine with its models loaded (call once per worker)."""
    if settings.engine == "shift":
        from daemon.engines.shift import ShiftEngine

        return ShiftEngine(settings)
    if settings.engine == "resynth":
        from daemon.engines.resynth import ResynthEngine

        return ResynthEngine(settings)
    raise ValueError(f"unknown engine {settings.engine!r}")
