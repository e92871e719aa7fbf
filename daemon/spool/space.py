"""Full disks: which folder the daemon writes to is full, and when space has come back.

A write that fails with ENOSPC or EDQUOT is not the input's fault: the attempt is put back
without being counted, and the daemon takes no new file and starts no job while the folder is
full.  ``Space`` remembers which folder (the outbox, or the state folder with the jobs' working
files), why, and when to look again: every look writes a probe file of ``PROBE_BYTES`` there
(a quota or a full disk refuses it), first after ``FIRST_LOOK`` seconds, then twice as long
each time up to ``LONGEST_LOOK``.  The errno comes from the failed write itself; libsndfile
loses it in a worker's working files ("System error."), so an unexplained failure is also
called a full disk when the folder has less than ``LOW_BYTES`` left.

No threads: the supervisor's loop asks ``look()`` when ``next_look()`` is due.
"""

from __future__ import annotations

import errno
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
PROBE_BYTES = 1 << 20
LOW_BYTES = 1 << 20
FIRST_LOOK, LONGEST_LOOK = 1.0, 30.0
REFILL_SECONDS = 60.0  # full again this soon after a look found space: the next looks wait longer
PROBE_NAME = ".voice-daemon-space-probe"


def os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc``: itself, or the first with an errno in its chain of causes
    (a worker's OSError reaches the parent as the cause of a TaskError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_error(exc: BaseException | None) -> OSError | None:
    err = os_error(exc)
    return err if err is not None and err.errno in DISK_FULL else None


def free_bytes(path: Path) -> int | None:
    """Bytes this process may still write under ``path`` (root may use the reserved blocks)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize


def total_bytes(path: Path) -> int | None:
    """The size of the volume ``path`` is on: what no file bigger than can ever be written there."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize


@dataclass
class Full:
    folder: str        # "outbox", "state"
    path: Path
    cause: str         # "no space left on device"
    since: float
    next_look: float
    delay: float

    @property
    def reason(self) -> str:
        return f"the {self.folder} folder {self.path} is full: {self.cause}"


class Space:
    """``folders``: name -> path of the folders whose fullness pauses the daemon."""

    def __init__(self, folders: dict[str, Path], *, clock: Callable[[], float] = time.monotonic,
                 first_look: float = FIRST_LOOK, longest_look: float = LONGEST_LOOK):
        self.folders = {name: Path(p) for name, p in folders.items()}
        self.clock, self.first_look, self.longest_look = clock, first_look, longest_look
        self.full: dict[str, Full] = {}
        self._resumed: dict[str, tuple[float, float]] = {}  # folder -> (when it came back, last delay)

    @property
    def paused(self) -> bool:
        return bool(self.full)

    def reason(self) -> str | None:
        return "; ".join(f.reason for f in self.full.values()) or None

    def which(self, path) -> str | None:
        """The folder ``path`` lies in (the deepest match), or None."""
        if not path:
            return None
        p = Path(os.fsdecode(path)).absolute()
        inside = [(len(root.parts), name) for name, root in self.folders.items() if root == p or root in p.parents]
        return max(inside)[1] if inside else None

    def low(self) -> str | None:
        """A folder with less than LOW_BYTES left, or None."""
        for name, root in self.folders.items():
            free = free_bytes(root)
            if free is not None and free < LOW_BYTES:
                return name
        return None

    def mark(self, err: OSError | None, folder: str | None = None) -> Full:
        """A write failed for lack of space (``err``; None: libsndfile did not say) in ``folder``
        (None: the one the error names, else the one with no space left): pause."""
        folder = folder or self.which(getattr(err, "filename", None)) or self.low() or next(iter(self.folders))
        cause = (err.strerror or os.strerror(err.errno)) if err is not None else os.strerror(errno.ENOSPC)
        now = self.clock()
        full = self.full.get(folder)
        if full is None:
            # Full again soon after space came back (a job bigger than what a look can tell): wait longer.
            at, last = self._resumed.get(folder, (-math.inf, self.first_look / 2))
            delay = min(last * 2, self.longest_look) if now - at < REFILL_SECONDS else self.first_look
            full = self.full[folder] = Full(folder, self.folders[folder], cause.lower(), now, now + delay, delay)
        else:  # full again, or still: look less often
            full.delay = min(full.delay * 2, self.longest_look)
            full.next_look = now + full.delay
        return full

    def next_look(self) -> float | None:
        return min((f.next_look for f in self.full.values()), default=None)

    def look(self) -> list[Full]:
        """Probe the full folders whose time has come; return those that have space again."""
        now = self.clock()
        back = []
        for name, full in list(self.full.items()):
            if now < full.next_look:
                continue
            if probe(full.path):
                back.append(self.full.pop(name))
                self._resumed[name] = (now, full.delay)
            else:
                full.delay = min(full.delay * 2, self.longest_look)
                full.next_look = now + full.delay
        return back


def probe(folder: Path, size: int = PROBE_BYTES) -> bool:
    """Whether ``size`` bytes can be written (and synced) in ``folder`` now."""
    path = Path(folder) / PROBE_NAME
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError:
        return False
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
