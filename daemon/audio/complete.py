"""Does a file's header agree with its length?  Byte-level checks, no decoder library.

Intake takes a file its writer closed after a short settle only when this says yes
(``daemon/watcher.py``); otherwise the full settle applies.  Each check reads a few
headers and the tail, so a partial copy of a complete file (a header that declares
more than is there) is told from the whole file:

    WAV, RF64   the RIFF (or ds64) size is the file's size, the data chunk fits in it
    Ogg, Opus   the last page ends the file exactly and carries the end-of-stream flag
    FLAC        the last frame ends the file exactly (its CRC-16 checks) and ends at
                the stream's declared total of samples
    MP3         a Xing/Info header's byte count (plus ID3 tags) is the file's size

Anything else (M4A/AAC, MP3 without a byte count, a header a writer fills in only at
the end) answers False: the file waits the full settle.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

TAIL = 1 << 16  # how much of the end is read for Ogg and FLAC


def looks_complete(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(min(size, 1 << 16))
            if size < 44:
                return False
            if head[:4] in (b"RIFF", b"RF64"):
                return _wav(f, head, size)
            if head[:4] == b"OggS":
                return _ogg(f, size)
            if head[:4] == b"fLaC":
                return _flac(f, head, size)
            if Path(path).suffix.lower() == ".mp3":
                return _mp3(f, head, size)
    except OSError:
        return False
    return False


# --- WAV ------------------------------------------------------------------------

def _wav(f, head: bytes, size: int) -> bool:
    riff = struct.unpack_from("<I", head, 4)[0]
    data_size = None
    if head[:4] == b"RF64":
        if head[12:16] != b"ds64" or len(head) < 36:
            return False
        riff, data_size = struct.unpack_from("<QQ", head, 20)
    if head[8:12] != b"WAVE" or riff + 8 not in (size, size - 1):  # a pad byte may follow
        return False
    pos = 12
    for _ in range(64):  # chunk headers only: LIST, fact, bext… before the data
        f.seek(pos)
        hdr = f.read(8)
        if len(hdr) < 8:
            return False
        cid, length = hdr[:4], struct.unpack_from("<I", hdr, 4)[0]
        if cid == b"data":
            if data_size is not None and length == 0xFFFFFFFF:
                length = data_size
            return pos + 8 + length <= size
        pos += 8 + length + (length & 1)
    return False


# --- Ogg ------------------------------------------------------------------------

def _ogg(f, size: int) -> bool:
    start = max(0, size - TAIL)
    f.seek(start)
    tail = f.read()
    at = tail.rfind(b"OggS")
    while at >= 0:
        page = tail[at:]
        if len(page) >= 27 and page[4] == 0:  # stream structure version 0
            nseg = page[26]
            if len(page) >= 27 + nseg:
                body = sum(page[27:27 + nseg])
                if 27 + nseg + body == len(page):
                    return bool(page[5] & 0x04)  # end of stream
        at = tail.rfind(b"OggS", 0, at)
    return False


# --- FLAC -----------------------------------------------------------------------

def _flac(f, head: bytes, size: int) -> bool:
    if len(head) < 42 or head[4] & 0x7F != 0:  # STREAMINFO comes first
        return False
    info = head[8:42]
    min_block, max_block = struct.unpack_from(">HH", info, 0)
    packed = int.from_bytes(info[10:18], "big")
    total = packed & ((1 << 36) - 1)
    if total == 0:
        return False  # unknown length: a writer fills it in at the end
    f.seek(max(0, size - TAIL))
    tail = f.read()
    for at in range(len(tail) - 2, -1, -1):
        if tail[at] != 0xFF or tail[at + 1] & 0xFE != 0xF8:
            continue
        frame = _flac_frame(tail[at:], min_block, max_block)
        if frame is None:
            continue
        first, block = frame
        body = tail[at:]
        return first + block == total and _crc16(body[:-2]) == int.from_bytes(body[-2:], "big")
    return False


def _flac_frame(b: bytes, min_block: int, max_block: int) -> tuple[int, int] | None:
    """(first sample, block size) of the frame whose header starts ``b``, if its CRC-8 checks."""
    if len(b) < 6:
        return None
    variable = b[1] & 1
    bs_code, sr_code = b[2] >> 4, b[2] & 0x0F
    if bs_code == 0 or sr_code == 15 or (b[3] >> 4) > 10 or b[3] & 1:
        return None
    n, num = _utf8_number(b, 4)
    if n is None:
        return None
    if bs_code == 6:
        block, n = b[n] + 1, n + 1
    elif bs_code == 7:
        block, n = int.from_bytes(b[n:n + 2], "big") + 1, n + 2
    elif bs_code == 1:
        block = 192
    elif bs_code <= 5:
        block = 576 << (bs_code - 2)
    else:
        block = 256 << (bs_code - 8)
    n += {12: 1, 13: 2, 14: 2}.get(sr_code, 0)
    if n >= len(b) or _crc8(b[:n]) != b[n]:
        return None
    first = num if variable else num * max_block
    return (first, block) if variable or min_block == max_block or block <= max_block else None


def _utf8_number(b: bytes, i: int) -> tuple[int | None, int]:
    """FLAC's frame or sample number, coded like UTF-8 (up to 36 bits): (index after it, value)."""
    lead = b[i]
    ones = 8 - len(bin(lead ^ 0xFF)[2:].lstrip("0")) if lead != 0xFF else 8  # leading 1 bits
    if ones == 0:
        return i + 1, lead
    if ones == 1 or ones > 7 or i + ones > len(b):
        return None, 0
    value = lead & (0x7F >> ones)
    for c in b[i + 1:i + ones]:
        if c & 0xC0 != 0x80:
            return None, 0
        value = (value << 6) | (c & 0x3F)
    return i + ones, value


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = (_CRC16[((crc >> 8) ^ byte) & 0xFF] ^ (crc << 8)) & 0xFFFF
    return crc


def _crc16_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        table.append(c)
    return table


_CRC16 = _crc16_table()


# --- MP3 ------------------------------------------------------------------------

def _mp3(f, head: bytes, size: int) -> bool:
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:
        tag = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        start = 10 + tag + (10 if head[5] & 0x10 else 0)  # a footer follows when flagged
    f.seek(start)
    frame = f.read(200)
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return False
    at = max(frame.find(b"Xing"), frame.find(b"Info"))
    if at < 0 or at + 16 > len(frame):
        return False
    flags = struct.unpack_from(">I", frame, at + 4)[0]
    if not flags & 0x2:
        return False  # no byte count to compare with
    offset = at + 8 + (4 if flags & 0x1 else 0)
    stream = struct.unpack_from(">I", frame, offset)[0]
    end = start + stream
    if end == size:
        return True
    f.seek(max(0, size - 128))
    return end + 128 == size and f.read(3) == b"TAG"
