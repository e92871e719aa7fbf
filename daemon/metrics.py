"""Prometheus metrics and the health check: the figures, and their exposition.

``Metrics`` holds every metric in its own ``CollectorRegistry`` (never the global
one, so tests and several instances do not collide) and offers one small method per
thing the supervisor knows.  ``daemon/web/server.py`` serves them (``/metrics``,
``/healthz``) on ``VOICE_DAEMON_METRICS_ADDR``.

``health()`` says ok while the supervisor loop ticks and the workers are alive; not ok
("starting") before the first tick, ("stalled") when the loop has not ticked for ``stall_seconds``,
when no worker has been ready for that long (or ``workers_ok()`` says no), ("paused") while intake is
paused because the output or state folder is full, or ("waiting_for_space") while a file or job
waits for room there (the others go on).
"""

from __future__ import annotations

import math
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from daemon import __version__

#: Wall seconds per job: short clips to hour-long recordings.
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, math.inf)
OUTCOMES = ("done", "failed", "retried")


class Metrics:
    """Every figure the daemon exports; the supervisor calls the small methods below."""

    def __init__(self, settings=None, *, stall_seconds: float = 30.0,
                 workers_ok: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.stall_seconds = stall_seconds
        self.workers_ok = workers_ok
        self.clock = clock
        self._started = clock()
        self._last_tick: float | None = None
        self._last_seen = self._started  # "since start" until the first event or scan
        self._workers_last_ready: float | None = None
        self._pool_restarts = 0
        # Plain copies of what /healthz reports, so it needs no private prometheus API.
        self._now = {"queue_depth": 0, "jobs_in_flight": 0, "workers_ready": 0}
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._full: dict[str, str] = {}  # folder -> why it is full
        self._free: dict[str, int | None] = {}
        self._waits: list[dict] = []  # files and jobs waiting for room (supervisor/room.py)
        self._figures = {"audio_seconds_total": 0.0, "worker_restarts_total": 0, "workers_configured": 0,
                         "workers_alive": 0, "workers_busy": 0}
        self._register()

    def _register(self) -> None:
        settings = self.settings
        # The *_created series double the output and no dashboard reads them (process-wide switch).
        disable_created_metrics()
        r = self.registry = CollectorRegistry(auto_describe=True)
        ns = "voice_daemon"
        self.jobs = Counter("jobs", "Jobs finished, by outcome (retried: an attempt failed, another follows).",
                            ["outcome"], namespace=ns, registry=r)
        for outcome in OUTCOMES:
            self.jobs.labels(outcome)  # exported as 0 before the first job
        self.queue = Gauge("queue_depth", "Jobs waiting (new, recovered, or in retry back-off).",
                           namespace=ns, registry=r)
        self.in_flight = Gauge("jobs_in_flight", "Jobs being converted now.", namespace=ns, registry=r)
        self.restarts = Counter("worker_restarts", "Worker processes replaced after a crash or hang.",
                                namespace=ns, registry=r)
        self.audio = Counter("audio_seconds", "Seconds of audio converted (successful jobs).",
                             namespace=ns, registry=r)
        self.duration = Histogram("job_duration_seconds", "Wall seconds from dispatch to commit of a successful job.",
                                  namespace=ns, registry=r, buckets=DURATION_BUCKETS)
        self.workers = {k: Gauge(f"workers_{k}", f"Worker processes: {k}.", namespace=ns, registry=r)
                        for k in ("configured", "alive", "ready", "busy")}
        if settings is not None:
            self.workers["configured"].set(settings.workers)
            self._figures["workers_configured"] = settings.workers
        # Where the tasks run: with the dask backend "workers" are the cluster's worker processes.
        self.backend = Gauge("backend_info", "Where tasks run: backend and scheduler (always 1).",
                             ["backend", "scheduler"], namespace=ns, registry=r)
        self._backend_labels = (getattr(settings, "backend", "local"), getattr(settings, "dask_scheduler", ""))
        self.backend.labels(*self._backend_labels).set(1)
        self.backend_connected = Gauge("backend_connected", "1 while the backend can run tasks (the Dask "
                                       "scheduler is connected; always 1 for the local pool).",
                                       namespace=ns, registry=r)
        self.backend_connected.set(1)
        Gauge("watcher_activity_age_seconds", "Seconds since the watcher last saw an event or finished a scan.",
              namespace=ns, registry=r).set_function(lambda: self.clock() - self._last_seen)
        Gauge("loop_tick_age_seconds", "Seconds since the supervisor loop last ran (NaN before the first run).",
              namespace=ns, registry=r).set_function(self._tick_age)
        self.disk_free = Gauge("disk_free_bytes", "Bytes the daemon may still write in the folder.", ["folder"],
                               namespace=ns, registry=r)
        self.disk_full = Gauge("disk_full", "1 while the folder is full (intake paused).", ["folder"],
                               namespace=ns, registry=r)
        for folder in ("outbox", "state"):
            self.disk_full.labels(folder).set(0)
        self.waiting = Gauge("jobs_waiting_for_space", "Files and jobs waiting for room in the outbox or state "
                             "folder (the others go on).", namespace=ns, registry=r)
        Gauge("intake_paused", "1 while no new file is taken because a folder is full.", namespace=ns, registry=r
              ).set_function(lambda: 1.0 if self._full else 0.0)
        Gauge("healthy", "1 when /healthz answers 200.", namespace=ns, registry=r
              ).set_function(lambda: 1.0 if self.health()[0] else 0.0)
        info = Gauge("build_info", "Version and engine (always 1).", ["version", "engine"],
                     namespace=ns, registry=r)
        info.labels(__version__, getattr(settings, "engine", "")).set(1)
        ProcessCollector(registry=r)  # CPU, memory, open files of the main process

    # --- called by the supervisor (main thread) and the watcher (its thread) ------
    def job_done(self, audio_s: float, wall_s: float) -> None:
        self._count("done")
        self.audio.inc(max(0.0, float(audio_s or 0.0)))
        self._figures["audio_seconds_total"] += max(0.0, float(audio_s or 0.0))
        self.duration.observe(max(0.0, float(wall_s)))

    def job_failed(self) -> None:
        self._count("failed")

    def job_retried(self) -> None:
        self._count("retried")

    def _count(self, outcome: str) -> None:
        self.jobs.labels(outcome).inc()
        self._counts[outcome] += 1

    def set_queue(self, n: int) -> None:
        self.queue.set(n)
        self._now["queue_depth"] = int(n)

    def set_in_flight(self, n: int) -> None:
        self.in_flight.set(n)
        self._now["jobs_in_flight"] = int(n)

    def worker_restarted(self, n: int = 1) -> None:
        if n > 0:
            self.restarts.inc(n)
            self._figures["worker_restarts_total"] += n

    def set_workers(self, alive: int, ready: int, busy: int | None = None,
                    configured: int | None = None) -> None:
        self.workers["alive"].set(alive)
        self.workers["ready"].set(ready)
        self._now["workers_ready"] = int(ready)
        self._figures["workers_alive"] = int(alive)
        if busy is not None:
            self.workers["busy"].set(busy)
            self._figures["workers_busy"] = int(busy)
        if configured is not None:
            self.workers["configured"].set(configured)
            self._figures["workers_configured"] = int(configured)
        if ready > 0:
            self._workers_last_ready = self.clock()

    def observe_pool(self, stats: dict) -> None:
        """Take the backend's ``stats()`` dict: worker figures, and restarts since the last call."""
        self.set_workers(int(stats.get("alive", 0)), int(stats.get("ready", 0)),
                         busy=stats.get("busy"), configured=stats.get("workers"))
        labels = (stats.get("backend", "local"), stats.get("scheduler", ""))
        if labels != self._backend_labels:  # a local cluster's address is known once it runs
            self.backend.remove(*self._backend_labels)
            self.backend.labels(*labels).set(1)
            self._backend_labels = labels
        connected = bool(stats.get("connected", True))
        self.backend_connected.set(1 if connected else 0)
        self._now.update(backend=labels[0], scheduler=labels[1], backend_connected=connected)
        total = int(stats.get("restarts", 0))
        self.worker_restarted(total - self._pool_restarts)
        self._pool_restarts = max(self._pool_restarts, total)

    def observe_space(self, free: dict[str, int | None], full: dict[str, str]) -> None:
        """Free bytes per folder, and the folders that are full (with why)."""
        for folder, n in free.items():
            if n is not None:
                self.disk_free.labels(folder).set(n)
        for folder in set(self._full) | set(full) | set(free):
            self.disk_full.labels(folder).set(1 if folder in full else 0)
        self._full, self._free = dict(full), dict(free)

    def observe_waits(self, waits: list[dict]) -> None:
        """What waits for space: input, folder, path, needs_bytes, free_bytes, since, reason."""
        self._waits = waits
        self.waiting.set(len(waits))

    def watcher_seen(self) -> None:
        self._last_seen = self.clock()  # a float store: safe from the watcher's thread

    def loop_tick(self) -> None:
        self._last_tick = self.clock()

    # --- health -----------------------------------------------------------------------
    def _tick_age(self) -> float:
        return math.nan if self._last_tick is None else self.clock() - self._last_tick

    def health(self) -> tuple[bool, dict]:
        now = self.clock()
        problems = []
        if self._last_tick is None:
            status = "starting"
            problems.append("the supervisor loop has not started (workers warming up)")
        else:
            status = "ok"
            age = now - self._last_tick
            if age > self.stall_seconds:
                status = "stalled"
                problems.append(f"the supervisor loop has not run for {age:.0f} s")
        if self._workers_last_ready is not None and now - self._workers_last_ready > self.stall_seconds:
            status = "stalled" if status == "ok" else status
            problems.append(f"no worker has been ready for {now - self._workers_last_ready:.0f} s")
        if self.workers_ok is not None:
            try:
                ok = bool(self.workers_ok())
            except Exception as exc:  # a failing probe is a failing check, not a crashed server
                ok, problems = False, problems + [f"workers check raised {type(exc).__name__}: {exc}"]
            if not ok:
                status = "stalled" if status == "ok" else status
                problems.append("the workers check failed")
        if self._full:
            status = "paused" if status == "ok" else status
            problems += [f"intake paused: {why}" for why in self._full.values()]
        if self._waits:
            status = "waiting_for_space" if status == "ok" else status
            problems += [f"{w['input']} waits for space: {w['reason']}" for w in self._waits]
        body = {
            "status": status,
            "problems": problems,
            "loop_tick_age_seconds": None if self._last_tick is None else round(now - self._last_tick, 3),
            "watcher_activity_age_seconds": round(now - self._last_seen, 3),
            **self._now,
            "jobs": dict(self._counts),
            "disk_free_bytes": dict(self._free),
            "waiting_for_space": list(self._waits),
        }
        return not problems, body

    def snapshot(self) -> dict:
        """The figures /metrics exports, as plain JSON (for the status page)."""
        ok, body = self.health()
        return {**body, **{k: round(v, 3) if isinstance(v, float) else v for k, v in self._figures.items()},
                "healthy": ok}

    def exposition(self, accept: str | None = None) -> tuple[str, bytes]:
        """``/metrics``: (content type, body) in the format the ``Accept`` header asks for
        (Prometheus text by default, OpenMetrics on request)."""
        encoder, content_type = choose_encoder(accept)
        return content_type, encoder(self.registry)
