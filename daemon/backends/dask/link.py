"""``Link``: the Dask backend's connection to its cluster — start-up, reconnects, the workers seen.

The backend (``backend.py``) holds one and calls it from its own thread only.  Start-up: a client,
the scheduler told to leave retries to the daemon, the models plugin registered (its failure on a
worker stops the start with the worker's cause), the host's worker warm, a first warm worker.  Then,
at every look (``refresh``): is the scheduler still there (reconnect, or a new client when Dask's own
gives up), which workers are connected and warm, which tasks wait for a worker that is gone.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Callable

from distributed import Client

from daemon import log as logs
from daemon.backends import remote
from daemon.backends.base import exit_cause
from daemon.backends.dask import connect
from daemon.backends.dask.attempts import in_thread
from daemon.backends.dask.view import ClusterView
from daemon.backends.dask.warm import TOPIC
from daemon.errors import PoolStartError

log = logs.get("cluster")

TICK = 0.5            # seconds between looks at the cluster
CONNECT_TRY = 5.0     # seconds per try to reach the scheduler
FORGOTTEN_AFTER = 5.0  # seconds a submitted task stranded on a gone worker may be unknown to the scheduler
#: A stranded task's states on the scheduler that end by themselves: running elsewhere on its host,
#: finished, failed (its outcome follows), or waiting for a worker (cancelled at once, below).
SETTLING = ("processing", "memory", "erred", "no-worker")


class Link:
    """``post(message)``: hands a scheduler event to the backend's thread; ``pump(timeout)``: that
    thread handles its messages for up to ``timeout`` seconds (called while start-up waits);
    ``closing()``: whether the backend is closing."""

    def __init__(self, address: str | None, security, plugin, *, counts: Counter,
                 post: Callable[[tuple], None], pump: Callable[[float], None], closing: Callable[[], bool]):
        self.address, self.security, self.plugin = address, security, plugin
        self.counts, self._post, self._pump, self._closing = counts, post, pump, closing
        self.client: Client | None = None
        self.connected = False
        self.view = ClusterView()
        self.lock = threading.Lock()  # guards ``view`` and ``connected`` for readers on other threads
        self.exits: dict[str, str] = {}  # worker address -> how its process ended (never reused: kept)
        self._registering: Future | None = None
        self._unknown: dict[str, float] = {}  # stranded attempts' keys the scheduler does not know -> since when

    # ---- start-up --------------------------------------------------------------------------
    def open(self, deadline: float, timeout: float, host_started: Future | None) -> None:
        """Connect, load the models everywhere, wait for a warm worker; PoolStartError if not by
        ``deadline`` (``timeout``: its length, for the message)."""
        while not self.connect(deadline):
            self._check(deadline, f"cannot reach the Dask scheduler at {self.address} within {timeout:g} s")
            self._pump(TICK)
        while not self._registering.done():
            self._check(deadline, f"the Dask workers did not load their models within {timeout:g} s")
            self._pump(TICK)
        self._registered()
        self.refresh([])
        while host_started is not None and not host_started.done():
            self._check(None, "")
            self._pump(TICK)
        if host_started is not None:
            host_started.result()
        while not self.view.warm:
            self._check(deadline, f"no Dask worker of {self.address} was ready within {timeout:g} s")
            self._pump(TICK)
            self.refresh([])

    def _check(self, deadline: float | None, message: str) -> None:
        if self._closing():
            raise PoolStartError("the Dask backend closed while starting")
        if deadline is not None and time.monotonic() >= deadline:
            raise PoolStartError(message)

    def connect(self, deadline: float) -> bool:
        """One try to connect (a new client); True once connected and set up."""
        try:
            # direct_to_workers: a result comes from the worker that holds it, not through the scheduler
            client = Client(self.address, security=self.security, timeout=min(CONNECT_TRY, max(
                0.5, deadline - time.monotonic())), set_as_default=False, direct_to_workers=True)
        except (OSError, TimeoutError) as exc:
            log.debug("cluster.connect_failed", scheduler=self.address, error=str(exc))
            return False
        self.client = client
        self._on_connected()
        return True

    def _on_connected(self) -> None:
        client = self.client
        previous = client.run_on_scheduler(connect.own_scheduling)
        client.subscribe_topic(TOPIC, lambda event: self._post(("event", event[1])))
        self._registering = in_thread(client.register_plugin, self.plugin)
        with self.lock:
            self.connected = True
        log.info("cluster.connected", scheduler=self.address, allowed_failures_before=previous)

    def _registered(self) -> None:
        """At start: the plugin ran on every worker there is; its failure stops the start."""
        try:
            self._registering.result()
        except Exception as exc:
            desc = getattr(exc, "description", None)
            cause = remote.summary(desc) if desc else f"{type(exc).__name__}: {exc}"
            err = PoolStartError(f"a Dask worker failed to start: {cause}")
            err.__cause__ = remote.rebuild(desc) if desc else exc
            raise err from err.__cause__

    # ---- the cluster -----------------------------------------------------------------------
    def refresh(self, inflight: list) -> None:
        """A look at the scheduler and the workers; ``inflight``: the attempts sent, to rescue
        those stranded on a worker that is gone."""
        client = self.client
        if client is None:  # Dask's client gave up reconnecting: a new one
            if not self._closing():
                self.connect(time.monotonic() + CONNECT_TRY)
            return
        up = client.status == "running"
        if self.connected and not up:
            log.warning("cluster.scheduler_lost", scheduler=self.address, in_flight=len(inflight))
            with self.lock:
                self.connected = False
                self.view.clear()
        elif up and not self.connected:
            self.counts["reconnects"] += 1
            self._on_connected()
            log.info("cluster.reconnected", scheduler=self.address)
        if not up:
            if client.status == "closed" and not self._closing():
                client.close()
                self.client = None
            return
        try:
            with self.lock:
                self.view.refresh(client)
            self._rescue_stranded(client, inflight)
        except (OSError, TimeoutError) as exc:  # the scheduler just went away: next look sees it
            log.debug("cluster.refresh_failed", error=str(exc))

    def _rescue_stranded(self, client, inflight: list) -> None:
        """A task sent to a worker that was gone already waits for a worker on that host
        ("no-worker": Dask keeps the restriction as a host one): take it back and send it
        elsewhere, not counted as an attempt.  Only that state: a task that may be running is
        left alone (one that was running on the dead worker comes back as KilledWorker, and
        counts; one that Dask moved to another worker of that host just finishes there).

        A task submitted while the client reconnected to a restarted scheduler may never reach
        it, or wait there on samples that were lost with the old one: its Future would wait for
        good.  Unknown to the scheduler, or in no state that ends by itself (``SETTLING``), at looks
        ``FORGOTTEN_AFTER`` seconds apart (a finished task's outcome is handled long before), it
        is cancelled and sent again, not counted."""
        stranded = [a for a in inflight if not self.view.usable(a.worker)]
        if not stranded:
            self._unknown = {}
            return
        states = client.run_on_scheduler(connect.task_states, [a.key for a in stranded])
        waiting = [a for a in stranded if states.get(a.key) == "no-worker"]
        if waiting:
            log.info("cluster.tasks_stranded", tasks=len(waiting))
            client.cancel([a.dask_future for a in waiting if a.dask_future is not None])
        now = time.monotonic()
        unknown = {a.key: self._unknown.get(a.key, now) for a in stranded
                   if states.get(a.key) not in SETTLING and a.dask_future is not None}
        forgotten = [a for a in stranded
                     if a.key in unknown and a.key in self._unknown and now - unknown[a.key] >= FORGOTTEN_AFTER]
        self._unknown = {k: t for k, t in unknown.items() if k not in {a.key for a in forgotten}}
        if forgotten:
            log.info("cluster.tasks_forgotten", tasks=len(forgotten))
            client.cancel([a.dask_future for a in forgotten])
            for a in forgotten:
                self._post(("outcome", a, ("cancelled",)))

    def on_event(self, msg: dict) -> None:
        event = msg.get("event")
        if event == "worker_exit":
            address, cause = msg.get("worker"), exit_cause(msg.get("exitcode"))
            self.exits[address] = cause
            with self.lock:
                self.view.died(address)
            self.counts["restarts"] += 1
            log.warning("cluster.worker_died", worker=address, cause=cause)
        elif event == "init_error":
            self.view.start_failed(msg.get("worker"), msg.get("pid"), msg.get("error") or {})

    def close(self, cancel: list) -> None:
        """Cancel ``cancel`` (Dask futures still out) and close the client."""
        if self.client is None:
            return
        try:
            if cancel and self.client.status == "running":
                self.client.cancel(cancel)
            self.client.close(timeout=10)
        except Exception as exc:  # noqa: BLE001 - closing must go on
            log.debug("cluster.client_close_failed", error=str(exc))
        with self.lock:
            self.connected = False


def connect_label(address: str | None) -> str:
    return address or "local cluster (starting)"
