"""The seam between the daemon and whatever runs its tasks: one protocol, three backends.

``daemon/app.py`` picks one from VOICE_DAEMON_BACKEND and ``--sequential``: the warm spawn pool
(``daemon.backends.local.WorkerPool``), a Dask cluster (``daemon.backends.dask.DaskBackend``), or
every task at once in this process (``daemon.backends.inline.InlineRunner``).  The supervisor,
``convert``, ``bench`` and one job's stream (``daemon.stream.run_job``, given ``backend.submit``)
see only this.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Callable, Protocol

from daemon.jobs import Task


class Backend(Protocol):
    """``submit`` returns a Future of a ``TaskResult``; a task that raised fails it with the task's
    own error (errors of this program keep their type) or ``TaskError(kind="exception")``; a task
    whose worker died or missed its deadline on every one of its attempts with ``TaskError(kind=
    "crash" | "timeout")``.  ``stats()`` is a plain dict with at least workers, alive, ready, busy,
    queued, restarts and models_loaded.  ``broken`` says why the backend stopped taking tasks, or
    None."""

    def start(self) -> "Backend": ...

    def start_async(self) -> Future: ...

    def submit(self, task: Task) -> Future: ...

    def stats(self) -> dict: ...

    def capacity(self) -> int:
        """How many tasks it runs at once now (jobs in flight follow it)."""

    @property
    def broken(self) -> str | None: ...

    def on_broken(self, callback: Callable[[str], None]) -> None: ...

    def close(self, grace: float = 10.0) -> None: ...


#: What one job is given to run its tasks: a backend's ``submit``.
Submit = Callable[[Task], Future]
