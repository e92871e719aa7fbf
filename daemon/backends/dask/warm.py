"""What runs inside a Dask worker process: the models plugin and the wrapper of every task.

``WarmModels`` is the Dask ``WorkerPlugin`` the daemon registers with the scheduler.  The
scheduler hands it to every worker process there is and to every one that joins later (a new
node, or a process its nanny restarted), and each runs its ``setup`` once: the same start-up as
a local pool child (``daemon.backends.warmup.start_up``: thread variables, the initializer, torch's
thread count), with the daemon's own settings, so every node converts exactly as the daemon
would.  The load runs in a thread, so the worker keeps answering its scheduler meanwhile.

``run_task`` wraps each task:
- it refuses to run before this process is warm (``("unready", …)``: the daemon sends the
  task elsewhere without counting an attempt);
- its deadline is kept from inside: faulthandler's watchdog, a C thread that needs no GIL,
  dumps every thread's stack and ends the process when the task runs past it, even a hang in
  native code; the nanny starts a fresh process, which warms up again;
- it starts only once what its worker has told the scheduler so far has left the process
  (``earlier_reports_sent``), so that a task that ends its process at once does not take the end of
  the task before it down too: that task would then be counted as running when the worker died;
- what it returns is plain data: the value pickled with plain pickle (the daemon unpickles it
  with the pool's safe unpickler, so the daemon never imports torch), an exception described.
"""

from __future__ import annotations

import asyncio
import faulthandler
import hashlib
import os
import pickle
import sys
import time

from distributed import WorkerPlugin, get_worker
from distributed.utils import sync

from daemon.backends.remote import describe_exception, dumps, summary
from daemon.backends.warmup import start_up
from daemon.errors import PoolStartError
from daemon.jobs import resolve

PLUGIN_NAME = "voice-daemon-models"
#: seconds a task waits at most for its worker's earlier messages to leave (they go every few ms)
REPORT_WAIT = 1.0
#: Event topic on the scheduler: ``init_error`` from a plugin, ``worker_exit`` from a nanny.
TOPIC = "voice-daemon"

#: This process's warm state: read by ``warm_state`` (the daemon polls it) and ``run_task``.
_STATE: dict = {"ready": False, "error": None, "loads": 0, "fingerprint": None, "torch_threads": None,
                "seconds": None}


class WarmModels(WorkerPlugin):
    """Load the models once per worker process, as ``initializer(*init_args, **init_kwargs)``.

    ``threads``: torch threads per process; 0 = what the node gives each process (its
    OMP_NUM_THREADS: cores ÷ processes), else 1.
    """

    name = PLUGIN_NAME
    idempotent = False  # a daemon with other settings replaces the plugin: its workers reload

    def __init__(self, initializer: str | None, init_args: tuple = (), init_kwargs: dict | None = None,
                 threads: int = 0, log_config: dict | None = None):
        self.initializer, self.init_args = initializer, tuple(init_args)
        self.init_kwargs, self.threads, self.log_config = dict(init_kwargs or {}), threads, log_config
        self.fingerprint = hashlib.sha256(pickle.dumps(
            (initializer, self.init_args, sorted(self.init_kwargs.items()), threads))).hexdigest()

    async def setup(self, worker) -> None:
        if _STATE["ready"] and _STATE["fingerprint"] == self.fingerprint:
            return  # the same daemon reconnected: the models it wants are loaded already
        _STATE.update(ready=False, error=None)
        try:
            seconds, threads = await asyncio.get_running_loop().run_in_executor(None, self._load)
        except BaseException as exc:  # reported to the daemon: at its start it refuses to start
            _STATE["error"] = desc = describe_exception(exc)
            worker.log_event(TOPIC, {"event": "init_error", "worker": worker.address, "pid": os.getpid(),
                                     "error": desc})
            # Plain data only: the daemon must not import (torch's) exception classes to read it.
            err = PoolStartError(summary(desc))
            err.description = desc
            raise err from None
        _STATE.update(ready=True, fingerprint=self.fingerprint, torch_threads=threads, seconds=seconds,
                      loads=_STATE["loads"] + 1)

    def _load(self) -> tuple[float, int | None]:
        from daemon import log

        started = time.perf_counter()
        log.configure(**(self.log_config or {}), process="worker")
        threads = self.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or 1
        torch_threads = start_up(self.initializer, self.init_args, self.init_kwargs, threads)
        seconds = time.perf_counter() - started
        log.get("cluster").info("cluster.worker_ready", seconds=round(seconds, 3), torch_threads=torch_threads)
        return seconds, torch_threads


def warm_state(dask_worker=None) -> dict:
    """This process's state, for the daemon (``Client.run`` passes the worker)."""
    return {**_STATE, "pid": os.getpid(), "address": getattr(dask_worker, "address", None)}


def run_task(func: str, kwargs: dict, timeout: float | None) -> tuple:
    """``func(**kwargs)`` in this warm process: ("done", pickled value, seconds, pid, started, ended),
    ("error", description, seconds, pid, started, ended) (``started``/``ended``: wall clock), or
    ("unready", pid, why) before the models are loaded."""
    pid = os.getpid()
    if not _STATE["ready"]:
        return ("unready", pid, _STATE["error"])
    earlier_reports_sent()
    began, started = time.time(), time.perf_counter()
    if timeout:
        faulthandler.dump_traceback_later(timeout, exit=True, file=sys.stderr)
    try:
        value = resolve(func)(**kwargs)
    except BaseException as exc:  # noqa: BLE001 - an exception fails the task, not the worker
        seconds = time.perf_counter() - started
        return ("error", describe_exception(exc), seconds, pid, began, began + seconds)
    finally:
        if timeout:
            faulthandler.cancel_dump_traceback_later()
    seconds = time.perf_counter() - started
    try:
        return ("done", dumps(value), seconds, pid, began, began + seconds)
    except Exception as exc:  # noqa: BLE001 - a result that cannot travel fails its task
        problem = TypeError(f"the result of the task cannot be pickled: {exc}")
        return ("error", describe_exception(problem), seconds, pid, began, began + seconds)


def earlier_reports_sent() -> None:
    """Wait until what this worker has told its scheduler so far, the previous task's end above all,
    has left the process.  Dask batches a worker's messages and sends them every few milliseconds;
    the next task starts meanwhile.  Were that task to end the process at once (a crash), the
    previous task's end would be lost with it, the scheduler would still count that task as running,
    and the daemon would charge the death to it (``sent.Sent.was_running``)."""
    try:
        worker = get_worker()
    except ValueError:  # not in a Dask worker (a test calling the wrapper)
        return
    stream = getattr(worker, "batched_stream", None)
    if stream is None or stream.comm is None or stream.comm.closed() or not stream.buffer:
        return

    async def sent() -> None:
        deadline = time.monotonic() + REPORT_WAIT
        written = stream.byte_count
        stream.next_deadline = None  # send now, not at the end of the batching interval
        stream.waker.set()
        while (stream.buffer or stream.byte_count == written) and time.monotonic() < deadline:
            await asyncio.sleep(0.001)

    sync(worker.loop, sent)
