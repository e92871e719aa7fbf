"""Chunk planning: cut the working WAV in silences so no chunk exceeds the limit.

Pure functions over frame numbers; the VAD probabilities come from ``vad.py``.
"""

from __future__ import annotations

import numpy as np

from daemon.jobs import Chunk


def silences(probs: np.ndarray, window_s: float, rate: int, *, threshold: float = 0.5,
             min_silence_s: float = 0.25, pad_s: float = 0.05) -> list[tuple[int, int]]:
    """Frame ranges where speech probability stays below ``threshold`` for at least ``min_silence_s``.

    Each range is shrunk by ``pad_s`` at both ends so a cut never clips a word's edge.
    """
    quiet = np.asarray(probs) < threshold
    out: list[tuple[int, int]] = []
    win = window_s * rate
    pad = int(pad_s * rate)
    i, n = 0, len(quiet)
    while i < n:
        if not quiet[i]:
            i += 1
            continue
        j = i
        while j < n and quiet[j]:
            j += 1
        if (j - i) * window_s >= min_silence_s:
            s, e = int(i * win) + (pad if i else 0), int(j * win) - (pad if j < n else 0)
            if e > s:
                out.append((s, e))
        i = j
    return out


def plan_chunks(total: int, max_frames: int, quiet: list[tuple[int, int]], overlap: int) -> list[Chunk]:
    """Split ``[0, total)`` into chunks of at most ``max_frames``.

    Cuts go in the middle of the longest silence in the second half of the allowed
    span (or anywhere in it, if the second half has none).  Where no silence exists,
    cut anyway: the two chunks then share ``overlap`` frames for a crossfade.
    """
    if total <= 0:
        return []
    overlap = max(0, min(overlap, max_frames // 4))
    chunks: list[Chunk] = []
    pos, before = 0, 0
    while total - pos > max_frames:
        hi = pos + max_frames
        cut = _cut_in_silence(quiet, pos + max_frames // 2, hi) or _cut_in_silence(quiet, pos + 1, hi)
        if cut is not None:
            chunks.append(Chunk(len(chunks), pos, cut, before, 0))
            pos, before = cut, 0
        else:
            chunks.append(Chunk(len(chunks), pos, hi, before, overlap))
            pos, before = hi - overlap, overlap
    chunks.append(Chunk(len(chunks), pos, total, before, 0))
    return chunks


def _cut_in_silence(quiet: list[tuple[int, int]], lo: int, hi: int) -> int | None:
    best, best_len = None, 0
    for s, e in quiet:
        a, b = max(s, lo), min(e, hi)
        if b - a >= best_len and b > a:
            best, best_len = (a + b) // 2, b - a
    return best
