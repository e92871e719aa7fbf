"""What every backend shares: the entry a task is tracked by, how futures are settled, deadlines,
lost attempts, the guards of ``start``/``submit``, and the bookkeeping of ``close``.

A backend keeps its tasks in a ``FairQueue`` of ``Entry`` (``queue.py``), decides under its own
lock, and settles futures outside it (``settle``): a Future's callbacks may submit more tasks.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Callable, Iterable

from daemon.backends.queue import FairQueue
from daemon.errors import PoolClosedError, PoolStartError, TaskError
from daemon.jobs import Task

CANCEL = object()  # in a settle list: cancel this Future (it never started)
#: Seconds between a waiting thread's looks for a signal.  The kernel hands a process's signal to
#: any of its threads that does not block it; Python runs the handler (Ctrl-C's KeyboardInterrupt)
#: in the main thread only, which a wait without a timeout would keep asleep until its future is done.
SIGNAL_LOOK = 0.5


class PoolBrokenError(PoolStartError):
    """Workers cannot load their models (an error from the loader, or too many deaths while
    loading in a row): the backend runs no more tasks."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"worker pool is broken: {reason}")


class Entry:
    """A submitted task as a backend tracks it (``payload``: the pickled task a local worker is
    sent; the Dask backend sends the task itself)."""

    __slots__ = ("id", "task", "future", "payload", "attempts", "causes", "started")

    def __init__(self, eid: int, task: Task, future: Future, payload: bytes | None = None):
        self.id, self.task, self.future, self.payload = eid, task, future, payload
        self.attempts = 0
        self.causes: list[tuple[str, str]] = []  # (kind, cause) of each lost attempt
        self.started = False                    # Future moved to RUNNING


class AudioScaledTimeout:
    """A task's deadline from its audio length: ``base + per_second × audio_seconds``."""

    def __init__(self, base: float = 60.0, per_second: float = 10.0):
        self.base, self.per_second = base, per_second

    def __call__(self, task: Task) -> float:
        return self.base + self.per_second * max(0.0, task.audio_seconds)

    def __repr__(self) -> str:
        return f"AudioScaledTimeout({self.base:g} s + {self.per_second:g} × audio seconds)"


def timeout_from_settings(settings):
    """VOICE_DAEMON_TASK_TIMEOUT_SECONDS as a backend's default deadline: fixed, or scaled by the
    task's audio when 0."""
    fixed = settings.task_timeout_seconds
    return fixed if fixed > 0 else AudioScaledTimeout()


def check_task(task: Task) -> None:
    if ":" not in task.func:
        raise ValueError(f"Task.func must be 'module:function', got {task.func!r}")


def check_open(name: str, *, closing: bool, broken: str | None, started: bool) -> None:
    """Why ``submit`` must refuse now (call under the backend's lock), if it must."""
    if closing:
        raise PoolClosedError(f"cannot submit to a closed {name}")
    if broken:
        raise PoolBrokenError(broken)
    if not started:
        raise RuntimeError(f"start() the {name} before submitting tasks")


class Closing:
    """A backend's close as every thread sees it.  ``ask`` (under the backend's lock) sets the
    deadline of the tasks still running: a second close with a shorter grace brings it closer,
    never later.  The backend's own thread acts on it (``begin`` once, then waits for
    ``deadline``) and sets ``ended`` when its last child or future is gone."""

    def __init__(self) -> None:
        self.asked = False       # close() was called, or the backend's thread ended
        self.deadline = 0.0      # time.monotonic() after which running tasks are cut short
        self.begun = False       # the backend's thread has acted on the close
        self.ended = threading.Event()

    def ask(self, grace: float) -> None:
        """Close within ``grace`` seconds, or sooner if an earlier close said so."""
        deadline = time.monotonic() + max(0.0, grace)
        self.deadline = min(self.deadline, deadline) if self.asked else deadline
        self.asked = True

    def begin(self) -> bool:
        """True the first time only: the backend's thread starts closing (drains its queue)."""
        first, self.begun = not self.begun, True
        return first

    def wait(self, thread: threading.Thread | None, teardown: Callable[[], list]) -> None:
        """After ``ask``, outside the lock: return once the backend's ``thread`` has ended; with
        no thread (never started), ``teardown()`` here and settle what it returns."""
        if thread is None:
            settle(teardown())
            self.ended.set()
        elif thread is not threading.current_thread():  # a done-callback may call close()
            self.ended.wait()
            thread.join()


def first_done(futures: Iterable[Future]) -> set[Future]:
    """The futures done, once one is (all of them when there are none), waking every
    ``SIGNAL_LOOK`` seconds meanwhile: a signal is acted on at once however long the wait."""
    futures = list(futures)
    while True:
        done, _ = wait(futures, timeout=SIGNAL_LOOK, return_when=FIRST_COMPLETED)
        if done or not futures:
            return done


def result_of(future: Future):
    """``future.result()``, acting on signals while it waits (``first_done``)."""
    first_done([future])
    return future.result()


def push(queue: FairQueue, entry: Entry) -> None:
    queue.push(entry, entry.task.group)


def next_entry(queue: FairQueue) -> Entry | None:
    """The next task of ``queue`` to run, its Future moved to RUNNING (skipping cancelled ones)."""
    while (entry := queue.pop()) is not None:
        if entry.started:
            return entry
        if entry.future.set_running_or_notify_cancel():
            entry.started = True
            return entry
        # cancelled by its caller while it waited
    return None


def next_waiting(queue: FairQueue) -> Entry | None:
    """The next task of ``queue``, its Future left PENDING (it will wait behind another on a worker;
    skipping those cancelled by their caller)."""
    while (entry := queue.pop()) is not None:
        if entry.started or not entry.future.cancelled():
            return entry
    return None


def task_timeout(task: Task, default) -> float | None:
    """A task's deadline: its own, else ``default`` (seconds, None, or a function of the task)."""
    timeout = task.timeout
    if timeout is None:
        timeout = default(task) if callable(default) else default
    return timeout or None


def cancelled(entry: Entry, who: str = "the worker pool") -> tuple:
    """The settle item of a task that will not run (again): cancelled, or failed if it ran once."""
    if not entry.started:
        return (entry.future, CANCEL, None)
    return (entry.future, None, TaskError(f"{who} closed before the task could run again",
                                          kind="shutdown", attempts=entry.attempts))


def lost_message(attempts: int, lost: list[tuple[str, str]]) -> str:
    """Why a task failed after ``attempts`` lost attempts, each a (kind, cause): one sentence."""
    n = attempts
    where = "on its only attempt" if n == 1 else f"on every one of {n} attempts"
    kinds = {kind for kind, _ in lost}
    causes = [cause for _, cause in lost]
    if len(set(causes)) == 1:
        if kinds == {"timeout"}:
            return f"task {causes[0]} {where}"
        return f"worker died ({causes[0]}) {where}"
    return f"worker died or timed out {where}: " + "; ".join(causes)


def exit_cause(exitcode: int | None) -> str:
    """How a worker process ended, in words: "signal SIGKILL", "exit code 3"."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def settle(items: list) -> None:
    """Resolve each (future, result, error); outside any lock."""
    for future, result, error in items:
        if result is CANCEL:
            # cancel() alone does not wake as_completed()/wait(): only this call notifies their waiters.
            if future.cancel():
                future.set_running_or_notify_cancel()
        elif future.done():  # e.g. cancelled by its caller meanwhile
            continue
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
