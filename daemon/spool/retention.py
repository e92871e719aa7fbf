"""How long ``STATE_DIR/done/`` keeps archived inputs (VOICE_DAEMON_DONE_RETENTION_DAYS).

The running daemon looks now and then (every hour, or a quarter of the retention when that is
shorter) and deletes each archived job whose folder was last changed longer ago than the
retention: the folder is renamed to a hidden name first, so a cut-short delete never leaves
half a job that looks like one.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

LOOK_EVERY = 3600.0  # seconds between looks at most
BATCH = 500          # jobs deleted per look; more are left for a look a second later


class DonePruner:
    """Called on every turn of the loop; deletes only when a look is due."""

    def __init__(self, clock=time.monotonic, wall=time.time):
        self.clock, self.wall = clock, wall
        self._next = 0.0

    def due(self) -> bool:
        return self.clock() >= self._next

    def prune(self, done: Path, days: float) -> list[str]:
        """Delete what is older than ``days`` (0: nothing); return the job ids deleted."""
        keep = days * 86400.0
        self._next = self.clock() + (min(LOOK_EVERY, max(1.0, keep / 4)) if keep else LOOK_EVERY)
        if not keep:
            return []
        removed = old_jobs(done, self.wall() - keep)[:BATCH]
        for name in removed:
            hidden = done / f".deleting-{name}"
            os.rename(done / name, hidden)
            shutil.rmtree(hidden, ignore_errors=True)
        if len(removed) == BATCH:
            self._next = self.clock() + 1.0
        return removed


def old_jobs(done: Path, before: float) -> list[str]:
    """Names in ``done`` last changed before ``before`` (wall-clock seconds), oldest first;
    left-overs of a delete cut short (hidden names) are always due."""
    found = []
    try:
        entries = list(os.scandir(done))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if entry.name.startswith(".deleting-"):
            shutil.rmtree(entry.path, ignore_errors=True)
        elif mtime < before:
            found.append((mtime, entry.name))
    return [name for _m, name in sorted(found)]
