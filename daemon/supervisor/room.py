"""Room for each job: a file whose output does not fit waits alone; one that can never fit fails.

Owned by ``Supervisor`` (``loop.py``) as ``sup.room``.  Before a file is claimed and before a job
starts, its ``Need`` (``spool/estimate.py``: output bytes in the outbox, work bytes in the state
folder) is set against what each folder has free, less what the running jobs may still write there:
- it fits: it goes on;
- it is larger than the folder's whole volume: it fails at once (stage ``space``), the reason naming
  both sizes, since no amount of waiting makes it fit;
- otherwise it waits (a file stays in the inbox, a claimed job out of the queue) and is looked at
  again every ``LOOK_SECONDS``; everything else goes on past it.
A job that still ran out of space (its estimate was short, or something else filled the disk) needs
half as much again the next time; once that is more than the volume holds, it fails the same way.

What waits is said by the ``job.waiting_for_space`` line, /healthz and /api/status (the metrics'
``waiting_for_space``), the STATUS line, and ``space.json`` in the state folder, which
``voice-daemon status`` reads.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Container

from daemon.spool.estimate import Need, human, need_of_file
from daemon.spool.record import iso
from daemon.spool.space import Space, free_bytes, total_bytes

LOOK_SECONDS = 1.0
GROWTH = 1.5  # a job that ran out of space anyway needs this much more the next time
WAITS_FILE = "space.json"
WAITS_BYTES = 64 << 10


@dataclass
class Wait:
    input: str
    folder: str
    path: str
    needs: int
    free: int
    item: object = field(repr=False)  # the Candidate (still in the inbox) or the claimed Job
    since: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {"input": self.input, "job_id": getattr(self.item, "id", None), "folder": self.folder,
                "path": self.path, "needs_bytes": self.needs, "free_bytes": self.free, "since": iso(self.since),
                "reason": self.reason()}

    def reason(self) -> str:
        what = "its output needs" if self.folder == "outbox" else "its work files need"
        return (f"{what} about {human(self.needs)} in the {self.folder} folder {self.path}, "
                f"which has {human(self.free)} free for it; it waits until there is room")


class Room:
    """What waits for space, and each job's ``Need``.  Given by the supervisor: ``space`` (the outbox
    and state folders), ``spool`` (a job's source, the output's format, the state folder),
    ``sample_rate`` (() → the rate in use), ``running`` (the ids of the jobs running now), ``log``,
    and where what fits again goes: ``release_job`` (back into the queue) and ``release_file`` (back
    into the intake)."""

    def __init__(self, *, space: Space, spool, sample_rate: Callable[[], int], running: Container[str], log,
                 release_job: Callable[[object], None], release_file: Callable[[object], None]):
        self.space, self.spool, self.sample_rate, self.running, self.log = space, spool, sample_rate, running, log
        self.release_job, self.release_file = release_job, release_file
        self.waits: dict[str, Wait] = {}       # "inbox:<rel>" or "job:<id>" -> what it waits for
        self._needs: dict[str, Need] = {}      # job id -> its need (grown after running out)
        self._next_look = 0.0
        self._publish_waits()  # made full size now, while there is room: see there

    def file_need(self, path: Path, name: str) -> Need | None:
        return need_of_file(path, self.sample_rate(), self.spool.ext_for(name))

    def job_need(self, job) -> Need | None:
        if job.id not in self._needs:
            need = self.file_need(self.spool.source(job), job.name)
            if need is None:
                return None
            self._needs[job.id] = need
        return self._needs[job.id]

    def forget(self, job) -> None:
        """The job is done with (published or failed): its need no longer counts."""
        self._needs.pop(job.id, None)

    def check(self, need: Need | None, running_too: bool = True) -> tuple[str, str | None, int, int]:
        """("go" | "wait" | "never", folder, bytes needed, bytes free for it or the volume's size)."""
        if need is None:
            return "go", None, 0, 0
        on_volume: dict[int, int] = {}  # outbox and state on one volume: the job needs both there
        for folder, path in self.space.folders.items():
            needs = on_volume[dev] = on_volume.get(dev := _device(path), 0) + need.of(folder)
            total = total_bytes(path)
            if total is not None and needs > total:
                return "never", folder, needs, total
            free = free_bytes(path)
            if free is None:
                continue
            if running_too:  # what the running jobs may still write there
                free -= sum(n.of(f) for jid, n in self._needs.items() if jid in self.running
                            for f, p in self.space.folders.items() if _device(p) == dev)
            if needs > free:
                return "wait", folder, needs, max(0, free)
        return "go", None, 0, 0

    def never_fits(self, folder: str, needs: int, total: int) -> str:
        what = "output" if folder == "outbox" else "work files"
        return (f"Its {what} would take about {human(needs)} in the {folder} folder "
                f"{self.space.folders[folder]}, but that volume holds {human(total)} in all: it can never "
                f"fit. Give the {folder} folder a larger volume"
                + (", or choose a smaller format (VOICE_DAEMON_OUTPUT_FORMAT)." if folder == "outbox" else "."))

    def hold(self, rel: str, item, folder: str, needs: int, free: int) -> None:
        """``item`` (a Candidate in the inbox, or a claimed Job) waits for room."""
        key = f"job:{item.id}" if hasattr(item, "id") else f"inbox:{rel}"
        if key not in self.waits:
            wait = self.waits[key] = Wait(rel, folder, str(self.space.folders[folder]), needs, free, item)
            self.log.warning("job.waiting_for_space", input=rel, job_id=getattr(item, "id", None), folder=folder,
                             path=wait.path, needs_bytes=needs, free_bytes=free, reason=wait.reason())
            self._publish_waits()
        else:
            self.waits[key].item, self.waits[key].free = item, free

    def look(self) -> None:
        """Release what fits now, in the order it began to wait."""
        if not self.waits or time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + LOOK_SECONDS
        changed = False
        for key, wait in list(self.waits.items()):
            is_job = hasattr(wait.item, "id")
            need = self.job_need(wait.item) if is_job else self.file_need(wait.item.path, wait.input)
            verdict, folder, needs, free = self.check(need)
            if verdict == "wait":
                wait.folder, wait.needs, wait.free = folder, needs, free
                continue
            del self.waits[key]
            changed = True
            self.log.info("job.space_available", input=wait.input, job_id=getattr(wait.item, "id", None),
                          waited_seconds=round(time.time() - wait.since, 3))
            if is_job:
                self.release_job(wait.item)  # "never" too: dispatch fails it with the reason
            else:
                self.release_file(wait.item)
        if changed:
            self._publish_waits()

    def grow_need(self, job, folder: str | None) -> None:
        """It ran out of space: it needs more than was thought the next time."""
        need = self.job_need(job)
        if need is not None:
            grow = lambda n, f: int(n * GROWTH) if folder in (None, f) else n  # noqa: E731
            self._needs[job.id] = Need(grow(need.output, "outbox"), grow(need.work, "state"))

    def next_due(self) -> float | None:
        return self._next_look if self.waits else None

    def waiting_for_space(self) -> list[dict]:
        return [w.to_dict() for w in self.waits.values()]

    def _publish_waits(self) -> None:
        """``space.json`` in the state folder for ``voice-daemon status`` (another process).  The file
        is made ``WAITS_BYTES`` long at start and then overwritten in place, padded with spaces, so
        that it can still say what waits when the state disk itself is full."""
        waits = self.waiting_for_space()
        while True:
            data = json.dumps({"waiting_for_space": waits, "more": len(self.waits) - len(waits)},
                              ensure_ascii=False).encode()
            if len(data) < WAITS_BYTES or not waits:
                break
            waits = waits[: len(waits) // 2]
        try:
            fd = os.open(Path(self.spool.state) / WAITS_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            os.pwrite(fd, data.ljust(WAITS_BYTES), 0)
        except OSError:  # not made at start, and the disk is full: the log and /healthz still say it
            pass
        finally:
            os.close(fd)


def _device(path: Path) -> int:
    try:
        return os.stat(path).st_dev
    except OSError:
        return -1
