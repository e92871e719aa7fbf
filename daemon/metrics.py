"""Prometheus metrics and a health check, served over HTTP when asked for.

``Metrics`` holds every metric in its own ``CollectorRegistry`` (never the global
one, so tests and several instances do not collide) and offers one small method per
thing the supervisor knows.  ``start()`` serves ``/metrics`` and ``/healthz`` on
``VOICE_DAEMON_METRICS_ADDR`` from a daemon thread; nothing listens when it is empty.

``/healthz`` answers 200 while the supervisor loop ticks and the workers are alive,
503 before the first tick, when the loop has not ticked for ``stall_seconds``, when no
worker has been ready for that long (or ``workers_ok()`` says no), or while intake is
paused because the output or state folder is full (status ``paused``), or while a file or job
waits for room there (status ``waiting_for_space``; the others go on).

What goes wrong with a client (it hangs up before the answer, resets, stalls past the idle
timeout, sends something that is not HTTP) is one JSON event each (``http.client_error``),
never a traceback on stderr, and at most ``CLIENT_ERROR_BURST`` of them per
``CLIENT_ERROR_WINDOW`` seconds (the next one says how many were held back).
"""

from __future__ import annotations

import json
import math
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from daemon import __version__, log
from daemon.errors import VoiceDaemonError

#: Wall seconds per job: short clips to hour-long recordings.
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, math.inf)
OUTCOMES = ("done", "failed", "retried")
#: A connection that sends nothing for this long is closed: each open one holds a thread.
IDLE_TIMEOUT_SECONDS = 10.0
#: Client faults logged per window; the rest are counted in the next one logged.
CLIENT_ERROR_BURST, CLIENT_ERROR_WINDOW = 10, 60.0
#: A client that went away: its fault, not the server's (logged at info level).
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class MetricsError(VoiceDaemonError):
    """The metrics endpoint cannot listen where VOICE_DAEMON_METRICS_ADDR says."""


class Metrics:
    """Every figure the daemon exports; the supervisor calls the small methods below."""

    def __init__(self, settings=None, *, stall_seconds: float = 30.0,
                 workers_ok: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.stall_seconds = stall_seconds
        self.workers_ok = workers_ok
        self.clock = clock
        self.server: MetricsServer | None = None
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
        #: more pages served beside /metrics and /healthz: path -> () -> (status, content type, body)
        self.routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {}
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

    def route(self, path: str, handler: Callable[[], tuple[int, str, bytes]]) -> None:
        """Serve ``handler()``'s (status, content type, body) at ``path`` too (e.g. the status page)."""
        self.routes[path] = handler

    # --- the HTTP endpoint ---------------------------------------------------------------
    def start(self, addr: str | None = None, *, idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> "MetricsServer | None":
        """Serve /metrics and /healthz on ``addr`` (default: settings.metrics_addr); None when empty.

        Raises MetricsError when the address cannot be bound (in use, not local).
        """
        if addr is None:
            addr = getattr(self.settings, "metrics_addr", "") or ""
        if not addr or self.server is not None:
            return self.server
        host, port = split_addr(addr)
        self.server = MetricsServer(self, host, port, idle_timeout=idle_timeout)
        return self.server

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def split_addr(addr: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, _, port = addr.strip().rpartition(":")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    throttle = log.Throttle(CLIENT_ERROR_BURST, CLIENT_ERROR_WINDOW)  # replaced per server in MetricsServer

    def handle_error(self, request, client_address):
        """socketserver prints a traceback on stderr here: one throttled JSON event instead."""
        exc = sys.exc_info()[1]
        client_error(self.throttle, client_address, f"{type(exc).__name__}: {exc}",
                     gone=isinstance(exc, CLIENT_GONE))


def client_error(throttle: log.Throttle, client_address, error: str, *, gone: bool, request: str | None = None) -> None:
    """``http.client_error``: info for a client's own fault (it hung up, stalled, sent garbage), error
    for one the server raised; dropped beyond the throttle's burst, counted in ``held_back``."""
    logged, held = throttle.allow()
    if not logged:
        return
    client = client_address[0] if isinstance(client_address, tuple) and client_address else str(client_address)
    fields = {"client": client, "error": error[:300], "held_back": held}
    if request:
        fields["request"] = request[:200]
    (log.get("metrics").info if gone else log.get("metrics").error)("http.client_error", **fields)


class MetricsServer:
    """A ThreadingHTTPServer in a daemon thread; ``close()`` stops it and joins the thread."""

    def __init__(self, metrics: Metrics, host: str, port: int, *, idle_timeout: float = IDLE_TIMEOUT_SECONDS):
        server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host else _Server
        try:
            self.httpd = server_cls((host, port), _handler(metrics, idle_timeout))
        except OSError as exc:
            raise MetricsError(f"VOICE_DAEMON_METRICS_ADDR={host}:{port}: cannot listen: {exc.strerror or exc}") from exc
        self.httpd.throttle = log.Throttle(CLIENT_ERROR_BURST, CLIENT_ERROR_WINDOW)
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="metrics-http", daemon=True)
        self.thread.start()
        log.get("metrics").info("metrics.listening", url=self.url + "/metrics")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _handler(metrics: Metrics, idle_timeout: float):
    class Handler(BaseHTTPRequestHandler):
        server_version = f"voice-daemon/{__version__}"
        timeout = idle_timeout  # on the connection's socket: a silent client is dropped, its thread ends

        def do_GET(self):  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path in metrics.routes:
                try:
                    code, content_type, body = metrics.routes[path]()
                except Exception as exc:  # a broken page must not take the scrape endpoint with it
                    log.get("metrics").error("metrics.route_error", path=path, error=f"{type(exc).__name__}: {exc}")
                    code, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
                self._send(code, content_type, body)
            elif path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept"))
                self._send(200, content_type, encoder(metrics.registry))
            elif path == "/healthz":
                ok, body = metrics.health()
                self._send(200 if ok else 503, "application/json",
                           json.dumps(body, ensure_ascii=False).encode() + b"\n")
            elif path == "/":
                self._send(200, "text/plain; charset=utf-8", b"voice-daemon: /metrics /healthz\n")
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_error(self, fmt, *args):
            """A request that is not HTTP (400, 414, 501) or a client silent past the idle timeout:
            http.server would print it on stderr."""
            client_error(self.server.throttle, self.client_address, fmt % args,
                         gone=True, request=getattr(self, "requestline", None))

        def log_message(self, fmt, *args):  # quiet: scrapes every few seconds would flood the journal
            log.get("metrics").debug("metrics.request", client=self.client_address[0], request=fmt % args)

    return Handler
