"""When a worker that died while loading its models is started again, and when the pool gives up.

A worker whose loader raised, or that did not load within the start timeout, would fail the same
way again: the pool breaks at once.  One that died while loading (the OOM killer, an operator's
kill, a crash) is started again after ``start_backoff`` seconds, doubling up to
``MAX_START_BACKOFF``; after ``max_failed_starts`` such deaths in a row (no worker became ready
in between) the pool breaks.  Pure state with a clock; the dispatcher asks and acts.
"""

from __future__ import annotations

import time
from typing import Callable

MAX_START_BACKOFF = 30.0  # seconds: the longest wait before starting a worker again


class Restarts:
    def __init__(self, max_failed_starts: int, start_backoff: float, clock: Callable[[], float] = time.monotonic):
        self.max_failed_starts, self.start_backoff, self.clock = max_failed_starts, start_backoff, clock
        self.failed = 0                                  # failed starts in a row
        self.pending: list[tuple[float, int | None]] = []  # (due, id of the worker the new one recycles)

    def ready(self) -> None:
        """A worker became ready: the count of failures in a row starts again."""
        self.failed = 0

    def start_failed(self, fatal: bool, replaces: int | None) -> float | None:
        """Count a failed start; the delay before the next try, or None when the pool must break."""
        self.failed += 1
        if fatal or self.failed >= self.max_failed_starts:
            return None
        delay = min(self.start_backoff * 2 ** (self.failed - 1), MAX_START_BACKOFF)
        self.pending.append((self.clock() + delay, replaces))
        return delay

    def due(self) -> list[int | None]:
        """The starts whose backoff has passed (each: the id of the worker it recycles, or None)."""
        now = self.clock()
        due = [replaces for at, replaces in self.pending if at <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        return due

    def next_due(self) -> float | None:
        return min((at for at, _ in self.pending), default=None)

    def clear(self) -> None:
        self.pending.clear()
