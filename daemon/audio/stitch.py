"""Stitch chunk results back into one WAV by streaming, crossfading forced seams."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from daemon.jobs import Chunk


def read_chunk(path: str, frames: int) -> np.ndarray:
    """A chunk result, forced to exactly ``frames`` (engines keep lengths; this guards the seam maths)."""
    data, _ = sf.read(path, dtype="float32", always_2d=False)
    if data.ndim > 1:
        data = data.mean(axis=1)
    if len(data) < frames:
        data = np.concatenate([data, np.zeros(frames - len(data), np.float32)])
    return data[:frames]


def stitch(chunks: list[Chunk], outputs: list[str], total: int, rate: int, out_wav: str) -> int:
    """Write chunk results in order to ``out_wav``; return frames written (== ``total``).

    Only one chunk (plus one overlap tail) is in memory at a time.
    """
    tail = np.zeros(0, dtype=np.float32)
    written = 0
    with sf.SoundFile(out_wav, "w", samplerate=rate, channels=1, format="WAV", subtype="FLOAT") as out:
        for chunk, path in zip(chunks, outputs, strict=True):
            data = read_chunk(path, chunk.frames)
            ov = chunk.overlap_before
            if ov and len(tail):
                fade = np.linspace(0.0, 1.0, ov, dtype=np.float32)
                data[:ov] = tail * (1.0 - fade) + data[:ov] * fade
            keep = len(data) - chunk.overlap_after
            out.write(data[:keep])
            written += keep
            tail = data[keep:]
        if len(tail):  # a last chunk never has overlap_after; kept for safety
            out.write(tail)
            written += len(tail)
    if written != total:
        raise RuntimeError(f"stitched {written} frames, expected {total}")
    return written
