"""Which names in a watched folder are audio, transcripts, or not ours to touch.

A rule about names only (nothing is opened), shared by intake (the watcher) and
``voice-daemon status`` (the spool), so both count the same files.
"""

from __future__ import annotations

import os

from daemon.audio.io import AUDIO_EXTENSIONS, TRANSCRIPT_EXTENSIONS

#: names that browsers, downloaders and copy tools give a file still being written
TEMP_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".download")

_AUDIO = frozenset(AUDIO_EXTENSIONS)


def classify(rel: str) -> tuple[str, str]:
    """("audio" | "transcript" | "ignore", reason) for a path relative to the inbox."""
    parts = rel.split("/")
    if any(p.startswith(".") for p in parts):
        return "ignore", "hidden"
    name = parts[-1]
    lower = name.lower()
    if name.startswith("~") or lower.endswith(TEMP_SUFFIXES):
        return "ignore", "temporary name"
    ext = os.path.splitext(lower)[1]
    if ext in _AUDIO:
        return "audio", ""
    if ext in TRANSCRIPT_EXTENSIONS:
        return "transcript", ""
    return "ignore", "not an audio file"
