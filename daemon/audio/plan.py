"""Chunk planning: cut the working audio in silences so no chunk exceeds the limit.

Pure functions over frame numbers; the VAD probabilities come from ``vad.py``.  ``StreamPlanner``
makes the same cuts as ``plan_chunks`` over the whole file, but emits each one as soon as the
probabilities seen so far settle it, so a chunk can start while the rest is still being scored.
"""

from __future__ import annotations

import numpy as np

from daemon.jobs import Chunk

MIN_SILENCE_S = 0.25
PAD_S = 0.05


def silences(probs: np.ndarray, window_s: float, rate: int, *, threshold: float = 0.5,
             min_silence_s: float = MIN_SILENCE_S, pad_s: float = PAD_S) -> list[tuple[int, int]]:
    """Frame ranges where speech probability stays below ``threshold`` for at least ``min_silence_s``.

    Each range is shrunk by ``pad_s`` at both ends so a cut never clips a word's edge.
    """
    starts, ends = _silence_arrays(np.asarray(probs), window_s, rate, threshold, min_silence_s, pad_s)
    return list(zip(starts.tolist(), ends.tolist()))


def _silence_arrays(probs, window_s, rate, threshold, min_silence_s, pad_s):
    quiet = (probs < threshold).astype(np.int8)
    n = len(quiet)
    edges = np.diff(np.concatenate([[0], quiet, [0]]))
    i, j = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long_enough = (j - i) * window_s >= min_silence_s
    i, j = i[long_enough], j[long_enough]
    win, pad = window_s * rate, int(pad_s * rate)
    s = (i * win).astype(np.int64) + np.where(i > 0, pad, 0)
    e = (j * win).astype(np.int64) - np.where(j < n, pad, 0)
    keep = e > s
    return s[keep], e[keep]


def plan_chunks(total: int, max_frames: int, quiet: list[tuple[int, int]], overlap: int) -> list[Chunk]:
    """Split ``[0, total)`` into chunks of at most ``max_frames``.

    Cuts go in the middle of the longest silence in the second half of the allowed
    span (or anywhere in it, if the second half has none).  Where no silence exists,
    cut anyway: the two chunks then share ``overlap`` frames for a crossfade.
    """
    if total <= 0:
        return []
    q = (np.array([s for s, _ in quiet], np.int64), np.array([e for _, e in quiet], np.int64))
    overlap = _overlap(overlap, max_frames)
    chunks: list[Chunk] = []
    pos, before = 0, 0
    while total - pos > max_frames:
        chunk, pos, before = _next_chunk(len(chunks), pos, before, max_frames, q, overlap)
        chunks.append(chunk)
    chunks.append(Chunk(len(chunks), pos, total, before, 0))
    return chunks


def _overlap(overlap: int, max_frames: int) -> int:
    return max(0, min(overlap, max_frames // 4))


def _next_chunk(index: int, pos: int, before: int, max_frames: int, quiet, overlap: int):
    """The chunk that starts at ``pos`` (the file goes on past ``pos + max_frames``); returns it
    with the next chunk's start and its overlap with this one."""
    hi = pos + max_frames
    cut = _cut_in_silence(quiet, pos + max_frames // 2, hi)
    if cut is None:
        cut = _cut_in_silence(quiet, pos + 1, hi)
    if cut is not None:
        return Chunk(index, pos, cut, before, 0), cut, 0
    return Chunk(index, pos, hi, before, overlap), hi - overlap, overlap


def _cut_in_silence(quiet, lo: int, hi: int) -> int | None:
    """The middle of the longest part of a silence inside [lo, hi) (the last one, on a tie)."""
    starts, ends = quiet
    a, b = np.maximum(starts, lo), np.minimum(ends, hi)
    length = np.where(b > a, b - a, -1)
    if not len(length) or length.max() < 0:
        return None
    best = len(length) - 1 - int(np.argmax(length[::-1]))
    return int((a[best] + b[best]) // 2)


class StreamPlanner:
    """``plan_chunks(silences(probs))`` fed one segment of probabilities at a time.

    ``add`` returns the chunks whose cut is already certain: a cut depends only on the
    silences up to ``max_frames`` past the chunk's start, and a silence that runs on past the
    probabilities seen so far can still change only beyond ``SETTLE`` frames from their end.
    ``finish`` plans the rest once the file's length is known and every probability is in.
    """

    def __init__(self, rate: int, max_frames: int, overlap: int, window_s: float, *, threshold: float = 0.5,
                 min_silence_s: float = MIN_SILENCE_S, pad_s: float = PAD_S):
        self.rate, self.max_frames, self.window_s = rate, max_frames, window_s
        self.overlap = _overlap(overlap, max_frames)
        self._params = (window_s, rate, threshold, min_silence_s, pad_s)
        self._settle = int(pad_s * rate) + int(np.ceil((min_silence_s + 2 * window_s) * rate))
        self._probs: list[np.ndarray] = []
        self._windows = 0
        self._pos = self._before = 0
        self.chunks: list[Chunk] = []

    @property
    def planned_to(self) -> int:
        """Frames already given to chunks (the next chunk starts here)."""
        return self._pos

    def add(self, probs: np.ndarray) -> list[Chunk]:
        self._probs.append(np.asarray(probs, dtype=np.float32))
        self._windows += len(probs)
        known = int(self._windows * self.window_s * self.rate)
        return self._advance(lambda hi: hi + self._settle <= known)

    def finish(self, total: int) -> list[Chunk]:
        if total <= 0:
            return []
        out = self._advance(lambda hi: total - (hi - self.max_frames) > self.max_frames)
        chunk = Chunk(len(self.chunks), self._pos, total, self._before, 0)
        self.chunks.append(chunk)
        return out + [chunk]

    def _advance(self, may_cut) -> list[Chunk]:
        out: list[Chunk] = []
        quiet = None
        while may_cut(self._pos + self.max_frames):
            if quiet is None:
                quiet = _silence_arrays(np.concatenate(self._probs) if self._probs else np.zeros(0, np.float32),
                                        *self._params)
            chunk, self._pos, self._before = _next_chunk(len(self.chunks), self._pos, self._before,
                                                         self.max_frames, quiet, self.overlap)
            self.chunks.append(chunk)
            out.append(chunk)
        return out

    def probs_between(self, lo: int, hi: int) -> tuple[np.ndarray, int]:
        """The probabilities of the windows over frames [lo, hi), and the first one's number."""
        w0 = int(lo / self.rate / self.window_s)
        w1 = int(np.ceil(hi / self.rate / self.window_s))
        out, pos = [], 0
        for p in self._probs:
            a, b = max(w0, pos), min(w1, pos + len(p))
            if a < b:
                out.append(p[a - pos:b - pos])
            pos += len(p)
        return (np.concatenate(out) if out else np.zeros(0, np.float32)), w0

    def speech_seconds(self, threshold: float) -> float:
        probs = np.concatenate(self._probs) if self._probs else np.zeros(0)
        return float((probs >= threshold).sum() * self.window_s)
