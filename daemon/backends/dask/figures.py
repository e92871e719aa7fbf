"""What the Dask backend measures of itself, for the benchmark: how long its tasks ran, how long a
worker process sat idle between one task and the next that was already waiting for it, and the
scheduler's CPU time (read on the scheduler: ``connect.scheduler_cpu``).

A gap is counted only when the next task had been sent before the worker finished the one before
(then any idle time is the backend's, not a lack of work).  Start and end are the worker's wall
clock, the send time the daemon's: on one machine they agree; across machines clock skew adds to
the gaps (they are for the benchmark, which runs on one machine).
"""

from __future__ import annotations

import statistics


class Figures:
    def __init__(self) -> None:
        self.tasks = 0
        self.task_seconds = 0.0
        self.gaps: list[float] = []
        self._last_end: dict[int, float] = {}  # worker pid -> when its last task ended (wall clock)

    def ran(self, attempt, outcome: tuple) -> None:
        """A task that ran (``outcome``: ("done"|"error", value, seconds, pid, started, ended))."""
        if len(outcome) < 6:
            return
        seconds, pid, started, ended = outcome[2:6]
        last = self._last_end.get(pid)
        if last is not None and attempt.sent <= last:
            self.gaps.append(max(0.0, started - last))
        self._last_end[pid] = max(last or 0.0, ended)
        self.tasks += 1
        self.task_seconds += seconds

    def summary(self) -> dict:
        gaps = sorted(self.gaps)
        return {
            "tasks": self.tasks,
            "task_seconds_mean": self.task_seconds / self.tasks if self.tasks else None,
            "gaps": len(gaps),
            "gap_seconds_mean": statistics.fmean(gaps) if gaps else None,
            "gap_seconds_p50": gaps[len(gaps) // 2] if gaps else None,
            "gap_seconds_p95": gaps[int(len(gaps) * 0.95)] if gaps else None,
        }
