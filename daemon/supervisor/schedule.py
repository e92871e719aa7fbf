"""Which job starts next: jobs ready now, first come first served, and jobs waiting out a retry backoff.

Pure state, no threads and no I/O; time comes from ``clock`` (wall-clock seconds, because a
job's ``not_before`` is saved in its job.json and must mean the same after a restart).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import Callable, Generic, Protocol, TypeVar


class Schedulable(Protocol):
    id: str
    not_before: float  # not started before this time (clock seconds); 0 = at once


J = TypeVar("J", bound=Schedulable)


class Schedule(Generic[J]):
    def __init__(self, *, max_attempts: int, backoff_seconds: float, clock: Callable[[], float] = time.time):
        self.max_attempts, self.backoff_seconds, self.clock = max_attempts, backoff_seconds, clock
        self._ready: deque[J] = deque()
        self._delayed: list[tuple[float, str, J]] = []  # a heap by (not_before, id)

    def add(self, job: J) -> None:
        """Queue ``job``: ready now, or once its ``not_before`` has passed."""
        if job.not_before > self.clock():
            heapq.heappush(self._delayed, (job.not_before, job.id, job))
        else:
            self._ready.append(job)

    def pop(self) -> J | None:
        """The job to start now, or None.  Delayed jobs whose time has come join the ready
        ones first, earliest first, behind those that were ready already."""
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])
        return self._ready.popleft() if self._ready else None

    def next_due(self) -> float | None:
        """When the earliest delayed job becomes ready (clock seconds), or None when none waits."""
        return self._delayed[0][0] if self._delayed else None

    def retry_delay(self, attempts: int, retryable: bool) -> float | None:
        """Seconds before the next attempt of a job that failed its ``attempts``-th, doubling from
        ``backoff_seconds``; None when it may not be retried (not retryable, or no attempts left)."""
        if not retryable or attempts >= self.max_attempts:
            return None
        return self.backoff_seconds * 2 ** max(0, attempts - 1)

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)
