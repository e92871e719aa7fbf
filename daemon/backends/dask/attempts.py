"""One try of a task on the cluster, and what became of it, as plain data.

``watch`` runs on the client's event loop (one coroutine per attempt, no thread, no blocking call):
it waits for the Dask future, gathers a finished task's value straight from the worker that holds
it, names a failure, and releases the future at once, so a result that a worker holds is never
recomputed when that worker dies later.  The backend's thread then decides with the outcome alone:

    ("done", pickled value, seconds, pid, started, ended)
    ("error", description, seconds, pid, started, ended)
    ("unready", pid, why)           the worker had no models yet: send elsewhere, not counted
    ("cancelled",)                  the scheduler went away (or the task was taken back)
    ("killed", worker address)      its worker died while it ran, or while it waited behind
    ("lost", why)                   its result could not be fetched: a lost attempt
    ("failed", exception)           Dask itself failed the task
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

import distributed
from distributed.scheduler import KilledWorker

from daemon.backends.base import Entry
from daemon.backends.dask.warm import run_task

GATHER_TIMEOUT = 60.0  # seconds to fetch a finished task's result


class Attempt:
    __slots__ = ("entry", "key", "worker", "nthreads", "seq", "dask_future", "timeout", "deadline", "context",
                 "sent", "ran")

    def __init__(self, entry: Entry, key: str, worker: str, nthreads: int, seq: int, timeout: float | None,
                 context: Any):
        self.entry, self.key, self.worker, self.timeout, self.context = entry, key, worker, timeout, context
        self.nthreads, self.seq = nthreads, seq  # the worker's threads; the order it was sent in
        self.deadline = time.monotonic() + timeout if timeout else None
        self.sent = time.time()  # wall clock, to compare with the worker's (``figures.py``)
        self.ran = False         # the scheduler said it finished (its value may still be lost with its worker)
        self.dask_future = None

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


async def watch(attempt: Attempt, fut, post: Callable[[tuple], None]) -> None:
    """On the client's event loop: post ("outcome", attempt, what became of it); releases ``fut``.
    Uses the Future's awaitable state and the client's gather coroutine (what ``Future.result``
    runs), so that no thread blocks on a round trip per task."""
    try:
        await fut._state.wait()
        if fut.status == "finished":
            attempt.ran = True  # before any death reported after it: the scheduler's messages come in order
            values = await asyncio.wait_for(fut.client._gather([fut], errors="raise"), GATHER_TIMEOUT)
            outcome = tuple(values[0])
        elif fut.status == "cancelled":
            outcome = ("cancelled",)
        else:
            exc = fut._state.exception
            outcome = ("killed", exc.last_worker.address) if isinstance(exc, KilledWorker) else ("failed", exc)
    except (OSError, TimeoutError, asyncio.TimeoutError, distributed.TimeoutError) as exc:
        outcome = ("lost", f"its result could not be fetched: {type(exc).__name__}: {exc}")
    except BaseException as exc:  # noqa: BLE001 - handed to the backend, which fails the task
        outcome = ("cancelled",) if fut.status == "cancelled" else ("failed", exc)
    finally:
        fut.release()
    post(("outcome", attempt, outcome))


async def send_samples(attempt: Attempt, client, func: str, kwargs: dict, timeout: float | None, priority: int,
                       post: Callable[[tuple], None]) -> None:
    """On the client's event loop: a task whose arguments are samples (a cluster without shared
    storage).  They go straight to the worker that will run it (``scatter(direct=True)``), only
    their key through the scheduler; then ``watch`` as any task."""
    try:
        [data] = await client._scatter([kwargs], workers=[attempt.worker], direct=True, hash=False)
    except Exception as exc:  # noqa: BLE001 - the worker is gone or unreachable: a lost attempt
        why = f"{type(exc).__name__}: {exc}"
        # The scheduler gone, or the worker gone from it, is no fault of the task: sent again, not counted.
        not_its_fault = (client.status != "running" or client.scheduler.address in why
                         or "No valid workers found" in why)
        post(("outcome", attempt, ("cancelled",) if not_its_fault else ("lost", f"its samples could not be sent: {why}")))
        return
    try:
        fut = client.submit(run_task, func, data, timeout, key=attempt.key, pure=False, priority=priority,
                            workers=[attempt.worker], allow_other_workers=False)
        attempt.dask_future = fut
        await watch(attempt, fut, post)
    finally:
        data.release()


def in_thread(fn: Callable, *args) -> Future:
    """``fn(*args)`` on a thread of its own: a Future the backend's thread can poll."""
    future: Future = Future()

    def run():
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future
            future.set_exception(exc)

    threading.Thread(target=run, name="dask-register", daemon=True).start()
    return future
