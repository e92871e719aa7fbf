"""What a container says about itself, read from its bytes where libsndfile does not tell us.

- A WAV's ``data`` chunk declares its length.  libsndfile quietly clamps it to the bytes that are
  there, so a WAV cut short in a copy would convert to a shorter file without a word: compare the
  declared length with what the file holds (``wav_shortfall``).
- An Ogg file may be *chained*: several complete streams (links) one after the other, as a radio
  recorder or ``cat a.ogg b.ogg`` makes them.  libsndfile reads only the first link, FFmpeg fails
  when the links' sample rates differ; ``ogg_links`` finds the links' byte ranges so that each one
  is read by libsndfile on its own (``read_links``), resampled to the first link's rate.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import soundfile as sf

#: Sizes streaming writers put in a header they cannot go back and fix (unknown length).
_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


def wav_shortfall(path: str | os.PathLike) -> tuple[int, int] | None:
    """(declared frames, frames present) of a RIFF/WAVE file whose ``data`` chunk declares more
    than the file holds; None when it is whole, or not a plain RIFF WAV, or declares no length."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(f.fileno()).st_size
            pos, block_align = 12, 0
            while pos + 8 <= size:
                f.seek(pos)
                chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
                if chunk_id == b"fmt " and chunk_size >= 14:
                    block_align = struct.unpack("<12xH", f.read(14))[0]
                elif chunk_id == b"data":
                    present = size - (pos + 8)
                    if chunk_size in _UNKNOWN_SIZES or chunk_size <= present or block_align <= 0:
                        return None
                    return chunk_size // block_align, present // block_align
                pos += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to an even size
    except (OSError, struct.error):
        return None
    return None


@dataclass(frozen=True)
class Link:
    start: int        # byte offsets in the file: [start, end)
    end: int
    sample_rate: int
    channels: int
    frames: int


_BOS = b"OggS\x00\x02"  # capture pattern, version 0, header type "beginning of stream"


def ogg_links(path: str | os.PathLike) -> list[Link]:
    """The links of an Ogg file, each as libsndfile reads it; one link for an ordinary file.

    A link begins with one or more beginning-of-stream pages (several when streams are
    multiplexed); a beginning-of-stream page that does not follow another starts a new link.
    Only the BOS pages are parsed (small: a codec's identification header): a search for their
    capture pattern, in C, over a mapping, and each candidate's checksum.
    """
    size = os.path.getsize(path)
    if size == 0:
        return []
    starts: list[int] = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos, prev_end = mm.find(_BOS), -1
        while pos >= 0:
            end = _page_end(mm, pos)
            if end is None:
                break
            if pos != prev_end:
                starts.append(pos)
            prev_end = end
            pos = mm.find(_BOS, end)
    if len(starts) <= 1:
        return []
    links = []
    for start, end in zip(starts, [*starts[1:], size]):
        with sf.SoundFile(_Slice(path, start, end)) as snd:
            links.append(Link(start, end, int(snd.samplerate), int(snd.channels), int(snd.frames)))
    return links


def _page_end(mm: mmap.mmap, pos: int) -> int | None:
    """Where the Ogg page at ``pos`` ends, or None if no whole, intact page is there (the capture
    pattern can occur by chance inside compressed data: the page's CRC tells a real page)."""
    if pos + 27 > len(mm):
        return None
    nsegs = mm[pos + 26]
    if pos + 27 + nsegs > len(mm):
        return None
    end = pos + 27 + nsegs + sum(mm[pos + 27: pos + 27 + nsegs])
    if end > len(mm):
        return None
    page = bytearray(mm[pos:end])
    stored = int.from_bytes(page[22:26], "little")
    page[22:26] = b"\0\0\0\0"
    return end if _ogg_crc(page) == stored else None


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected (not zlib's)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def chain_frames(links: list[Link]) -> int:
    """The chain's length in frames at the first link's rate (what ``read_links`` yields)."""
    rate = links[0].sample_rate
    return sum(int(round(link.frames * rate / link.sample_rate)) for link in links)


def read_links(path: str, links: list[Link], block_frames: int) -> Iterator[np.ndarray]:
    """Every link's audio in turn, float32 blocks (frames, channels), at the first link's rate."""
    import soxr

    rate = links[0].sample_rate
    for link in links:
        resampler = None
        if link.sample_rate != rate:
            resampler = soxr.ResampleStream(link.sample_rate, rate, link.channels, dtype="float32", quality="HQ")
        with sf.SoundFile(_Slice(path, link.start, link.end)) as snd:
            while True:
                block = snd.read(block_frames, dtype="float32", always_2d=True)
                last = len(block) < block_frames
                if resampler is not None:
                    block = resampler.resample_chunk(block, last=last)
                if len(block):
                    yield block
                if last:
                    break


class _Slice(io.RawIOBase):
    """A read-only view of bytes [start, end) of a file, for libsndfile's virtual I/O."""

    def __init__(self, path, start: int, end: int):
        super().__init__()
        self._f = open(path, "rb")
        self._start, self._len, self._pos = start, end - start, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._len}[whence]
        self._pos = max(0, min(base + offset, self._len))
        return self._pos

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._len - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()
