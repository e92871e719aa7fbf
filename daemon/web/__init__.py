"""The status page (``/``) and its data (``/api/status``), served beside ``/metrics`` by ``server.py``.

``/api/status`` is what ``voice-daemon status --json`` prints, read from the folders, plus
what only the running daemon knows:

    live      the jobs converting now (stage, chunks done of total, audio seconds done),
              and the latest outcomes it saw
    workers   configured, alive, ready, busy, warming up (the pool's own figures)
    metrics   the figures /metrics exports (jobs by outcome, queue, audio seconds, health)

``LiveBoard`` is a job observer (``daemon/supervisor/report.py``): it only updates a few
dicts under a lock; the HTTP thread reads a copy.  ``status.html`` is the page: plain HTML
and a little JavaScript that fetches ``/api/status`` every two seconds (``?refresh=MS``)
and writes every name with ``textContent``, never as HTML, so a file name cannot inject
markup.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from importlib import resources
from typing import Callable

from daemon import __version__
from daemon.spool import collect_status
from daemon.spool.record import iso

RECENT = 10  # outcomes the live board keeps
#: run_job's progress stages, as the page says them
STAGES = {"prepared": "converting", "chunk": "converting", "finishing": "encoding"}


class LiveBoard:
    """The jobs in flight with their progress, and the latest outcomes, as the supervisor reports them."""

    def __init__(self, clock: Callable[[], float] = time.time, keep: int = RECENT):
        self.clock = clock
        self._lock = threading.Lock()
        self._active: dict[str, dict] = {}
        self._recent: deque[dict] = deque(maxlen=keep)

    def job_event(self, kind: str, info: dict) -> None:
        job_id = info.get("job_id")
        now = self.clock()
        with self._lock:
            if kind == "started":
                self._active[job_id] = {**_who(info), "state": "converting", "stage": "decoding",
                                        "started_at": iso(now), "chunks_done": 0, "chunks_total": None,
                                        "audio_seconds_done": 0.0, "audio_seconds_total": None}
            elif kind == "progress" and job_id in self._active:
                entry = self._active[job_id]
                entry["stage"] = STAGES.get(info.get("stage"), info.get("stage") or entry["stage"])
                for key in ("chunks_done", "chunks_total", "audio_seconds_done", "audio_seconds_total"):
                    if info.get(key) is not None:
                        entry[key] = info[key]
            elif kind in ("done", "failed", "retry", "put_back"):
                self._active.pop(job_id, None)
                if kind in ("done", "failed"):
                    self._recent.appendleft({**_who(info), "state": kind, "at": iso(now),
                                             **{k: info.get(k) for k in ("output", "reason", "stage",
                                                                         "audio_seconds", "wall_seconds", "rtf",
                                                                         "chunks")}})

    def snapshot(self) -> dict:
        with self._lock:
            return {"converting": [dict(e) for e in self._active.values()],
                    "recent": [dict(e) for e in self._recent]}


class StatusPage:
    """The pages the HTTP server adds (``routes()``): ``/`` (the page) and ``/api/status`` (its data)."""

    def __init__(self, settings, live: LiveBoard, *, metrics=None, pool_stats: Callable[[], dict] | None = None):
        self.s, self.live, self.metrics, self.pool_stats = settings, live, metrics, pool_stats
        self._page = resources.files(__package__).joinpath("status.html").read_bytes()

    def data(self) -> dict:
        """Everything ``status --json`` says, plus the live board, the workers and the metrics."""
        st = collect_status(self.s)
        stats = _safe(self.pool_stats) or {}
        st.update({
            "live": self.live.snapshot(),
            "workers": {"configured": stats.get("workers", self.s.workers), "alive": stats.get("alive"),
                        "ready": stats.get("ready"), "busy": stats.get("busy"),
                        "warming": stats.get("starting"), "restarts": stats.get("restarts")},
            "metrics": self.metrics.snapshot() if self.metrics is not None else None,
            "engine": self.s.engine, "version": __version__, "generated_at": iso(time.time()),
        })
        return st

    def api(self) -> tuple[int, str, bytes]:
        body = json.dumps(self.data(), ensure_ascii=False, default=str).encode()
        return 200, "application/json; charset=utf-8", body

    def page(self) -> tuple[int, str, bytes]:
        return 200, "text/html; charset=utf-8", self._page

    def routes(self) -> dict[str, Callable[[], tuple[int, str, bytes]]]:
        """Path -> page, for ``server.serve(..., routes=...)``."""
        return {"/": self.page, "/index.html": self.page, "/api/status": self.api}


def _who(info: dict) -> dict:
    return {k: info.get(k) for k in ("job_id", "input", "voice", "engine", "attempts")}


def _safe(fn: Callable[[], dict] | None) -> dict | None:
    try:
        return fn() if fn is not None else None
    except Exception:  # the pool closing under us: the page shows what it has
        return None

