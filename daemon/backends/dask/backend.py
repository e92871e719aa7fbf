"""``DaskBackend``: the daemon's tasks on a Dask cluster, with the local pool's guarantees.

One thread (the backend's) owns the Dask client and every decision; other threads only queue
tasks (``submit``), read ``stats`` and ask it to ``close``.  What becomes of each Dask future is
watched on the client's own event loop (``attempts.watch``): the value is gathered straight from
the worker that holds it and the future released at once, so a result already received is never
recomputed when a worker dies later, and no thread waits a round trip per task.

- **No idle gaps.**  Each thread of a warm worker holds one task and has the next one queued
  behind it (``AHEAD``), sent in order with a falling priority, so a worker starts its next task
  the moment it finishes one, while the result travels back.
- **Fair sharing and back-pressure stay ours.**  Tasks wait in the backends' ``FairQueue``
  (round-robin between files); at most ``1 + AHEAD`` per thread of a warm worker are sent.
- **Attempts are ours.**  The scheduler is told not to re-run a task whose worker died
  (``allowed_failures = 0``): the task comes back as ``KilledWorker``, the backend counts the
  attempt and sends it again, first in its file's turn; after VOICE_DAEMON_MAX_ATTEMPTS it fails
  with ``TaskError(kind="crash"|"timeout")`` naming the cause, as on the local pool.  Only the
  task a dead worker was running counts (the first sent of those it held, one per thread); the
  one queued behind it goes again uncounted (``outcomes.py``).
- **Deadlines** are kept inside the worker (``warm.run_task``); a task that comes back lost
  after its deadline counts as a timeout.
- **The scheduler lost**: Dask cancels every future; the backend puts their tasks back in the
  queue without counting an attempt, reports ``connected: False``, reconnects (a new client
  when Dask's own gives up), registers the models plugin again and sends them again.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Any, Callable

from daemon import log as logs
from daemon.backends import remote
from daemon.backends.base import (
    Closing,
    Entry,
    cancelled,
    check_open,
    check_task,
    next_entry,
    next_waiting,
    push,
    result_of,
    settle,
    task_timeout,
    timeout_from_settings,
)
from daemon.backends.dask import connect
from daemon.backends.dask.attempts import Attempt, send_samples, watch
from daemon.backends.dask.figures import Figures
from daemon.backends.dask.link import TICK, Link, connect_label
from daemon.backends.dask.outcomes import WHO, Outcomes
from daemon.backends.dask.sent import Sent
from daemon.backends.dask.warm import WarmModels, run_task
from daemon.backends.queue import FairQueue
from daemon.errors import PoolClosedError, PoolStartError, TaskError
from daemon.jobs import Task

log = logs.get("cluster")

AHEAD = 1             # tasks queued on a worker behind each one it runs


class DaskBackend:
    """``submit(Task)`` → Future of ``TaskResult`` on a Dask cluster (see the module's text).

    ``address``: the scheduler's, or None for a local cluster that ``local_cluster()`` starts
    and this backend owns.  ``plugin`` loads the models in every worker process.  ``courier``
    (optional, with ``host``): the cluster shares no disk with this host; it says which tasks
    must run here (``on_host(task)``: they go to ``host``, a local backend started and closed
    with this one) and turns the others into what travels and their results back
    (``outbound(task) -> (task, context)``, ``inbound(context, value, seconds, pid) -> value``),
    on this host.
    """

    def __init__(self, *, address: str | None, plugin: WarmModels, security=None,
                 local_cluster: Callable[[], Any] | None = None, max_attempts: int = 3,
                 default_timeout: float | Callable[[Task], float | None] | None = None,
                 start_timeout: float = 180.0, courier=None, host=None):
        if address is None and local_cluster is None:
            raise ValueError("give a scheduler address or a local_cluster factory")
        if (courier is None) != (host is None):
            raise ValueError("a courier needs a host backend for the tasks that stay here, and back")
        self._local_cluster, self._cluster = local_cluster, None
        self.max_attempts, self.default_timeout = max_attempts, default_timeout
        self.start_timeout, self.courier, self.host = start_timeout, courier, host
        self._lock = threading.Lock()
        self._queue: FairQueue[Entry] = FairQueue()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sent = Sent(AHEAD)
        self._ids = itertools.count(1)
        self._sends = itertools.count(1)
        self.figures = Figures()
        self._thread: threading.Thread | None = None
        self._closing = Closing()
        self._broken: str | None = None
        self._host_started: Future | None = None
        self.counts: Counter = Counter()
        self.link = Link(address, security, plugin, counts=self.counts, post=self._inbox.put, pump=self._wait,
                         closing=lambda: self._closing.asked)
        self._outcomes = Outcomes(sent=self._sent, counts=self.counts, figures=self.figures, courier=courier,
                                  max_attempts=max_attempts, requeue=self._requeue,
                                  closing=lambda: self._closing.asked, exits=self.link.exits)
        self.started: Future = Future()
        self.broken_signal: Future = Future()

    @classmethod
    def from_settings(cls, settings, *, initializer: str | None, init_args: tuple = (),
                      log_config: dict | None = None, courier=None, host=None, **overrides) -> "DaskBackend":
        sec = connect.security(settings)
        options = dict(
            address=settings.dask_scheduler or None,
            plugin=WarmModels(initializer, init_args, threads=settings.threads_per_worker, log_config=log_config),
            security=sec,
            local_cluster=None if settings.dask_scheduler else (
                lambda: connect.start_local_cluster(settings.workers, sec, threads=settings.torch_threads)),
            max_attempts=settings.max_attempts,
            default_timeout=timeout_from_settings(settings),
            start_timeout=settings.worker_start_timeout_seconds,
            courier=courier,
            host=host,
        )
        options.update(overrides)
        return cls(**options)

    # ---- the Backend interface (any thread) --------------------------------------------
    def start(self) -> "DaskBackend":
        started = self.start_async()
        try:
            result_of(started)
        except BaseException:
            self.close(0)
            raise
        return self

    def start_async(self) -> Future:
        with self._lock:
            if self._thread is not None or self._closing.asked:
                raise RuntimeError("a backend can be started once")
            self._host_started = self.host.start_async() if self.host is not None else None
            self._thread = threading.Thread(target=self._run, name="dask-backend", daemon=True)
            self._thread.start()
        return self.started

    def submit(self, task: Task) -> Future:
        check_task(task)
        if self.courier is not None and self.courier.on_host(task):
            if self._closing.asked:
                raise PoolClosedError("cannot submit to a closed Dask backend")
            return self.host.submit(task)
        remote.dumps(task.kwargs)  # an argument that cannot travel fails here, in the caller
        future: Future = Future()
        with self._lock:
            check_open("Dask backend", closing=self._closing.asked, broken=self._broken, started=self._thread is not None)
            push(self._queue, Entry(next(self._ids), task, future))
        self._inbox.put(("wake",))
        return future

    def on_broken(self, callback: Callable[[str], None]) -> None:
        self.broken_signal.add_done_callback(lambda f: callback(f.result()))
        if self.host is not None:
            self.host.on_broken(lambda reason: callback(f"the worker on this host: {reason}"))

    def stats(self) -> dict:
        """The cluster's figures; ``models_loaded`` counts the host's worker too, ``host`` has its own."""
        host = self.host.stats() if self.host is not None else None
        with self._lock, self.link.lock:
            ahead = len(self._sent.waiting())
            view = self.link.view
            warm = view.warm
            return {
                "backend": "dask",
                "scheduler": connect_label(self.link.address),
                "connected": self.link.connected,
                "workers": len(view.workers),
                "alive": len(view.workers),
                "ready": len(warm),
                "busy": view.busy,
                "starting": len(view.workers) - len(warm),
                "threads": view.capacity,
                # queued: waiting here or behind a running task on a worker; in_flight: running
                "queued": len(self._queue) + ahead,
                "in_flight": len(self._sent) - ahead,
                "sent_ahead": ahead,
                "pids": sorted(w.pid for w in warm if w.pid),
                **{k: self.counts[k] for k in ("tasks_done", "tasks_failed", "retries", "timeouts", "restarts",
                                               "resubmitted", "reconnects")},
                "recycled": 0,
                "models_loaded": view.models_loaded + (host["models_loaded"] if host else 0),
                "broken": self.broken,
                "closed": self._closing.asked,
                **({"host": host} if host else {}),
            }

    @property
    def workers(self) -> int:
        return len(self.link.view.workers)

    def capacity(self) -> int:
        """Tasks the cluster runs at once now: the threads of its warm workers (a node joining
        raises it, one leaving lowers it)."""
        with self.link.lock:
            return self.link.view.capacity

    def costs(self) -> dict:
        """For the benchmark: the tasks' figures (``figures.py``), the scheduler's CPU seconds so
        far and whether it runs in this process (a local cluster's) or apart (a blocking call to
        the scheduler: not for the daemon's loop)."""
        cpu, pid = self.link.client.run_on_scheduler(connect.scheduler_cpu)
        return {**self.figures.summary(), "scheduler_cpu_seconds": cpu, "scheduler_in_this_process": pid == os.getpid()}

    def close(self, grace: float = 10.0) -> None:
        with self._lock:
            self._closing.ask(grace)
            thread = self._thread
        self._inbox.put(("wake",))
        if self.host is not None:
            self.host.close(grace)
        self._closing.wait(thread, self._drain_queue)

    @property
    def broken(self) -> str | None:
        """Why the backend stopped taking tasks (its own failure, or the host worker's), or None."""
        host = self.host.broken if self.host is not None else None
        return self._broken or (f"the worker on this host: {host}" if host else None)

    def __enter__(self) -> "DaskBackend":
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- the backend's thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self._open():
                self._serve()
        except BaseException as exc:  # noqa: BLE001 - a bug here must fail the futures, not hang them
            log.exception("cluster.backend_failed")
            with self._lock:
                if not self._broken:
                    self._broken = f"the Dask backend failed: {exc!r}"
            if not self.broken_signal.done():
                self.broken_signal.set_result(self._broken)
            if not self.started.done():
                self.started.set_exception(PoolStartError(self._broken))
        finally:
            self._teardown()
            self._closing.ended.set()

    def _open(self) -> bool:
        """Start the local cluster (if ours), connect, load the models; resolve ``started``."""
        t0 = time.monotonic()
        connect.quiet_dask_logs()
        log.info("cluster.starting", scheduler=connect_label(self.link.address))
        try:
            if self._local_cluster is not None:
                self._cluster = self._local_cluster()
                self.link.address = self._cluster.scheduler_address
            self.link.open(t0 + self.start_timeout, self.start_timeout, self._host_started)
        except BaseException as exc:
            err = exc if isinstance(exc, PoolStartError) else PoolStartError(f"cannot start the Dask backend: {exc}")
            if err is not exc:
                err.__cause__ = exc
            log.error("cluster.start_failed", scheduler=connect_label(self.link.address), error=str(err))
            self.started.set_exception(err)
            return False
        view = self.link.view
        log.info("cluster.started", scheduler=self.link.address, workers=len(view.workers),
                 ready=len(view.warm), threads=view.capacity, seconds=round(time.monotonic() - t0, 3))
        self.started.set_result(None)
        return True

    def _serve(self) -> None:
        next_look = 0.0
        while True:
            timeout = max(0.0, min(next_look, self._outcomes.next_loss()) - time.monotonic())
            self._wait(timeout)
            now = time.monotonic()
            if now >= next_look:
                self.link.refresh(self._sent.all())
                next_look = now + TICK
            self._outcomes.settle_losses()
            if self._closing.asked:
                if self._advance_close():
                    return
            else:
                self._dispatch()

    def _wait(self, timeout: float) -> None:
        """Block up to ``timeout`` for a message; handle every message waiting."""
        try:
            message = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._handle(message)
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "outcome":
            self._outcomes.on_outcome(message[1], message[2])
        elif kind == "event":
            self.link.on_event(message[1])

    # ---- sending tasks -------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Each thread of a warm worker gets the next task of the fair queue, and one more queued
        behind it, sent to that worker only: fairness decides at most one task ahead.  A task sent
        ahead is not started for its caller (its Future stays cancellable) until the one before
        it on that worker finishes (``Sent.promote``)."""
        if not self.link.connected or self._broken:
            return
        while (worker := self._sent.free_worker(self.link.view.warm)) is not None:
            runs_now = self._sent.runs_now(worker)
            with self._lock:
                entry = next_entry(self._queue) if runs_now else next_waiting(self._queue)
            if entry is None:
                return
            self._send(entry, worker)

    def _send(self, entry: Entry, worker) -> None:
        entry.attempts += 1
        task, context = entry.task, None
        try:
            if self.courier is not None:
                task, context = self.courier.outbound(task)
        except BaseException as exc:  # noqa: BLE001 - e.g. the chunk's frames cannot be read: its error
            self._outcomes.fail(entry, exc)
            return
        timeout = task_timeout(entry.task, self.default_timeout)
        seq = next(self._sends)
        attempt = Attempt(entry, f"vd-{entry.id}-{seq}", worker.address, worker.nthreads, seq,
                          timeout, context)
        client = self.link.client
        self._sent.add(attempt)
        # priority: sent first, run first (Dask runs a worker's higher priorities first)
        if context is not None:
            client.loop.add_callback(send_samples, attempt, client, task.func, task.kwargs, timeout, -seq,
                                     self._inbox.put)
            return
        fut = client.submit(run_task, task.func, task.kwargs, timeout, key=attempt.key, pure=False, priority=-seq,
                            workers=[worker.address], allow_other_workers=False)
        attempt.dask_future = fut
        client.loop.add_callback(watch, attempt, fut, self._inbox.put)

    def _requeue(self, entry: Entry) -> None:
        """Again, first in its file's turn (a lost attempt, or one that was not the task's fault)."""
        with self._lock:
            self._queue.push_front(entry, entry.task.group)

    # ---- closing -------------------------------------------------------------------------------
    def _advance_close(self) -> bool:
        """True when nothing is left to wait for."""
        if self._closing.begin():
            settle(self._drain_queue())
            self._recall_waiting()
        if len(self._sent) and time.monotonic() < self._closing.deadline:
            return False
        return True

    def _recall_waiting(self) -> None:
        """Closing: the tasks queued behind a running one on a worker never start; cancelled."""
        waiting = self._sent.waiting()
        for a in waiting:
            self._sent.pop(a.key)
        futures = [a.dask_future for a in waiting if a.dask_future is not None]
        if futures and self.link.client is not None and self.link.connected:
            try:
                self.link.client.cancel(futures)
            except Exception as exc:  # noqa: BLE001 - closing goes on; the futures are dropped anyway
                log.debug("cluster.cancel_failed", error=str(exc))
        settle([cancelled(a.entry, WHO) for a in waiting])

    def _drain_queue(self) -> list:
        with self._lock:
            entries = self._queue.drain()
        return [cancelled(e, WHO) for e in entries]

    def _teardown(self) -> None:
        with self._lock:
            self._closing.asked = True
        ending = self._drain_queue()
        attempts = self._sent.clear()
        ending += [(a.entry.future, None, TaskError("the Dask backend closed before the task finished",
                                                    kind="shutdown", attempts=a.entry.attempts))
                   if a.entry.started else cancelled(a.entry, WHO) for a in attempts]
        ending += [cancelled(a.entry, WHO) for a in self._outcomes.drain_losses()]
        self.link.close([a.dask_future for a in attempts if a.dask_future is not None])
        if self._cluster is not None:
            try:
                self._cluster.close(timeout=30)
            except Exception as exc:  # noqa: BLE001
                log.warning("cluster.local_close_failed", error=str(exc))
        settle(ending)
        log.info("cluster.closed", **{k: self.counts[k] for k in ("tasks_done", "tasks_failed", "retries", "restarts")})
