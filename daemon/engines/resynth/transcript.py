"""Transcripts beside an input: SRT, WebVTT (timed) and plain text (untimed).

``load_transcript(path)`` returns phrases ``{"start", "end", "text"}`` in seconds
from the start of the file.  SRT/VTT cues keep their timing: each cue becomes a
slot the synthesised phrase is fitted into.  A ``.txt`` has no timing: it comes
back as one phrase per sentence with ``start``/``end`` = ``None``; the engine then
recognises each chunk for timing and puts the transcript's words in place of the
recognised ones (see ``align.py``).  Pure functions; no models.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from daemon.audio.io import TRANSCRIPT_EXTENSIONS
from daemon.engines.resynth.text import clean, sentences
from daemon.errors import InputError

#: Transcripts larger than this are refused (a subtitle file is a few hundred kB).
MAX_BYTES = 20 * 1024 * 1024

_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})")
_ARROW = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <v Name>, <00:00:01.000>, {\an8}


def load_transcript(path) -> list[dict]:
    """Parse ``path`` by its extension; raise InputError when it cannot be read."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in TRANSCRIPT_EXTENSIONS:
        raise InputError(p, f"is not a transcript (allowed: {', '.join(TRANSCRIPT_EXTENSIONS)})", stage="transcript")
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise InputError(p, f"transcript is {size} bytes; the limit is {MAX_BYTES}", stage="transcript")
        text = decode(p.read_bytes())
    except OSError as exc:
        raise InputError(p, f"cannot read transcript: {exc.strerror or exc}", stage="transcript") from None
    if ext == ".txt":
        phrases = parse_txt(text)
    else:
        try:
            phrases = parse_vtt(text) if ext == ".vtt" else parse_srt(text)
        except ValueError as exc:
            raise InputError(p, f"bad {ext[1:].upper()} transcript: {exc}", stage="transcript") from None
    if not phrases:
        raise InputError(p, "transcript contains no text", stage="transcript")
    return phrases


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM, or UTF-16 with BOM); else Windows-1251, common for Russian subtitles."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1251", errors="replace")


def parse_time(value: str) -> float:
    """``HH:MM:SS,mmm`` / ``HH:MM:SS.mmm`` / ``MM:SS.mmm`` -> seconds."""
    m = _TIME.fullmatch(value.strip())
    if not m:
        raise ValueError(f"bad timestamp {value!r}")
    h, mnt, s, frac = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def _cue_text(lines: list[str]) -> str:
    return clean(html.unescape(_TAG.sub("", " ".join(lines))))


def _cues(blocks: list[list[str]]) -> list[dict]:
    phrases = []
    for block in blocks:
        for i, line in enumerate(block):
            m = _ARROW.match(line)
            if m:
                start, end = parse_time(m.group(1)), parse_time(m.group(2))
                if end < start:
                    raise ValueError(f"cue ends before it starts: {line.strip()!r}")
                text = _cue_text(block[i + 1:])
                if text:
                    phrases.append({"start": start, "end": end, "text": text})
                break
    phrases.sort(key=lambda p: p["start"])
    return phrases


def _blocks(text: str) -> list[list[str]]:
    blocks, cur = [], []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.strip():
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    return blocks


def parse_srt(text: str) -> list[dict]:
    blocks = _blocks(text)
    if blocks and not any(_ARROW.match(line) for b in blocks for line in b):
        raise ValueError("no 'start --> end' timing lines")
    return _cues(blocks)


def parse_vtt(text: str) -> list[dict]:
    blocks = _blocks(text)
    if not blocks or not blocks[0][0].lstrip("\ufeff").startswith("WEBVTT"):
        raise ValueError("missing the WEBVTT header")
    blocks = [b for b in blocks[1:] if not b[0].startswith(("NOTE", "STYLE", "REGION"))]
    return _cues(blocks)


def parse_txt(text: str) -> list[dict]:
    """One untimed phrase per sentence."""
    return [{"start": None, "end": None, "text": s} for s in sentences(text)]


def is_timed(phrases: list[dict]) -> bool:
    return all(p.get("start") is not None and p.get("end") is not None for p in phrases)
