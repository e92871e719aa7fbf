"""The loop: intake → claim → dispatch → commit / retry / quarantine, and shutdown.

One thread (the main one) makes every decision and every move of a file.  It blocks on
one queue of events (``events.py``): signals, files from the watcher, finished jobs, a
broken pool.  It wakes without an event only for a real deadline: the next delayed
retry, the end of the shutdown grace, the next watchdog heartbeat, the next look at a
full disk, a spool step to try again.

Each job's orchestration (``run_job``: prepare → chunks in parallel → finish) runs in a
small bounded thread pool here; those threads only wait on the worker pool's futures,
the CPU work happens in the spawn children.

Faults that are nobody's input's fault are not charged to it:
- after an unclean stop, the jobs that were in flight are suspects (see ``spool``): while one
  is queued the loop runs one job at a time;
- a full output or state disk (ENOSPC, EDQUOT) pauses intake and dispatch; the attempt is put
  back uncounted; the loop looks again with backoff and resumes by itself (``Space``, and
  ``pause.py``'s ``DiskFull``, which the loop owns as ``pausing``);
- a file or job whose output would not fit waits, and the rest go on (``room.py``'s ``Room``,
  owned as ``room``); each owned part is given what it uses, never the supervisor;
- a commit or quarantine cut short by a full disk is tried again later (``Later``); one that
  cannot succeed (the output cannot be published) fails the job with its reason.

Shutdown (SIGTERM/SIGINT): stop intake, let running jobs finish for
SHUTDOWN_GRACE_SECONDS, then stop the workers and put what did not finish back in
the spool (resumed at the next start).  A second signal skips the wait.  SIGHUP reloads
(``reload.py``): the next ``Generation`` (settings, capabilities, backend, job runner) replaces
``gen`` in one assignment, which the spool, the reporter and the schedule read.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from daemon.backends import SIGNAL_LOOK
from daemon.errors import (
    InputError,
    ModelError,
    OutputCheckError,
    OutputError,
    PoolClosedError,
    PoolStartError,
    TaskError,
)
from daemon.generation import Generation
from daemon.spool import Job, JobState, Spool, fsync_file
from daemon.spool.machine import Unfinished
from daemon.spool.retention import DonePruner
from daemon.spool.space import Space, disk_full_error
from daemon.supervisor.events import CANDIDATE, FINISHED, POOL_BROKEN, Events, Signals
from daemon.supervisor.later import Later
from daemon.supervisor.pause import DiskFull, passes
from daemon.supervisor.reload import Reloading
from daemon.supervisor.report import Reporter
from daemon.supervisor.room import Room
from daemon.supervisor.schedule import Schedule
from daemon.watcher import Candidate

INTAKE_LIMIT = 64     # claims per turn, and
INTAKE_BUDGET = 1.0   # seconds of claiming per turn: a claim across filesystems copies the file
MAX_JOB_THREADS = 512  # jobs in flight at most, whatever the cluster (each a thread of this process)


@dataclass
class Running:
    job: Job
    future: Future
    started: float  # monotonic
    pool: object = None  # the worker pool its tasks run on (a reload may bring another)


def describe_error(exc: BaseException) -> tuple[str, str, bool]:
    """(cause in one sentence, stage, retryable) for a failed attempt."""
    if isinstance(exc, InputError):
        return f"The input {exc.cause}.", exc.stage, False
    if isinstance(exc, OutputError):
        return f"The output cannot be written: {exc.cause}.", "encode", False
    if isinstance(exc, OutputCheckError):
        return f"The output failed its check before publishing: {exc.cause}.", "verify", True
    if isinstance(exc, ModelError):
        return f"A model could not be used: {exc}.", "model", False
    if isinstance(exc, TaskError):
        return f"{exc}.", exc.stage or exc.kind, exc.retryable
    if isinstance(exc, OSError):
        return f"A file operation failed: {exc}.", "io", True
    return f"Unexpected {type(exc).__name__}: {exc}.", "internal", bool(getattr(exc, "retryable", True))


class Supervisor:
    """Every collaborator is given (``daemon/app.py`` builds them): ``gen`` (``daemon/generation.py``),
    the first generation: settings, capabilities, backend (``gen.pool``) and ``run_job(submit, src,
    out_tmp, work_dir, voice=, group=, progress=)``, which converts one job through ``pool.submit``;
    ``clock``: the wall clock of the spool's retry times; ``observers`` hear each job's moments (see
    report.py); ``reloader`` (optional) builds the next generation on SIGHUP.  The generation in use
    sits in one cell shared with the spool (``spool.current``), the reporter and the schedule's retry
    limits, which read it when they act: a reload's swap is one assignment to ``gen``."""

    def __init__(self, gen: Generation, spool: Spool, *, events: Events, signals: Signals, notifier,
                 metrics, clock: Callable[[], float], observers=(), reloader=None):
        self.current = spool.current  # the one cell: the spool reads its settings there too
        self.gen, self.spool = gen, spool
        self.events, self.signals, self.notifier, self.clock = events, signals, notifier, clock
        self.report = Reporter(gen.settings, notifier, metrics, observers=observers, current=self.current)
        self.log = self.report.log
        self.schedule: Schedule[Job] = Schedule(limits=lambda: (self.s.max_attempts, self.s.retry_backoff_seconds),
                                                clock=clock)
        self.intake: deque[Candidate] = deque()  # handed over by the watcher, not yet claimed
        self.running: dict[str, Running] = {}
        self.space = Space({"outbox": spool.outbox, "state": spool.state})
        self.room = Room(space=self.space, spool=spool, sample_rate=lambda: self.s.sample_rate,
                         running=self.running, log=self.log, release_job=self.schedule.add,
                         release_file=self.intake.append)
        self.later = Later()
        self.pausing = DiskFull(space=self.space, spool=spool, later=self.later, room=self.room,
                                report=self.report, requeue=self.schedule.add,
                                resume=lambda job: self._enqueue(job, recovered=True))
        self.reloading = Reloading(self, reloader)
        # Threads are made as jobs start, up to max_jobs (which follows the backend): the cap only bounds it.
        self._executors = [ThreadPoolExecutor(max_workers=MAX_JOB_THREADS, thread_name_prefix="job")]
        self._claim_errors: set[str] = set()
        self.pruner = DonePruner()

    @property
    def gen(self) -> Generation:
        """The generation in use: settings, capabilities, backend and job runner."""
        return self.current.gen

    @gen.setter
    def gen(self, gen: Generation) -> None:
        self.current.gen = gen

    @property
    def s(self):
        """The settings in use."""
        return self.current.gen.settings

    @property
    def pool(self):
        """The backend in use (a running job may still use an older one: ``Running.pool``)."""
        return self.current.gen.pool

    @property
    def max_jobs(self) -> int:
        """Jobs in flight: twice the tasks the backend runs at once, which keeps its workers busy while
        a job is between stages.  It follows the backend: a Dask node joining raises it, one leaving
        lowers it (jobs already running finish)."""
        return min(MAX_JOB_THREADS, max(2, 2 * self.pool.capacity()))

    # --- called from other threads ------------------------------------------------
    def on_candidate(self, cand: Candidate) -> None:
        self.events.put(CANDIDATE, cand)

    # --- the loop -------------------------------------------------------------------
    def run(self, watcher, recovered: list[Job] = ()) -> int:
        for job in recovered:
            self._enqueue(job, recovered=True)
        for d in getattr(self.spool, "unrecovered", ()):
            self.later.add(f"recover:{d.name}", lambda d=d: self.pausing.recover_again(d))
        if self.schedule.isolating:
            self.log.info("daemon.isolating", jobs=sum(1 for j in recovered if j.suspect),
                          reason="jobs in flight when the daemon stopped uncleanly run one at a time first")
        self.watch_pool(self.pool)
        watcher.start()
        self.notifier.ready(f"watching {self.spool.inbox}; {len(recovered)} job(s) resumed")
        self.log.info("daemon.ready", inbox=str(self.spool.inbox), outbox=str(self.spool.outbox),
                      workers=self.s.workers, max_jobs=self.max_jobs, resumed=len(recovered),
                      engine=self.s.engine, observer=getattr(watcher, "observer_kind", ""))
        stop_at: float | None = None
        broken: str | None = None
        try:
            while True:
                if self.signals.count and stop_at is None:
                    stop_at = time.monotonic() + self.s.shutdown_grace_seconds
                    self._begin_stop(watcher)
                broken = self.pool.broken
                if broken:
                    self.log.error("daemon.pool_broken", cause=broken)
                    break
                if stop_at is None:
                    self.reloading.step()
                    self.pausing.look()
                    self.room.look()
                    self._take_intake()
                    self._dispatch()
                self._collect()
                self.reloading.retire_idle_pools()
                self._turn()
                if stop_at is not None and (not self.running or self.signals.count > 1
                                            or time.monotonic() >= stop_at):
                    break
                self._receive(self._timeout(stop_at))
        finally:
            watcher.stop()
            self._stop_running()
        self.log.info("daemon.stopped", done=self.report.counts["done"], failed=self.report.counts["failed"],
                      left_queued=len(self.schedule), left_for_next_start=len(self.later))
        if broken:
            raise PoolStartError(f"the worker pool broke: {broken}")
        return 0

    def watch_pool(self, pool) -> None:
        pool.on_broken(lambda reason: self.events.put(POOL_BROKEN, reason))

    def _receive(self, timeout: float) -> None:
        """Block until an event comes or ``timeout`` passes, then take every event waiting.  Only
        candidates carry work; the other kinds wake the loop, which then looks at what changed.
        It wakes every ``SIGNAL_LOOK`` seconds at least, to run a signal's handler that reached
        another thread (``daemon/backends/base.py``)."""
        event = self.events.get(min(timeout, SIGNAL_LOOK))
        while event is not None:
            if event.kind == CANDIDATE:
                self.intake.append(event.value)
            event = self.events.get_nowait()

    def _timeout(self, stop_at: float | None) -> float:
        now = time.monotonic()
        if self.intake and stop_at is None and not self.space.paused:
            return 0.0  # the last turn's claiming ran out of budget
        deadlines = [self.report.next_turn()]
        if stop_at is not None:
            deadlines.append(stop_at)
        elif self.space.paused:
            deadlines.append(self.space.next_look())
        else:
            if (due := self.schedule.next_due()) is not None and len(self.running) < self.max_jobs:
                deadlines.append(now + due - self.clock())  # a full house wakes on a finished job instead
            if (later := self.later.next_due()) is not None:
                deadlines.append(later)
            if (room := self.room.next_due()) is not None:
                deadlines.append(room)
        return max(0.0, min(deadlines) - now)

    def _begin_stop(self, watcher) -> None:
        self.log.info("daemon.stopping", signal=self.signals.last, running=len(self.running),
                      grace_seconds=self.s.shutdown_grace_seconds)
        self.notifier.stopping(f"stopping: {len(self.running)} job(s) finishing")
        # systemd's stop timeout must cover the grace period plus putting jobs back
        self.notifier.extend_timeout(self.s.shutdown_grace_seconds + 30)
        watcher.stop()  # no new files; what is queued stays in work/ for the next start

    def _stop_running(self) -> None:
        """Stop the workers, wait for the job threads, and put unfinished jobs back."""
        if self.running:
            for pool in {id(r.pool): r.pool for r in self.running.values() if r.pool is not None}.values():
                pool.close(0)
            self.pool.close(0)
        self.reloading.close()
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)
        self._collect(putting_back=True)

    # --- intake and dispatch ------------------------------------------------------
    def _take_intake(self) -> None:
        """Claim what the watcher handed over (a bounded number and time per turn, so a burst
        of files does not starve the rest of the loop); nothing while a disk is full."""
        deadline = time.monotonic() + INTAKE_BUDGET
        for _ in range(INTAKE_LIMIT):
            if not self.intake or self.space.paused:
                return
            if time.monotonic() > deadline:
                self.report.heartbeat()
                return
            cand = self.intake.popleft()
            need = self.room.file_need(cand.path, cand.rel) if cand.verdict == "ready" else None
            verdict, folder, needs, free = self.room.check(need)
            if verdict == "wait":  # stays in the inbox; what comes after it goes on
                self.room.hold(cand.rel, cand, folder, needs, free)
                continue
            try:
                job = self.spool.claim(cand.path)
            except Unfinished as exc:  # moved in, not recorded as queued: finished once it can be
                self.pausing.pause(disk_full_error(exc), folder="state")
                self.later.add(f"recover:{exc.job_dir.name}", lambda d=exc.job_dir: self.pausing.recover_again(d))
                return
            except Exception as exc:  # e.g. no permission to move it: the file stays, the daemon too
                if (full := disk_full_error(exc)) is not None:
                    self.intake.appendleft(cand)  # taken when space comes back
                    self.pausing.pause(full)
                    return
                if cand.rel not in self._claim_errors:
                    self._claim_errors.add(cand.rel)
                    self.log.error("job.claim_error", input=cand.rel, error=str(exc))
                continue
            if job is None:
                continue  # claimed already, or removed by the user
            if verdict == "never":
                self._quarantine(job, self.room.never_fits(folder, needs, free), "space")
            elif cand.verdict == "ready":
                self._enqueue(job)
            else:
                self._quarantine(job, f"The input {cand.reason}.", "intake")

    def _enqueue(self, job: Job, recovered: bool = False) -> None:
        self.report.job(job).queued(resumed=recovered)
        self.schedule.add(job)

    def _slots(self) -> int:
        """How many more jobs may start now: one at a time while a suspect waits or runs."""
        if self.schedule.isolating or any(r.job.suspect for r in self.running.values()):
            return 1 - len(self.running)
        return self.max_jobs - len(self.running)

    def _dispatch(self) -> None:
        while not self.space.paused and self._slots() > 0 and (job := self.schedule.pop()) is not None:
            verdict, folder, needs, free = self.room.check(self.room.job_need(job))
            if verdict == "never":
                self._quarantine(job, self.room.never_fits(folder, needs, free), "space")
                continue
            if verdict == "wait":  # out of the queue until it fits; the next job goes on
                self.room.hold(job.rel, job, folder, needs, free)
                continue
            try:
                out_tmp = self.spool.start(job)
            except (OSError, OutputError) as exc:  # the output's folder is blocked, or a disk is full
                self._attempt_failed(job, exc, stage="output")
                continue
            gen = self.gen  # the job keeps its generation's backend and job runner, whatever a reload brings
            fut = self._executors[-1].submit(self._run_one, job, out_tmp, gen.pool, gen.run_job)
            fut.add_done_callback(lambda _f, job_id=job.id: self.events.put(FINISHED, job_id))
            self.running[job.id] = Running(job, fut, time.monotonic(), gen.pool)
            self.report.job(job).started()

    def _run_one(self, job: Job, out_tmp, pool, run_job) -> dict:
        """In a job thread: waits on the pool's futures; moves no file of the spool (the output is
        finished in the job's work folder; ``out_tmp`` gives its format, and names it in errors)."""
        fig = run_job(pool.submit, self.spool.source(job), out_tmp, self.spool.scratch(job),
                      voice=job.voice, group=job.id, progress=self.report.job(job).progress)
        fsync_file(fig["output"])  # on disk here, so that the commit (on the loop) is only renames
        return fig

    # --- results ------------------------------------------------------------------
    def _collect(self, putting_back: bool = False) -> None:
        for job_id, r in list(self.running.items()):
            if not r.future.done() and not putting_back:
                continue
            del self.running[job_id]
            exc = r.future.exception() if r.future.done() and not r.future.cancelled() else CancelledError()
            if putting_back and (exc is not None or not r.future.done()):
                self._put_back(r.job, "the daemon stopped")
            elif exc is not None:
                if isinstance(exc, PoolStartError) or (self.signals.count and _is_shutdown(exc)):
                    # not the input's fault: the pool broke or is being stopped
                    self._put_back(r.job, str(exc))
                else:
                    self._attempt_failed(r.job, exc)
            else:
                self._commit(r, r.future.result())

    def _commit(self, r: Running, fig: dict) -> None:
        job = r.job
        try:
            published = self.spool.commit(job, fig)
        except Exception as exc:
            self._commit_failed(r, fig, exc)
            return
        self.later.done(job.id)
        self.room.forget(job)
        self.report.job(job).done(published.output.relative_to(self.spool.outbox).as_posix(),
                                  time.monotonic() - r.started, fig, sidecar=published.sidecar)

    def _commit_failed(self, r: Running, fig: dict, exc: Exception) -> None:
        job = r.job
        if job.state == JobState.RUNNING and disk_full_error(exc) is None:
            self._attempt_failed(job, exc, stage="commit")  # nothing recorded yet: an attempt that failed
        elif (job.state == JobState.COMMITTING and self.spool.finished(job) is not None
              and self.pausing.out_of_space(job, exc)):
            pass  # the outbox was full before anything reached it: put back, converted again when there is space
        elif job.state == JobState.COMMITTING and not self.spool.published(job) and not passes(exc):
            # It cannot be published (and converting again would end the same way).
            self._quarantine(job, f"The output could not be published as {job.output!r}: {exc}.", "commit")
        else:
            # A full disk, or the output is out and only archiving failed: converting again would
            # duplicate it.  The job stays in work/ as it is; the step is tried again.
            if (full := disk_full_error(exc)) is not None:
                self.pausing.pause(full)
            delay = self.later.add(job.id, lambda: self._commit(r, fig))
            self.report.job(job).error("job.commit_error", exc, state=job.state, retry_in=delay)

    def _attempt_failed(self, job: Job, exc: BaseException, stage: str | None = None) -> None:
        if self.pausing.out_of_space(job, exc):
            return
        cause, err_stage, retryable = describe_error(exc)
        stage = stage or err_stage
        delay = self.schedule.retry_delay(job.attempts, retryable)
        if delay is None:
            self._quarantine(job, cause, stage)
            return
        try:
            self.spool.retry(job, cause, stage, delay)
        except OSError as err:  # the state disk is gone: leave the job in work/, stay up
            self.report.job(job).error("job.retry_error", err)
            return
        self.report.job(job).retry(stage, cause, delay)
        self.schedule.add(job)

    def _quarantine(self, job: Job, cause: str, stage: str) -> None:
        try:
            dest = self.spool.fail(job, cause, stage)
        except OSError as exc:  # the failed folder itself is unusable: leave the job in work/
            if disk_full_error(exc) is not None:  # tried again; a full failed folder does not pause intake
                self.later.add(job.id, lambda: self._quarantine(job, cause, stage))
            self.report.job(job).error("job.quarantine_error", exc)
            return
        self.later.done(job.id)
        self.room.forget(job)
        self.report.job(job).failed(dest.relative_to(self.spool.failed_dir).as_posix(), stage, cause)

    def _put_back(self, job: Job, why: str) -> None:
        try:
            self.spool.put_back(job)
        except OSError as exc:
            self.report.job(job).error("job.put_back_error", exc)
            return
        self.report.job(job).put_back(why)

    # --- health -----------------------------------------------------------------------
    def _turn(self) -> None:
        if self.pruner.due():
            self._prune_done()
        self.report.turn(queued=len(self.schedule) + len(self.intake), running=len(self.running),
                         pool_stats=self.pool.stats(), space=self.space, waits=self.room.waiting_for_space())


    def _prune_done(self) -> None:
        """Archived inputs past VOICE_DAEMON_DONE_RETENTION_DAYS go (a failure is logged, never fatal)."""
        days = self.s.done_retention_days
        try:
            removed = self.pruner.prune(self.spool.done, days)
        except OSError as exc:
            self.log.warning("spool.done_prune_error", error=f"{type(exc).__name__}: {exc}", folder=str(self.spool.done))
            return
        if removed:
            self.log.info("spool.done_pruned", removed=len(removed), older_than_days=days, oldest=removed[0])


def _is_shutdown(exc: BaseException) -> bool:
    if isinstance(exc, CancelledError):
        return True
    if isinstance(exc, TaskError) and exc.kind == "shutdown":
        return True
    return isinstance(exc, PoolClosedError)
