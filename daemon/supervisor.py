"""The loop: intake → claim → dispatch → commit / retry / quarantine, and shutdown.

One thread (the main one) makes every decision and every move of a file.  Signal
handlers only count signals.  Each job's orchestration (``convert.run_job``: prepare →
chunks in parallel → finish) runs in a small bounded thread pool here; those threads
only wait on the worker pool's futures, the CPU work happens in the spawn children.

Shutdown (SIGTERM/SIGINT): stop intake, let running jobs finish for
SHUTDOWN_GRACE_SECONDS, then stop the workers and put what did not finish back in
the spool (resumed at the next start).  A second signal skips the wait.
"""

from __future__ import annotations

import heapq
import queue
import signal
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from daemon import log
from daemon.errors import InputError, ModelError, OutputError, PoolClosedError, PoolStartError, TaskError
from daemon.spool import Job, Spool, fsync_file
from daemon.watcher import Candidate

TICK = 0.2  # longest the loop sleeps; a finished job or a new file wakes it sooner


class Signals:
    """Counts SIGTERM/SIGINT; the handler does nothing else (the loop acts)."""

    def __init__(self):
        self.count = 0
        self.last: str | None = None
        self._old: dict[int, object] = {}

    def install(self) -> "Signals":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _handle(self, signum, _frame) -> None:
        self.count += 1
        self.last = signal.Signals(signum).name


@dataclass
class Running:
    job: Job
    future: Future
    started: float  # monotonic


def describe_error(exc: BaseException) -> tuple[str, str, bool]:
    """(cause in one sentence, stage, retryable) for a failed attempt."""
    if isinstance(exc, InputError):
        return f"The input {exc.cause}.", exc.stage, False
    if isinstance(exc, OutputError):
        return f"The output cannot be written: {exc.cause}.", "encode", False
    if isinstance(exc, ModelError):
        return f"A model could not be used: {exc}.", "model", False
    if isinstance(exc, TaskError):
        return f"{exc}.", exc.stage or exc.kind, exc.retryable
    if isinstance(exc, OSError):
        return f"A file operation failed: {exc}.", "io", True
    return f"Unexpected {type(exc).__name__}: {exc}.", "internal", bool(getattr(exc, "retryable", True))


class Supervisor:
    def __init__(self, settings, spool: Spool, pool, *, signals: Signals | None = None,
                 notifier=None, metrics=None, run_job: Callable | None = None,
                 clock: Callable[[], float] = time.time):
        self.s, self.spool, self.pool = settings, spool, pool
        self.signals = signals or Signals()
        if notifier is None:
            from daemon.systemd import Notifier

            notifier = Notifier()
        if metrics is None:
            from daemon.metrics import Metrics

            metrics = Metrics(settings)  # counted, not served: only app.py starts the server
        self.notifier, self.metrics = notifier, metrics
        if run_job is None:
            from daemon.convert import run_job
        self.run_job = run_job
        self.clock = clock
        self.max_jobs = max(2, 2 * settings.workers)  # keeps workers busy while a job is between stages
        self.intake: queue.SimpleQueue[Candidate] = queue.SimpleQueue()
        self.ready: deque[Job] = deque()
        self.delayed: list[tuple[float, str, Job]] = []  # (not_before, id, job): retry backoff
        self.running: dict[str, Running] = {}
        self.counts = {"done": 0, "failed": 0, "retried": 0}
        self._wake = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=self.max_jobs, thread_name_prefix="job")
        self._claim_errors: set[str] = set()
        self._last_status = ""
        self.log = log.get("supervisor")

    # --- called from other threads ------------------------------------------------
    def on_candidate(self, cand: Candidate) -> None:
        self.intake.put(cand)
        self._wake.set()

    # --- the loop -------------------------------------------------------------------
    def run(self, watcher, recovered: list[Job] = ()) -> int:
        for job in recovered:
            self._enqueue(job, recovered=True)
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
                    self._take_intake()
                    self._dispatch()
                self._collect()
                self._heartbeat()
                if stop_at is not None and (not self.running or self.signals.count > 1
                                            or time.monotonic() >= stop_at):
                    break
                self._wake.wait(TICK)
                self._wake.clear()
        finally:
            watcher.stop()
            self._stop_running()
        self.log.info("daemon.stopped", done=self.counts["done"], failed=self.counts["failed"],
                      left_queued=len(self.ready) + len(self.delayed))
        if broken:
            raise PoolStartError(f"the worker pool broke: {broken}")
        return 0

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
            self.pool.close(0)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._collect(putting_back=True)

    # --- intake and dispatch ------------------------------------------------------
    def _take_intake(self, limit: int = 64, budget: float = 1.0) -> None:
        """Claim what the watcher handed over (a bounded number and time per turn, so a burst
        of files does not starve the rest of the loop: a claim across filesystems copies)."""
        deadline = time.monotonic() + budget
        for _ in range(limit):
            if time.monotonic() > deadline:
                self.notifier.heartbeat()
                return
            try:
                cand = self.intake.get_nowait()
            except queue.Empty:
                return
            try:
                job = self.spool.claim(cand.path)
            except Exception as exc:  # e.g. no permission to move it: the file stays, the daemon too
                if cand.rel not in self._claim_errors:
                    self._claim_errors.add(cand.rel)
                    self.log.error("job.claim_error", input=cand.rel, error=str(exc))
                continue
            if job is None:
                continue  # claimed already, or removed by the user
            if cand.verdict == "ready":
                self._enqueue(job)
            else:
                self._quarantine(job, f"The input {cand.reason}.", "intake")

    def _enqueue(self, job: Job, recovered: bool = False) -> None:
        self.log.info("job.queued", job_id=job.id, input=job.rel, voice=job.voice or self.s.voice,
                      attempts=job.attempts, **({"resumed": True} if recovered else {}))
        if job.not_before > self.clock():
            heapq.heappush(self.delayed, (job.not_before, job.id, job))
        else:
            self.ready.append(job)

    def _dispatch(self) -> None:
        now = self.clock()
        while self.delayed and self.delayed[0][0] <= now:
            self.ready.append(heapq.heappop(self.delayed)[2])
        while self.ready and len(self.running) < self.max_jobs:
            job = self.ready.popleft()
            try:
                out_tmp = self.spool.start(job)
            except OSError as exc:
                self._attempt_failed(job, exc)
                continue
            fut = self._executor.submit(self._run_one, job, self.spool.source(job), out_tmp, self.spool.scratch(job))
            fut.add_done_callback(lambda _f: self._wake.set())
            self.running[job.id] = Running(job, fut, time.monotonic())
            self.log.info("job.started", job_id=job.id, input=job.rel, engine=self.s.engine,
                          voice=job.voice or self.s.voice, attempt=job.attempts)

    def _run_one(self, job: Job, src: Path, out_tmp: Path, scratch: Path) -> dict:
        """In a job thread: waits on the pool's futures; moves no file of the spool."""
        transcript = None
        if self.s.engine == "resynth" and src.suffix.lower() != ".txt":  # a .txt alone is itself the job
            from daemon.convert import find_transcript
            from daemon.engines.resynth.transcript import load_transcript

            if (tpath := find_transcript(src)) is not None:
                transcript = load_transcript(tpath)
        fig = self.run_job(self.pool.submit, src, out_tmp, scratch, voice=job.voice, group=job.id,
                           transcript=transcript)
        fsync_file(out_tmp)  # durable before the rename makes it visible
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
            final = self.spool.commit(job, fig)
        except Exception as exc:
            if job.state in ("committing", "committed"):
                # The output may already be published: converting again would duplicate it.
                # The job stays in work/ in that state; the next start's recovery finishes it.
                self.log.error("job.commit_error", job_id=job.id, input=job.rel, state=job.state, error=str(exc))
                return
            self._attempt_failed(job, exc, stage="commit")
            return
        wall = time.monotonic() - r.started
        audio = float(fig.get("audio_seconds") or 0.0)
        self.counts["done"] += 1
        self.metrics.job_done(audio, wall)
        self.log.info("job.done", job_id=job.id, input=job.rel,
                      output=final.relative_to(self.spool.outbox).as_posix(), engine=self.s.engine,
                      voice=job.voice or self.s.voice, audio_seconds=round(audio, 3),
                      wall_seconds=round(wall, 3), rtf=round(wall / audio, 4) if audio else None,
                      attempts=job.attempts, task_attempts=fig.get("attempts"),
                      worker_pids=fig.get("worker_pids"), chunks=fig.get("chunks"))

    def _attempt_failed(self, job: Job, exc: BaseException, stage: str | None = None) -> None:
        cause, err_stage, retryable = describe_error(exc)
        stage = stage or err_stage
        if retryable and job.attempts < self.s.max_attempts:
            delay = self.s.retry_backoff_seconds * 2 ** max(0, job.attempts - 1)
            try:
                self.spool.retry(job, cause, stage, delay)
            except OSError as err:  # the state disk is full or gone: leave the job in work/, stay up
                self.log.error("job.retry_error", job_id=job.id, input=job.rel, error=str(err))
                return
            self.counts["retried"] += 1
            self.metrics.job_retried()
            self.log.warning("job.retry", job_id=job.id, input=job.rel, engine=self.s.engine,
                             voice=job.voice or self.s.voice, attempts=job.attempts, stage=stage,
                             error=cause, retry_in=round(delay, 3))
            heapq.heappush(self.delayed, (job.not_before, job.id, job))
            return
        self._quarantine(job, cause, stage)

    def _quarantine(self, job: Job, cause: str, stage: str) -> None:
        try:
            dest = self.spool.fail(job, cause, stage)
        except OSError as exc:  # the failed folder itself is unusable: leave the job in work/
            self.log.error("job.quarantine_error", job_id=job.id, input=job.rel, error=str(exc))
            return
        self.counts["failed"] += 1
        self.metrics.job_failed()
        self.log.error("job.failed", job_id=job.id, input=job.rel, output=None,
                       quarantined=dest.relative_to(self.spool.failed_dir).as_posix(), engine=self.s.engine,
                       voice=job.voice or self.s.voice, attempts=job.attempts, stage=stage, error=cause)

    def _put_back(self, job: Job, why: str) -> None:
        try:
            self.spool.put_back(job)
        except OSError as exc:
            self.log.error("job.put_back_error", job_id=job.id, input=job.rel, error=str(exc))
            return
        self.log.info("job.put_back", job_id=job.id, input=job.rel, reason=why)

    # --- health -----------------------------------------------------------------------
    def _heartbeat(self) -> None:
        queued = len(self.ready) + len(self.delayed) + self.intake.qsize()
        self.metrics.set_queue(queued)
        self.metrics.set_in_flight(len(self.running))
        self.metrics.loop_tick()
        stats = self.pool.stats()
        self.metrics.observe_pool(stats)
        self.notifier.heartbeat()  # WATCHDOG=1 when due: proves this loop is not stuck
        status = (f"{queued} queued, {len(self.running)} converting, {self.counts['done']} done, "
                  f"{self.counts['failed']} failed; workers {stats.get('ready', '?')}/{stats.get('workers', '?')} ready")
        if status != self._last_status:
            self._last_status = status
            self.notifier.status(status)


def _is_shutdown(exc: BaseException) -> bool:
    if isinstance(exc, CancelledError):
        return True
    if isinstance(exc, TaskError) and exc.kind == "shutdown":
        return True
    return isinstance(exc, PoolClosedError)
