"""What the daemon knows of its cluster's workers: who is connected, warm, busy, and how many threads.

``ClusterView.refresh(client)`` asks the scheduler (a few small calls, on the backend's thread,
about twice a second): the workers and their threads, what each is processing, and, from each
worker not yet known to be warm, its ``warm_state``.  Only warm workers count as capacity: a
process still loading its models gets no task, a new node gets work from the moment it is warm.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon import log as logs
from daemon.backends import remote
from daemon.backends.dask.warm import warm_state

log = logs.get("cluster")


@dataclass
class WorkerInfo:
    address: str
    nthreads: int
    pid: int | None = None
    ready: bool = False
    error: dict | None = None   # why its models did not load (reported once)
    loads: int = 0
    dead: bool = False          # its nanny said its process ended; the scheduler may not know yet


class ClusterView:
    def __init__(self) -> None:
        self.workers: dict[str, WorkerInfo] = {}
        self.busy = 0
        self.models_loaded = 0        # model loads seen, one per warm worker process

    def clear(self) -> None:
        """The scheduler is gone: so is what it said about its workers."""
        for address in list(self.workers):
            self._left(address, "the scheduler connection was lost")
        self.busy = 0

    def refresh(self, client) -> None:
        # nthreads(), not scheduler_info(): the client's periodic refresh of the latter keeps only
        # totals, and may replace the worker list we just asked for with an empty one.
        seen = {address: int(n) for address, n in client.nthreads().items()}
        for address in set(self.workers) - set(seen):
            self._left(address, "left the cluster")
        for address, nthreads in seen.items():
            if address not in self.workers:
                self.workers[address] = WorkerInfo(address, nthreads)
                log.info("cluster.worker_joined", worker=address, nthreads=nthreads)
        cold = [w.address for w in self.workers.values() if not w.ready and w.error is None and not w.dead]
        if cold:
            states = client.run(warm_state, workers=cold, on_error="return")
            for address, state in states.items():
                if isinstance(state, dict) and address in self.workers:
                    self._observe(self.workers[address], state)
        processing = client.processing()
        self.busy = sum(1 for keys in processing.values() if keys)

    def _observe(self, w: WorkerInfo, state: dict) -> None:
        w.pid = state.get("pid")
        if state.get("ready"):
            w.ready = True
            w.loads = int(state.get("loads") or 0)
            self.models_loaded += 1
            log.info("cluster.worker_ready", worker=w.address, worker_pid=w.pid,
                     seconds=round(state.get("seconds") or 0.0, 3), torch_threads=state.get("torch_threads"))
        elif state.get("error") and w.error is None:
            self.start_failed(w.address, w.pid, state["error"])

    def start_failed(self, address: str, pid, error: dict) -> None:
        w = self.workers.get(address)
        if w is not None and w.error is not None:
            return
        if w is not None:
            w.error = error
        log.error("cluster.worker_start_failed", worker=address, worker_pid=pid, cause=remote.summary(error),
                  traceback=error.get("traceback"))

    def died(self, address: str) -> None:
        """Its process ended: no more tasks for it, even before the scheduler drops it."""
        if address in self.workers:
            self.workers[address].dead = True
            self.workers[address].ready = False

    def usable(self, address: str) -> bool:
        w = self.workers.get(address)
        return w is not None and not w.dead

    def _left(self, address: str, why: str) -> None:
        w = self.workers.pop(address)
        log.info("cluster.worker_left", worker=address, worker_pid=w.pid, reason=why)

    # ---- figures ----------------------------------------------------------------------
    @property
    def warm(self) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if w.ready]

    @property
    def capacity(self) -> int:
        """Tasks the warm workers can run at once: their threads."""
        return sum(w.nthreads for w in self.warm)

    def warm_addresses(self) -> list[str]:
        return sorted(w.address for w in self.warm)
