"""`voice-daemon retry FAILED_FILE…`: send failed inputs back through the inbox.

Each input moves from the failed folder to the same place under the inbox (a rename, or a durable
copy under a hidden name and a rename across filesystems, so the watcher never sees half a file),
a transcript of the same name with it, and its ``NAME.error.json`` is removed.  Names are taken as
paths, or as ``status`` prints them (relative to the failed folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

from daemon.audio.io import TRANSCRIPT_EXTENSIONS
from daemon.durable import move
from daemon.errors import UsageError
from daemon.spool.folders import ERROR_SUFFIX, error_report_path
from daemon.spool.moves import free_path, unlink
from daemon.spool.status import status_settings


def cli_retry(settings, args) -> int:
    settings = status_settings(settings)  # the folders the daemon recorded, as `status` reads them
    failed, inbox = Path(settings.failed_dir).absolute(), Path(settings.inbox).absolute()
    names = list(args.files or [])
    if getattr(args, "all", False):
        names += sorted(str(p)[: -len(ERROR_SUFFIX)] for p in failed.rglob("*" + ERROR_SUFFIX))
    if not names:
        raise UsageError("name the failed files to retry (as `voice-daemon status` lists them), or pass --all")
    if not inbox.is_dir():
        raise UsageError(f"the inbox {inbox} does not exist: is VOICE_DAEMON_INBOX the daemon's?")
    errors = 0
    for name in names:
        try:
            src = locate(name, failed)
            dest = retry_one(src, failed, inbox)
        except (UsageError, OSError) as exc:
            errors += 1
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"voice-daemon retry: {name}: {why}", file=sys.stderr)
            continue
        print(f"retried  {src} -> {dest}")
    return 1 if errors else 0


def locate(name: str, failed: Path) -> Path:
    """The failed input ``name`` means: a path, or a name relative to the failed folder."""
    given = Path(name.removesuffix(ERROR_SUFFIX))
    candidates = [given.absolute()] if given.is_absolute() else [given.absolute(), failed / given]
    for p in candidates:
        if p.is_file() and (failed == p.parent or failed in p.parents):
            return p
    if any(p.exists() for p in candidates):
        raise UsageError(f"not a file in the failed folder {failed}")
    raise UsageError(f"no such file in the failed folder {failed} (`voice-daemon status` lists them)")


def retry_one(src: Path, failed: Path, inbox: Path) -> Path:
    """Move ``src`` (and a transcript beside it) back into the inbox; return where it went."""
    rel = src.relative_to(failed)
    dest = free_path(inbox / rel)  # a file of that name waiting there already: "name (1).wav"
    dest.parent.mkdir(parents=True, exist_ok=True)
    for ext in TRANSCRIPT_EXTENSIONS:  # first, so that it is there when the audio is taken
        companion = src.with_suffix(ext)
        if companion != src and companion.is_file():
            move(companion, dest.with_suffix(ext))
    move(src, dest)
    unlink(error_report_path(src))
    return dest
