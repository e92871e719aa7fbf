"""Spool steps to try again later: a commit, a quarantine or a recovery that failed for a reason
that passes (a full disk, an I/O error) and must neither be lost nor retried in a tight loop.

Pure state, no threads: the loop runs what ``due()`` returns and wakes for ``next_due()``.
Each key waits ``first`` seconds after its first failure, twice as long after each next one,
up to ``longest``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Step:
    run: Callable[[], None]
    due: float
    delay: float


class Later:
    def __init__(self, *, first: float = 1.0, longest: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.first, self.longest, self.clock = first, longest, clock
        self._steps: dict[str, _Step] = {}
        self._delays: dict[str, float] = {}  # kept after a step ran, so a step failing again waits longer

    def add(self, key: str, run: Callable[[], None]) -> float:
        """Run ``run`` after the key's backoff; returns the delay."""
        delay = min(self._delays.get(key, self.first / 2) * 2, self.longest)
        self._delays[key] = delay
        self._steps[key] = _Step(run, self.clock() + delay, delay)
        return delay

    def done(self, key: str) -> None:
        """The step succeeded: forget its backoff."""
        self._delays.pop(key, None)
        self._steps.pop(key, None)

    def due(self, now_too: bool = False) -> list[tuple[str, Callable[[], None]]]:
        """The steps whose time has come (``now_too``: every step, e.g. when space came back),
        removed; a step that fails again is ``add``-ed again."""
        now = self.clock()
        keys = [k for k, s in self._steps.items() if now_too or s.due <= now]
        return [(k, self._steps.pop(k).run) for k in keys]

    def next_due(self) -> float | None:
        return min((s.due for s in self._steps.values()), default=None)

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, key: str) -> bool:
        return key in self._steps
