"""Is a file's header readable audio?  Asked of every inbox file before it is claimed.

Headers are parsed in the daemon's own process (libsndfile, libmpg123, FFmpeg's probe), so a
decoder that crashes on a hostile file would take the daemon down: ``GuardedProbe`` leaves a
marker naming the file while it is read, and after a restart that file is refused instead.
"""

from __future__ import annotations

from pathlib import Path

from daemon import log
from daemon.audio.io import probe
from daemon.errors import InputError


def default_probe(path: Path) -> str | None:
    """None if the header decodes as audio, else the cause in a few words."""
    try:
        probe(path)
    except InputError as exc:
        return exc.cause
    except Exception as exc:  # a decoder library failing on junk must not stop intake
        return f"is not readable audio ({type(exc).__name__})"
    return None


class GuardedProbe:
    """``default_probe`` with a marker file naming the file being probed.

    Headers are parsed in this (the daemon's) process by libsndfile, libmpg123 or
    FFmpeg.  If one of them crashes on a hostile file, the marker survives, and on
    the next start that file is reported as bad instead of crashing the daemon
    again and again under systemd's restarts.
    """

    CAUSE = "crashed the audio decoder while its header was read"

    def __init__(self, marker: Path, probe=default_probe):
        self.marker, self.probe = Path(marker), probe
        self.poisoned: set[str] = set()
        try:
            name = self.marker.read_text(encoding="utf-8", errors="surrogateescape")
            self.marker.unlink()
        except OSError:
            name = ""
        if name:
            self.poisoned.add(name)
            log.get("watcher").error("watcher.decoder_crash", path=name, reason=self.CAUSE)

    def __call__(self, path: Path) -> str | None:
        key = str(path)
        if key in self.poisoned:
            return self.CAUSE
        try:
            self.marker.write_text(key, encoding="utf-8", errors="surrogateescape")
        except OSError:  # a full state disk: read the header unguarded rather than not at all
            self.marker.unlink(missing_ok=True)
            return self.probe(path)
        try:
            return self.probe(path)
        finally:
            self.marker.unlink(missing_ok=True)
