"""The supervisor's side of a full disk: pause, put back uncounted, look again, resume.

Owned by ``Supervisor`` (``loop.py``): a write that fails with ENOSPC or EDQUOT pauses intake
and dispatch (``Space`` says which folder and why, and when to look again); the attempt is put
back without being counted and waits in the queue; spool steps that a full disk cut short wait in
``Later``; once a look finds space, everything due runs at once.
"""

from __future__ import annotations

import errno
import time
from typing import Callable

from daemon.errors import TaskError, VoiceDaemonError
from daemon.spool import Job, JobState
from daemon.spool.space import Space, disk_full_error, os_error
from daemon.supervisor.later import Later


class DiskFull:
    """Owned by the supervisor as ``sup.pausing``; given ``space`` (which folder is full, when to look
    again), ``spool`` (an attempt put back, a job folder recovered), ``later`` (spool steps tried
    again), ``room`` (``room.py``: a job's need grown), ``report`` (the lines), ``requeue`` (a job
    back into the queue, uncounted) and ``resume`` (a job folder recovered late, queued as at start)."""

    def __init__(self, *, space: Space, spool, later: Later, room, report, requeue: Callable[[Job], None],
                 resume: Callable[[Job], None]):
        self.space, self.spool, self.later, self.room, self.report = space, spool, later, room, report
        self.requeue, self.resume = requeue, resume
        self.log = report.log

    def out_of_space(self, job: Job, exc: BaseException) -> bool:
        """An attempt that failed for lack of space: put back uncounted, the daemon paused."""
        err = disk_full_error(exc)
        if err is None and (not _unexplained(exc) or self.space.low() is None):
            return False  # libsndfile's "System error." counts as a full disk only where one is
        if err is not None and err.filename and self.space.which(err.filename) is None:
            # Not this host's outbox or state folder: a cluster node's temporary space.  Pausing here
            # would not free it; the attempt fails (counted, so a node that stays full cannot hold the
            # job for ever) with the path in its cause, and the operator is told where.
            self.report.job(job).log.warning("job.node_out_of_space", path=str(err.filename),
                                             cause=(err.strerror or "").lower())
            return False
        full = self.pause(err)
        self.room.grow_need(job, full.folder)  # its estimate was short: it waits for more the next time
        why = f"{full.reason}; tried again when there is space"
        if job.state in (JobState.RUNNING, JobState.COMMITTING):  # committing: nothing reached the outbox
            try:
                self.spool.put_back(job, why, stage="disk")
            except OSError as put_err:  # the state disk itself: job.json still says running
                self.report.job(job).error("job.put_back_error", put_err)
        self.report.job(job).waiting(why)
        self.requeue(job)
        return True

    def pause(self, err: OSError | None, folder: str | None = None):
        was = self.space.paused
        full = self.space.mark(err, folder)
        if not was:
            self.log.error("daemon.paused", folder=full.folder, path=str(full.path), cause=full.cause,
                           reason=full.reason)
        return full

    def look(self) -> None:
        """Each turn: look at the full disk when due (resumed: every step waiting in ``later`` runs
        now); not paused, the steps that are due run."""
        if self.space.paused and (due := self.space.next_look()) is not None and time.monotonic() >= due:
            for full in self.space.look():
                self.log.info("daemon.resumed", folder=full.folder, path=str(full.path),
                              paused_seconds=round(time.monotonic() - full.since, 3))
            if not self.space.paused:
                self._run_later(everything=True)
                return
        if not self.space.paused:
            self._run_later()

    def _run_later(self, everything: bool = False) -> None:
        for _key, step in self.later.due(now_too=everything):
            step()

    def recover_again(self, d) -> None:
        """A job folder the spool could not finish recovering (a full disk): once more, later again
        if it still cannot."""
        try:
            job = self.spool.recover_dir(d)
        except Exception as exc:  # still not possible: later again
            self.later.add(f"recover:{d.name}", lambda: self.recover_again(d))
            if (full := disk_full_error(exc)) is not None:
                self.pause(full)
            return
        self.later.done(f"recover:{d.name}")
        if job is not None:
            self.resume(job)


def _unexplained(exc: BaseException) -> bool:
    """An error that says nothing of its cause: a task's exception (libsndfile's "System error."),
    not a refused input or output, a model, a worker's death or a timeout."""
    if isinstance(exc, TaskError):
        return exc.kind == "exception"
    return not isinstance(exc, VoiceDaemonError)


def passes(exc: BaseException) -> bool:
    """An error that may go away by itself: a full disk or an I/O error."""
    err = os_error(exc)
    return disk_full_error(exc) is not None or (err is not None and err.errno == errno.EIO)
