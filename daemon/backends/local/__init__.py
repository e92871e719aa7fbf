"""A persistent pool of warm ``spawn`` workers (no audio knowledge here).

    pool = WorkerPool(workers=2, initializer="daemon.pipeline:init_worker", init_args=(settings,),
                      threads_per_worker=1, max_attempts=3).start()
    future = pool.submit(Task(func="daemon.pipeline:run_chunk", kwargs={...}, group="job-1"))
    result = future.result()   # TaskResult(value, worker_pid, attempts, compute_seconds)
    pool.close(grace=10)

How a task can fail (the Future's exception):
- the task raised: ``TaskError(kind="exception")`` with ``"Type: message"``; the worker stays.
  Errors of this program (InputError, OutputError, ModelError...) and exceptions with
  ``retryable = False`` keep their own type and fields instead.
- its worker died (``os._exit``, a signal, the OOM killer) or it passed its deadline: the worker
  is replaced by a warm one and the task retried; after ``max_attempts`` it fails with
  ``TaskError(kind="crash"|"timeout", attempts=N)``.
- a worker cannot load its models: ``PoolBrokenError`` (a ``PoolStartError``); ``pool.broken``
  says why and ``submit`` refuses new tasks.  Only the loader's own error (or a load past the
  start timeout) breaks the pool at once; a worker killed while loading (the OOM killer) is
  started again with backoff (1 s, doubling up to 30 s) and the pool breaks only after
  ``max_failed_starts`` (5) starts in a row have died.
- the pool closed first: queued tasks are cancelled; running ones past the grace period fail with
  ``TaskError(kind="shutdown")``.
"""

from daemon.backends.base import AudioScaledTimeout, PoolBrokenError
from daemon.backends.local.pool import WorkerPool
from daemon.jobs import Task, TaskResult

__all__ = ["AudioScaledTimeout", "PoolBrokenError", "Task", "TaskResult", "WorkerPool"]
