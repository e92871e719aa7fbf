"""What the daemon tells the world about its jobs: log lines, metrics, systemd's STATUS= and heartbeats.

``Reporter`` holds the daemon-wide figures; ``Reporter.job(job)`` gives a ``JobReport``
whose logger is bound once with the job's ``job_id``, ``input``, ``engine`` and ``voice``
(for `shift`, which has no voices, only an inbox voice folder's name, else null, and its
``semitones`` and ``formant``), so every ``job.*`` line carries them.

Observers (the status page's live board, the job hooks) hear the same moments through
``job_event(kind, info)``: queued, started, progress, retry, done, failed, put_back.
They are called on the loop's thread (progress: on the job's thread) and must return at
once; one that raises is logged and the job goes on.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Iterable, Protocol

from daemon import log
from daemon.capabilities import Capabilities
from daemon.engines import abilities
from daemon.generation import Current, Generation, ReadsCurrent
from daemon.spool import error_report_path
from daemon.spool.space import free_bytes


class JobObserver(Protocol):
    def job_event(self, kind: str, info: dict) -> None: ...

#: /healthz calls the loop stalled after ``metrics.stall_seconds`` without a turn: turn at
#: least this many times as often, even with nothing to do.
TURNS_PER_STALL = 3


class Reporter(ReadsCurrent):
    """``current``: the generation whose settings and capabilities each line reads (the supervisor's,
    which a reload swaps); without it, ``settings`` and ``capabilities`` for good."""

    def __init__(self, settings, notifier, metrics, *, monotonic: Callable[[], float] = time.monotonic,
                 observers: Iterable[JobObserver] = (), capabilities: Capabilities | None = None,
                 current: Current | None = None):
        self.current = current or Current(Generation(settings, capabilities or abilities(settings.engine)))
        self.notifier, self.metrics = notifier, metrics
        self.monotonic = monotonic
        self.observers = list(observers)
        self.log = log.get("supervisor")
        self.counts = {"done": 0, "failed": 0, "retried": 0}
        self._jobs: dict[str, JobReport] = {}
        self._last_status = ""
        self._turn_at = monotonic()
        self._beat_due = -math.inf  # the first turn sends one

    def job(self, job) -> "JobReport":
        """The job's report, made once per job and kept until its outcome is logged."""
        report = self._jobs.get(job.id)
        if report is None:
            report = self._jobs[job.id] = JobReport(self, job, self.log.bind(**self.job_fields(job)))
        return report

    def job_fields(self, job) -> dict:
        """What identifies a job in every line: id, input, engine and voice (an engine without
        voices: its settings)."""
        fields = {"job_id": job.id, "input": job.rel, "engine": self.capabilities.engine}
        if not self.capabilities.has_voices:
            # No voices: VOICE_DAEMON_VOICE means nothing here; an inbox/<voice>/ folder is still named.
            fields.update(voice=job.voice, semitones=self.s.shift_semitones, formant=self.s.shift_formant)
        else:
            fields["voice"] = job.voice or self.s.voice
        return fields

    def tell(self, kind: str, job, **info) -> None:
        """Every observer hears ``kind`` for ``job``; a failing one is logged, never raised."""
        if not self.observers:
            return
        event = {**self.job_fields(job), "attempts": job.attempts, **info}
        for obs in self.observers:
            try:
                obs.job_event(kind, event)
            except Exception as exc:  # an observer's bug must not stop the loop or fail the job
                self.log.error("observer.error", observer=type(obs).__name__, kind=kind,
                               error=f"{type(exc).__name__}: {exc}")

    def forget(self, job) -> None:
        self._jobs.pop(job.id, None)

    # --- the daemon's figures ------------------------------------------------------
    def turn(self, *, queued: int, running: int, pool_stats: dict, space=None, waits: list[dict] = ()) -> None:
        """Once per turn of the loop: metrics, the watchdog heartbeat when due, the STATUS line.
        ``space``: the daemon's ``Space`` (which folder is full, if any); ``waits``: the files and
        jobs waiting for room (``room.py``)."""
        self._turn_at = self.monotonic()
        self.metrics.set_queue(queued)
        self.metrics.set_in_flight(running)
        self.metrics.loop_tick()
        self.metrics.observe_pool(pool_stats)
        paused = space.reason() if space is not None else None
        if space is not None:
            self.metrics.observe_space({name: free_bytes(path) for name, path in space.folders.items()},
                                       {name: full.reason for name, full in space.full.items()})
        self.metrics.observe_waits(list(waits))
        self.heartbeat()  # WATCHDOG=1 when due: proves this loop is not stuck
        status = (f"{queued} queued, {running} converting, {self.counts['done']} done, "
                  f"{self.counts['failed']} failed; workers {pool_stats.get('ready', '?')}/"
                  f"{pool_stats.get('workers', '?')} ready")
        if waits:
            status = f"{status}; {len(waits)} waiting for space"
        if paused:
            status = f"paused, {paused}; {status}"
        if status != self._last_status:
            self._last_status = status
            self.notifier.status(status)

    def heartbeat(self) -> None:
        """WATCHDOG=1 when due (half of systemd's WatchdogSec after the last); timed here, by the
        same clock the loop's deadline uses, so that waking at ``next_turn()`` finds it due."""
        interval = self.notifier.watchdog_interval()
        now = self.monotonic()
        if interval is not None and now >= self._beat_due:
            self.notifier.watchdog()  # a failed send is the notifier's to log; the next is due all the same
            self._beat_due = now + interval

    def next_turn(self) -> float:
        """The latest monotonic time of the next turn: the next heartbeat, and often enough for /healthz."""
        beat = self._beat_due if self.notifier.watchdog_interval() is not None else math.inf
        return min(beat, self._turn_at + self.metrics.stall_seconds / TURNS_PER_STALL)


class JobReport:
    """The log lines and counters of one job; the bound logger carries job_id, input, engine, voice."""

    def __init__(self, reporter: Reporter, job, bound):
        self.r, self.job, self.log = reporter, job, bound

    def queued(self, resumed: bool = False) -> None:
        self.log.info("job.queued", attempts=self.job.attempts, **({"resumed": True} if resumed else {}))
        self.r.tell("queued", self.job, resumed=resumed)

    def started(self) -> None:
        self.log.info("job.started", attempt=self.job.attempts)
        self.r.tell("started", self.job)

    def progress(self, stage: str, audio_done: float, **info) -> None:
        """``run_job``'s progress callback (on the job's thread): chunks done of total and the like."""
        self.r.tell("progress", self.job, stage=stage, audio_seconds_done=round(float(audio_done), 3), **info)

    def done(self, output: str, wall: float, fig: dict, sidecar: Path | None = None) -> None:
        """``output``: relative to the outbox; ``sidecar``: where the spool put it (None: none)."""
        audio = float(fig.get("audio_seconds") or 0.0)
        self.r.counts["done"] += 1
        self.r.metrics.job_done(audio, wall)
        figures = {"audio_seconds": round(audio, 3), "wall_seconds": round(wall, 3),
                   "rtf": round(wall / audio, 4) if audio else None, "chunks": fig.get("chunks")}
        self.log.info("job.done", output=output, **figures, attempts=self.job.attempts,
                      task_attempts=fig.get("attempts"), worker_pids=fig.get("worker_pids"), check=fig.get("check"))
        final = Path(self.r.s.outbox).absolute() / output
        self.r.tell("done", self.job, output=str(final), sidecar=str(sidecar) if sidecar else None, **figures,
                    worker_pids=fig.get("worker_pids"), reason=None)
        self.r.forget(self.job)

    def retry(self, stage: str, cause: str, delay: float) -> None:
        self.r.counts["retried"] += 1
        self.r.metrics.job_retried()
        self.log.warning("job.retry", attempts=self.job.attempts, stage=stage, error=cause, retry_in=round(delay, 3))
        self.r.tell("retry", self.job, stage=stage, reason=cause, retry_in=round(delay, 3))

    def failed(self, quarantined: str, stage: str, cause: str) -> None:
        self.r.counts["failed"] += 1
        self.r.metrics.job_failed()
        self.log.error("job.failed", output=None, quarantined=quarantined, attempts=self.job.attempts,
                       stage=stage, error=cause)
        dest = Path(self.r.s.failed_dir).absolute() / quarantined
        self.r.tell("failed", self.job, output=None, failed=str(dest), error_report=str(error_report_path(dest)),
                    stage=stage, reason=cause)
        self.r.forget(self.job)

    def waiting(self, reason: str) -> None:
        """Its attempt was put back, uncounted, for lack of space; it runs again when there is some."""
        self.log.warning("job.waiting_for_space", attempts=self.job.attempts, reason=reason)

    def put_back(self, reason: str) -> None:
        self.log.info("job.put_back", reason=reason)
        self.r.tell("put_back", self.job, reason=reason)
        self.r.forget(self.job)

    def error(self, event: str, exc: BaseException, **fields) -> None:
        """A step of the spool failed (``job.commit_error``, ``job.retry_error``…): the job stays in work/."""
        self.log.error(event, error=str(exc), **fields)

