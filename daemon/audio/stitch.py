"""Chunks written straight into the job's stitched audio, each in its own place; seams crossfaded.

A chunk task writes its converted samples into the stitched file itself (``write_frames``), all
but the frames it shares with a neighbour at a forced cut (``own_range``); it returns those
overlap frames, and ``Seams`` crossfades them once both neighbours are in.  So stitching costs
the parent nothing but the seams, and never runs as one stream after the chunks.
``Seams.ready`` is how far the stitched audio is final from its start: what an encoder may read.

Two kinds of stitched file: ``f32`` (raw mono float32, what encoders read) and ``wav16`` (the
WAV output itself: a 44-byte header, then PCM_16, converted as libsndfile converts).
"""

from __future__ import annotations

import os
import struct

import numpy as np
import soundfile as sf

from daemon.jobs import Chunk

HEADER = {"f32": 0, "wav16": 44}
WIDTH = {"f32": 4, "wav16": 2}


def own_range(chunk: Chunk) -> tuple[int, int]:
    """The frames of ``chunk`` that no neighbour shares: the chunk task writes these itself."""
    return chunk.start + chunk.overlap_before, chunk.end - chunk.overlap_after


def start_file(path: str, kind: str, rate: int) -> None:
    with open(path, "wb") as f:
        f.write(_wav_header(rate, 0) if kind == "wav16" else b"")


def write_frames(path: str, kind: str, frame: int, samples: np.ndarray) -> None:
    """Write ``samples`` at ``frame`` of the stitched file (in place: a write run again after a
    crash writes the same bytes, and nothing else writes there)."""
    x = np.asarray(samples, dtype=np.float32)
    if kind == "wav16":
        # as libsndfile (1.2) converts float to PCM_16: floor(x * 32768), clipped
        data = np.clip(np.floor(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    else:
        data = x.astype("<f4", copy=False).tobytes()
    fd = os.open(path, os.O_WRONLY)
    try:
        view, offset = memoryview(data), HEADER[kind] + frame * WIDTH[kind]
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
    finally:
        os.close(fd)


def finish_file(path: str, kind: str, rate: int, total: int) -> None:
    """Give the file its exact length (and a WAV its header's sizes)."""
    with open(path, "r+b") as f:
        f.truncate(HEADER[kind] + total * WIDTH[kind])
        if kind == "wav16":
            f.seek(0)
            f.write(_wav_header(rate, total))


def _wav_header(rate: int, frames: int) -> bytes:
    data = frames * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data))


class Seams:
    """Which frames of the stitched file are final, and the crossfades at forced cuts.

    ``add`` takes each finished chunk (in any order) with the frames it shares with its
    neighbours (``head``: ``overlap_before`` frames, ``tail``: ``overlap_after``); when both sides
    of a seam are in, the crossfade is written.  Memory: a few overlaps of ``CROSSFADE_MS``.
    """

    def __init__(self, path: str, kind: str):
        self.path, self.kind = path, kind
        self.ready = 0         # frames [0, ready) are final
        self.next = 0          # the first chunk not yet counted in ``ready``
        self._done: dict[int, Chunk] = {}
        self._heads: dict[int, np.ndarray] = {}
        self._tails: dict[int, np.ndarray] = {}

    def add(self, chunk: Chunk, head: np.ndarray | None = None, tail: np.ndarray | None = None) -> int:
        """Record ``chunk`` as written; return how many chunks joined the final prefix now."""
        i = chunk.index
        self._done[i] = chunk
        if chunk.overlap_before:
            self._heads[i] = np.asarray(head, dtype=np.float32)
            self._seam(i)
        if chunk.overlap_after:
            self._tails[i] = np.asarray(tail, dtype=np.float32)
            self._seam(i + 1)
        n = 0
        while self.next in self._done:
            c = self._done[self.next]
            self.ready = c.end - c.overlap_after
            self.next += 1
            n += 1
        return n

    def _seam(self, i: int) -> None:
        """Crossfade chunk ``i - 1``'s tail into chunk ``i``'s head, once both are in."""
        if i in self._heads and i - 1 in self._tails:
            head, tail = self._heads.pop(i), self._tails.pop(i - 1)
            fade = np.linspace(0.0, 1.0, len(head), dtype=np.float32)
            write_frames(self.path, self.kind, self._done[i].start, tail * (1.0 - fade) + head * fade)

    def close(self, total: int) -> None:
        if self.ready != total or self._heads or self._tails:
            raise RuntimeError(f"stitched {self.ready} frames of {total}; chunk {self.next} never came")


def stitch(chunks: list[Chunk], outputs: list[str], total: int, rate: int, out_wav: str) -> int:
    """Chunk result files in order to one float WAV: what ``Seams`` and the chunk tasks build
    together, done in one pass (the reference the tests hold them to)."""
    tail = np.zeros(0, dtype=np.float32)
    written = 0
    with sf.SoundFile(out_wav, "w", samplerate=rate, channels=1, format="WAV", subtype="FLOAT") as out:
        for chunk, path in zip(chunks, outputs, strict=True):
            data, _ = sf.read(path, dtype="float32")
            ov = chunk.overlap_before
            if ov and len(tail):
                fade = np.linspace(0.0, 1.0, ov, dtype=np.float32)
                data[:ov] = tail * (1.0 - fade) + data[:ov] * fade
            keep = len(data) - chunk.overlap_after
            out.write(data[:keep])
            written += keep
            tail = data[keep:]
    if written != total:
        raise RuntimeError(f"stitched {written} frames, expected {total}")
    return written
