"""Resample a whole (short) clip in memory: a chunk for the recogniser, a phrase from the TTS.

Whole files are resampled block by block while they are decoded (``decode.py``).
"""

from __future__ import annotations

import numpy as np


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Mono float32 at ``dst`` Hz (soxr, high quality); the same samples when the rates agree."""
    if src == dst or not len(audio):
        return np.asarray(audio, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(audio, dtype=np.float32), src, dst, quality="HQ").astype(np.float32)
