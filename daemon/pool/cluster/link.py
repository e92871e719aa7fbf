"""The Dask backend's link to its cluster: start-up, the connection, and the look at the workers.

A part of ``DaskBackend`` (``backend.py``), kept apart to keep each file readable: these methods
run on the backend's thread and use its state.  Start-up: the local cluster (if the backend owns
one), a client, the scheduler told to leave retries to the daemon, the models plugin registered
(its failure on a worker stops the start with the worker's cause), the host's worker warm, a first
warm worker.  Then, twice a second: is the scheduler still there (reconnect, or a new client when
Dask's own gives up), which workers are connected and warm, which tasks wait for a worker gone.
"""

from __future__ import annotations

import time

from distributed import Client

from daemon import log as logs
from daemon.errors import PoolStartError
from daemon.pool import remote
from daemon.pool.cluster import connect
from daemon.pool.cluster.attempts import in_thread
from daemon.pool.cluster.warm import TOPIC
from daemon.pool.worker import exit_cause

log = logs.get("cluster")

TICK = 0.5            # seconds between looks at the cluster
CONNECT_TRY = 5.0     # seconds per try to reach the scheduler


class ClusterLink:
    def _open(self) -> bool:
        """Start the local cluster (if ours), connect, load the models; resolve ``started``."""
        t0 = time.monotonic()
        deadline = t0 + self.start_timeout
        connect.quiet_dask_logs()
        log.info("cluster.starting", scheduler=connect_label(self.address))
        try:
            if self._local_cluster is not None:
                self._cluster = self._local_cluster()
                self.address = self._cluster.scheduler_address
            while not self._client_ready(deadline):
                if self._closing:
                    raise PoolStartError("the Dask backend closed while starting")
                if time.monotonic() >= deadline:
                    raise PoolStartError(f"cannot reach the Dask scheduler at {self.address} "
                                         f"within {self.start_timeout:g} s")
            self._wait_registered(deadline)
            self._wait_host()
            while not self._view.warm:
                if self._closing:
                    raise PoolStartError("the Dask backend closed while starting")
                if time.monotonic() >= deadline:
                    raise PoolStartError(f"no Dask worker of {self.address} was ready within "
                                         f"{self.start_timeout:g} s")
                self._wait(TICK)
                self._refresh()
        except BaseException as exc:
            err = exc if isinstance(exc, PoolStartError) else PoolStartError(f"cannot start the Dask backend: {exc}")
            if err is not exc:
                err.__cause__ = exc
            log.error("cluster.start_failed", scheduler=connect_label(self.address), error=str(err))
            self.started.set_exception(err)
            return False
        log.info("cluster.started", scheduler=self.address, workers=len(self._view.workers),
                 ready=len(self._view.warm), threads=self._view.capacity, seconds=round(time.monotonic() - t0, 3))
        self.started.set_result(None)
        return True

    def _client_ready(self, deadline: float) -> bool:
        """One try to connect (a new client); True once connected and set up."""
        try:
            client = Client(self.address, security=self.security, timeout=min(CONNECT_TRY, max(
                0.5, deadline - time.monotonic())), set_as_default=False)
        except (OSError, TimeoutError) as exc:
            log.debug("cluster.connect_failed", scheduler=self.address, error=str(exc))
            self._wait(TICK)
            return False
        self._client = client
        self._on_connected()
        return True

    def _on_connected(self) -> None:
        client = self._client
        previous = client.run_on_scheduler(connect.own_retries)
        client.subscribe_topic(TOPIC, lambda event: self._inbox.put(("event", event[1])))
        self._registering = in_thread(client.register_plugin, self.plugin)
        with self._lock:
            self.connected = True
        log.info("cluster.connected", scheduler=self.address, allowed_failures_before=previous)

    def _wait_registered(self, deadline: float) -> None:
        """At start: the plugin ran on every worker there is; its failure stops the start."""
        while not self._registering.done():
            if self._closing:
                raise PoolStartError("the Dask backend closed while starting")
            if time.monotonic() >= deadline:
                raise PoolStartError(f"the Dask workers did not load their models within {self.start_timeout:g} s")
            self._wait(TICK)
        try:
            self._registering.result()
        except Exception as exc:
            desc = getattr(exc, "description", None)
            cause = remote.summary(desc) if desc else f"{type(exc).__name__}: {exc}"
            err = PoolStartError(f"a Dask worker failed to start: {cause}")
            err.__cause__ = remote.rebuild(desc) if desc else exc
            raise err from err.__cause__
        self._refresh()

    def _wait_host(self) -> None:
        """At start: the worker on this host is warm too (its failure stops the start)."""
        if self._host_started is None:
            return
        while not self._host_started.done():
            if self._closing:
                raise PoolStartError("the Dask backend closed while starting")
            self._wait(TICK)
        self._host_started.result()

    # ---- the cluster -------------------------------------------------------------------------
    def _refresh(self) -> None:
        client = self._client
        if client is None:  # Dask's client gave up reconnecting: a new one
            if not self._closing:
                self._client_ready(time.monotonic() + CONNECT_TRY)
            return
        up = client.status == "running"
        if self.connected and not up:
            log.warning("cluster.scheduler_lost", scheduler=self.address, in_flight=len(self._inflight))
            with self._lock:
                self.connected = False
                self._view.clear()
        elif up and not self.connected:
            self.counts["reconnects"] += 1
            self._on_connected()
            log.info("cluster.reconnected", scheduler=self.address)
        if not up:
            if client.status == "closed" and not self._closing:
                client.close()
                self._client = None
            return
        try:
            with self._lock:
                self._view.refresh(client)
            self._rescue_stranded(client)
        except (OSError, TimeoutError) as exc:  # the scheduler just went away: next look sees it
            log.debug("cluster.refresh_failed", error=str(exc))

    def _rescue_stranded(self, client) -> None:
        """A task sent to a worker that was gone already waits for a worker on that host
        ("no-worker": Dask keeps the restriction as a host one): take it back and send it
        elsewhere, not counted as an attempt.  Only that state: a task that may be running is
        left alone (one that was running on the dead worker comes back as KilledWorker, and
        counts; one that Dask moved to another worker of that host just finishes there)."""
        stranded = [a for a in self._inflight.values() if not self._view.usable(a.worker)]
        if not stranded:
            return
        states = client.run_on_scheduler(connect.task_states, [a.key for a in stranded])
        waiting = [a for a in stranded if states.get(a.key) == "no-worker"]
        if waiting:
            log.info("cluster.tasks_stranded", tasks=len(waiting))
            client.cancel([a.dask_future for a in waiting])

    def _on_event(self, msg: dict) -> None:
        event = msg.get("event")
        if event == "worker_exit":
            address, cause = msg.get("worker"), exit_cause(msg.get("exitcode"))
            self._exits[address] = cause  # a worker's address is never reused: kept, small
            with self._lock:
                self._view.died(address)
            self.counts["restarts"] += 1
            log.warning("cluster.worker_died", worker=address, cause=cause)
        elif event == "init_error":
            self._view.start_failed(msg.get("worker"), msg.get("pid"), msg.get("error") or {})


def connect_label(address: str | None) -> str:
    return address or "local cluster (starting)"
