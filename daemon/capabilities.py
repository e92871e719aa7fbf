"""What the configured engine can do, in one object the parent side asks instead of the engine's
name.  A leaf: built by ``daemon.engines.capabilities(settings)`` and handed out by the
composition root (``daemon/app.py``) to the watcher, the spool, the reporter and the job runner
(through the generation in use, ``daemon/generation.py``, so that a reload changes it for all of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Mapping


@dataclass(frozen=True)
class Capabilities:
    engine: str                          # its name, for logs and reports only
    recognises_speech: bool = False      # needs speech recognition (and its model) in the workers
    reads_transcripts: bool = False      # a transcript beside the input (.srt, .vtt, .txt) sets the words
    reads_text: bool = False             # a lone .txt is read aloud
    has_voices: bool = False             # VOICE_DAEMON_VOICE names a voice (else it is only a label)
    voice_folders: frozenset[str] = frozenset()  # what an inbox/<voice>/ folder may name
    #: input extension -> output extension; inputs not in it get ``output_default``
    output_formats: Mapping[str, str] = field(default_factory=dict, compare=False)
    output_default: str = "wav"

    def output_ext(self, name: str) -> str:
        """The output's extension (no dot) for an input named ``name``."""
        return self.output_formats.get(PurePath(name).suffix.lower(), self.output_default)

    def voice_of_folder(self, rel: str) -> str | None:
        """The voice an input's first folder names (``inbox/<voice>/x.wav``), or None."""
        first, sep, _ = rel.partition("/")
        return first if sep and first in self.voice_folders else None
