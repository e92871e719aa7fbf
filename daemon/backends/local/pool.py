"""``WorkerPool``: a fixed set of warm ``spawn`` children that run picklable tasks.

The pool knows nothing about audio: a task names a ``"module:function"`` that a
child imports and calls with keyword arguments; the child returns a small dict.
Models are loaded once per child by the initializer.
"""

from __future__ import annotations

import weakref
from concurrent.futures import Future
from typing import Any, Callable

from daemon.backends.base import result_of, timeout_from_settings
from daemon.backends.local.core import PoolCore
from daemon.backends.local.worker import PoolOptions
from daemon.jobs import Task


class WorkerPool:
    """Warm children, fair scheduling between groups, crash recovery, orderly close.

    ``submit(Task)`` returns a ``concurrent.futures.Future`` resolving to a
    ``TaskResult``; see ``daemon/backends/local/__init__.py`` for the failure modes.
    """

    def __init__(self, workers: int = 1, *, initializer: str | None = None, init_args: tuple = (),
                 init_kwargs: dict | None = None, threads_per_worker: int = 0,
                 log_config: dict | None = None, max_attempts: int = 3,
                 default_timeout: float | Callable[[Task], float | None] | None = None,
                 max_tasks_per_worker: int = 0, start_timeout: float = 180.0,
                 max_failed_starts: int = 5, start_backoff: float = 1.0):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if initializer is not None and ":" not in initializer:
            raise ValueError(f"initializer must be 'module:function', got {initializer!r}")
        self.options = PoolOptions(
            workers=workers, initializer=initializer, init_args=tuple(init_args),
            init_kwargs=dict(init_kwargs or {}), threads_per_worker=max(0, threads_per_worker),
            log_config=log_config, max_attempts=max_attempts, default_timeout=default_timeout,
            max_tasks_per_worker=max(0, max_tasks_per_worker), start_timeout=start_timeout,
            max_failed_starts=max(1, max_failed_starts), start_backoff=max(0.0, start_backoff))
        self._core = PoolCore(self.options)
        # Safety net for a pool nobody closed: on garbage collection or at interpreter exit.
        # The core (and its thread) never refers back to this object, so collection can happen.
        self._finalizer = weakref.finalize(self, self._core.close, 0.0)

    @classmethod
    def from_settings(cls, settings, *, initializer: str | None, init_args: tuple = (),
                      log_config: dict | None, **overrides: Any) -> "WorkerPool":
        """The pool the settings describe (VOICE_DAEMON_WORKERS, THREADS_PER_WORKER, MAX_ATTEMPTS,
        TASK_TIMEOUT_SECONDS, MAX_TASKS_PER_WORKER, WORKER_START_TIMEOUT_SECONDS).

        What the children run and how they log is the caller's to say (``daemon/app.py``):
        the pool knows nothing about the pipeline."""
        options = dict(
            workers=settings.workers,
            initializer=initializer,
            init_args=init_args,
            threads_per_worker=settings.torch_threads,
            log_config=log_config,
            max_attempts=settings.max_attempts,
            default_timeout=timeout_from_settings(settings),
            max_tasks_per_worker=settings.max_tasks_per_worker,
            start_timeout=settings.worker_start_timeout_seconds,
        )
        options.update(overrides)
        return cls(**options)

    def start(self) -> "WorkerPool":
        """Start every child and wait until all are warm; raise PoolStartError (with the
        child's cause) if one cannot load, after cleaning up every child."""
        started = self.start_async()
        try:
            result_of(started)
        except BaseException:  # PoolStartError, or Ctrl-C while the models load
            self.close(0)
            raise
        return self

    def start_async(self) -> Future:
        """Start every child without waiting: the Future resolves once all are warm, or fails
        with PoolStartError (then ``close()`` the pool).  For a caller that waits on other
        things at the same time, such as a signal."""
        return self._core.start()

    def on_broken(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` once, from the pool's thread, when the pool breaks (at once if
        it is broken already).  It must not block: it runs where the pool settles futures."""
        self._core.broken_signal.add_done_callback(lambda f: callback(f.result()))

    def submit(self, task: Task) -> Future:
        """Queue ``task``; raises at once if its arguments cannot be pickled, the pool is
        closed (PoolClosedError, a RuntimeError) or broken (PoolBrokenError)."""
        return self._core.submit(task)

    def stats(self) -> dict:
        return self._core.stats()

    @property
    def broken(self) -> str | None:
        """Why the pool stopped taking tasks (a worker's loader failed, or ``max_failed_starts``
        starts in a row died while loading), or None."""
        return self._core.broken

    @property
    def workers(self) -> int:
        return self.options.workers

    def capacity(self) -> int:
        """Tasks it runs at once: one per worker."""
        return self.options.workers

    def close(self, grace: float = 10.0) -> None:
        """Cancel queued tasks, let running ones finish for ``grace`` seconds, then terminate and
        kill what is left; returns when every child is reaped.  Idempotent; a second call with a
        shorter grace shortens the wait."""
        self._finalizer.detach()
        self._core.close(grace)

    def __enter__(self) -> "WorkerPool":
        if self._core._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
