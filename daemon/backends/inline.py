"""``InlineRunner``: every task at once in this process, as it is submitted (``--sequential``; the
benchmark's baseline).  The models load here, in the caller's process, when it is built."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from typing import Callable

from daemon.jobs import Task, TaskResult, resolve


class InlineRunner:
    def __init__(self, settings):
        from daemon.pipeline import init_worker

        init_worker(settings)
        self._funcs: dict[str, Callable] = {}
        self.counts = {"tasks_done": 0, "tasks_failed": 0}

    def start(self) -> "InlineRunner":
        return self

    def start_async(self) -> Future:
        started: Future = Future()
        started.set_result(None)
        return started

    def submit(self, task: Task) -> Future:
        fut: Future = Future()
        t0 = time.perf_counter()
        try:
            func = self._funcs.get(task.func) or resolve(task.func)
            self._funcs[task.func] = func
            value = func(**task.kwargs)
        except BaseException as exc:  # delivered through the future, like the pool does
            self.counts["tasks_failed"] += 1
            fut.set_exception(exc)
        else:
            self.counts["tasks_done"] += 1
            fut.set_result(TaskResult(value, os.getpid(), 1, time.perf_counter() - t0))
        return fut

    def stats(self) -> dict:
        return {"backend": "inline", "workers": 1, "alive": 1, "ready": 1, "busy": 0, "queued": 0,
                "restarts": 0, "models_loaded": 1, "pids": [os.getpid()], **self.counts,
                "broken": None, "closed": False}

    def capacity(self) -> int:
        return 1

    @property
    def broken(self) -> str | None:
        return None

    def on_broken(self, callback: Callable[[str], None]) -> None:
        """Nothing to break: a task's failure is its own."""

    def close(self, grace: float = 0.0) -> None:
        pass
