"""One try of a task on the cluster, and what became of it, as plain data.

``fetch`` runs on Dask's callback thread as soon as a Dask future is done: it reads the result
(and, through the courier, writes the converted samples here), or names the failure, and
releases the future at once, so a result that a worker holds is never recomputed when that
worker dies later.  The backend's thread then decides with the outcome alone:

    ("done", value, seconds, pid)   ("error", description, seconds, pid)
    ("unready", pid, why)           the worker had no models yet: send elsewhere, not counted
    ("cancelled",)                  the scheduler went away (or the task was taken back)
    ("killed", worker address)      its worker died while it ran: a lost attempt
    ("lost", why)                   its result could not be fetched: a lost attempt
    ("failed", exception)           Dask itself failed the task
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

import distributed
from distributed.scheduler import KilledWorker

from daemon.backends import remote
from daemon.backends.base import Entry

GATHER_TIMEOUT = 60.0  # seconds to fetch a finished task's result


class Attempt:
    __slots__ = ("entry", "key", "worker", "dask_future", "timeout", "deadline", "context")

    def __init__(self, entry: Entry, key: str, worker: str, timeout: float | None, context: Any):
        self.entry, self.key, self.worker, self.timeout, self.context = entry, key, worker, timeout, context
        self.deadline = time.monotonic() + timeout if timeout else None
        self.dask_future = None

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def fetch(attempt: Attempt, fut, courier) -> tuple:
    """What became of ``attempt`` (see the module's text); releases ``fut``."""
    try:
        if fut.status == "finished":
            value = fut.result(timeout=GATHER_TIMEOUT)
            if value[0] == "done":
                result = remote.loads(value[1])
                if attempt.context is not None:
                    result = courier.inbound(attempt.context, result, value[2], value[3])
                return ("done", result, value[2], value[3])
            return value
        if fut.status == "cancelled":
            return ("cancelled",)
        exc = fut.exception()
        if isinstance(exc, KilledWorker):
            return ("killed", exc.last_worker.address)
        return ("failed", exc)
    except (OSError, TimeoutError, distributed.TimeoutError) as exc:
        return ("lost", f"its result could not be fetched: {exc}")
    except BaseException as exc:  # noqa: BLE001 - e.g. the courier could not write the samples
        return ("failed", exc)
    finally:
        fut.release()


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
