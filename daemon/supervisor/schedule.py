"""Which job starts next: jobs ready now, first come first served, and jobs waiting out a retry backoff.

Suspects (jobs that were in flight when the daemon died) come before all others, fewest charged
deaths first, and while one is queued the daemon runs one job at a time (``isolating``): a death
while a suspect runs alone names it.

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
    # optional: suspect (bool), charges (int), claimed_at (float)


J = TypeVar("J", bound=Schedulable)


class Schedule(Generic[J]):
    """``limits``: () → (max_attempts, backoff_seconds), read at each retry (the supervisor's reads the
    generation in use, which a reload swaps); without it, ``max_attempts`` and ``backoff_seconds``."""

    def __init__(self, *, max_attempts: int = 1, backoff_seconds: float = 0.0,
                 clock: Callable[[], float] = time.time, limits: Callable[[], tuple[int, float]] | None = None):
        self.limits = limits or (lambda: (max_attempts, backoff_seconds))
        self.clock = clock
        self._ready: deque[J] = deque()
        self._delayed: list[tuple[float, str, J]] = []  # a heap by (not_before, id)
        self._suspects: list[J] = []  # ready suspects

    def add(self, job: J) -> None:
        """Queue ``job``: ready now, or once its ``not_before`` has passed."""
        if job.not_before > self.clock():
            heapq.heappush(self._delayed, (job.not_before, job.id, job))
        elif getattr(job, "suspect", False):
            self._suspects.append(job)
        else:
            self._ready.append(job)

    @property
    def isolating(self) -> bool:
        """A suspect is queued (ready or delayed): run one job at a time."""
        return bool(self._suspects) or any(getattr(j, "suspect", False) for _, _, j in self._delayed)

    def pop(self) -> J | None:
        """The job to start now, or None.  Delayed jobs whose time has come join the ready
        ones first, earliest first, behind those that were ready already; ready suspects go
        before everything."""
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            job = heapq.heappop(self._delayed)[2]
            (self._suspects if getattr(job, "suspect", False) else self._ready).append(job)
        if self._suspects:
            first = min(self._suspects, key=_suspicion)
            self._suspects.remove(first)
            return first
        return self._ready.popleft() if self._ready else None

    def next_due(self) -> float | None:
        """When the earliest delayed job becomes ready (clock seconds), or None when none waits."""
        return self._delayed[0][0] if self._delayed else None

    def retry_delay(self, attempts: int, retryable: bool) -> float | None:
        """Seconds before the next attempt of a job that failed its ``attempts``-th, doubling from
        ``backoff_seconds``; None when it may not be retried (not retryable, or no attempts left)."""
        max_attempts, backoff_seconds = self.limits()
        if not retryable or attempts >= max_attempts:
            return None
        return backoff_seconds * 2 ** max(0, attempts - 1)

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed) + len(self._suspects)


def _suspicion(job) -> tuple:
    """Fewest charged deaths first (spreads the blame of deaths that were nobody's fault), then oldest."""
    return (getattr(job, "charges", 0), getattr(job, "claimed_at", 0.0), job.id)
