"""Stitch chunk results back together in order, as they arrive, crossfading forced seams."""

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


class Stitcher:
    """Takes finished chunk files in any order and writes their samples to ``out`` (anything
    with ``write(samples)``) in order, as soon as each one's predecessors are written.

    Memory: one chunk and one overlap tail; early chunks wait on disk.
    """

    def __init__(self, out, on_written=None):
        self.out = out
        self.written = 0       # frames handed to ``out``
        self.next = 0          # index of the next chunk to write
        self._waiting: dict[int, tuple[Chunk, str]] = {}
        self._tail = np.zeros(0, dtype=np.float32)
        self._on_written = on_written

    def add(self, chunk: Chunk, path: str) -> int:
        """Take chunk ``chunk``'s converted file; return how many chunks were written now."""
        self._waiting[chunk.index] = (chunk, path)
        n = 0
        while self.next in self._waiting:
            self._write(*self._waiting.pop(self.next))
            self.next += 1
            n += 1
        return n

    def _write(self, chunk: Chunk, path: str) -> None:
        data = read_chunk(path, chunk.frames)
        ov = chunk.overlap_before
        if ov and len(self._tail):
            fade = np.linspace(0.0, 1.0, ov, dtype=np.float32)
            data[:ov] = self._tail * (1.0 - fade) + data[:ov] * fade
        keep = len(data) - chunk.overlap_after
        self.out.write(data[:keep])
        self.written += keep
        self._tail = data[keep:]
        if self._on_written:
            self._on_written(chunk, path)

    def close(self, total: int) -> int:
        if len(self._tail):  # a last chunk never has overlap_after; kept for safety
            self.out.write(self._tail)
            self.written += len(self._tail)
            self._tail = self._tail[:0]
        if self._waiting:
            raise RuntimeError(f"chunks {sorted(self._waiting)} arrived but chunk {self.next} never did")
        if self.written != total:
            raise RuntimeError(f"stitched {self.written} frames, expected {total}")
        return self.written


def stitch(chunks: list[Chunk], outputs: list[str], total: int, rate: int, out_wav: str) -> int:
    """Write chunk results in order to ``out_wav``; return frames written (== ``total``)."""
    with sf.SoundFile(out_wav, "w", samplerate=rate, channels=1, format="WAV", subtype="FLOAT") as out:
        st = Stitcher(out)
        for chunk, path in zip(chunks, outputs, strict=True):
            st.add(chunk, path)
        return st.close(total)
