"""``Outcomes``: what became of each attempt the Dask backend sent, settled on its caller's Future.

Called on the backend's thread only, with the outcomes ``attempts.watch`` posts:

- **done**: the value, loaded without importing anything new (``remote.loads``) and, for samples
  that travelled, written here by the courier (``inbound``).
- **error**: the task raised; the caller gets the task's own error, as on the local pool.
- **unready, cancelled, queued behind a death**: not the task's fault (a cold worker, the
  scheduler gone, a worker that died while the task only waited behind another): sent again,
  first in its file's turn, without counting an attempt.
- **killed**: its worker died while it ran.  Dask says so before the nanny's report of how the
  process ended arrives (``Link.exits``), so the loss waits for it (``LOSS_SETTLE`` seconds at most)
  to name the cause ("signal SIGKILL").  Then the attempt counts, as a timeout when it came back past
  its deadline; the task goes again, or fails after ``max_attempts`` with ``TaskError(kind="crash" |
  "timeout")``.  A result that could not be fetched (**lost**) counts the same way at once.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable

from daemon import log as logs
from daemon.backends import remote
from daemon.backends.base import Entry, cancelled, lost_message, settle
from daemon.backends.dask.attempts import Attempt
from daemon.backends.dask.figures import Figures
from daemon.backends.dask.link import TICK
from daemon.backends.dask.sent import Sent
from daemon.errors import TaskError
from daemon.jobs import TaskResult

log = logs.get("cluster")

LOSS_SETTLE = 3.0     # seconds at most to wait for a dead worker's exit code before retrying its task
WHO = "the Dask backend"  # in "… closed before the task could run again"


class Outcomes:
    """``requeue(entry)``: puts a task first in its file's turn again; ``closing()``: whether the
    backend is closing (a task that would go again is cancelled instead); ``exits``: worker address
    -> how its process ended, as the link learns it."""

    def __init__(self, *, sent: Sent, counts: Counter, figures: Figures, courier, max_attempts: int,
                 requeue: Callable[[Entry], None], closing: Callable[[], bool], exits: dict[str, str]):
        self.sent, self.counts, self.figures, self.courier = sent, counts, figures, courier
        self.max_attempts, self._requeue, self._closing, self._exits = max_attempts, requeue, closing, exits
        self._losses: list[tuple[float, Attempt, str]] = []  # (due, attempt, worker address)

    def on_outcome(self, attempt: Attempt, outcome: tuple) -> None:
        if outcome[0] == "killed" and not self.sent.was_running(attempt, outcome[1]):
            outcome = ("queued-behind",)
        if self.sent.pop(attempt.key) is None:
            return  # given up on already (the backend closed)
        self.sent.promote(attempt.worker)
        entry, kind = attempt.entry, outcome[0]
        if kind == "done":
            try:
                value = self._value(attempt, outcome)
            except BaseException as exc:  # noqa: BLE001 - e.g. the samples could not be written here
                self.fail(entry, TaskError(f"{type(exc).__name__}: {exc}", kind="exception",
                                           attempts=entry.attempts))
                return
            self.counts["tasks_done"] += 1
            self.figures.ran(attempt, outcome)
            settle([(entry.future, TaskResult(value, outcome[3], entry.attempts, outcome[2]), None)])
        elif kind == "error":
            self.figures.ran(attempt, outcome)
            self.fail(entry, remote.caller_exception(outcome[1], entry.attempts))
        elif kind in ("unready", "cancelled", "queued-behind"):
            entry.attempts -= 1
            self.counts["resubmitted"] += 1
            if self._closing():
                settle([cancelled(entry, WHO)])
            else:
                self._requeue(entry)
        elif kind == "killed":
            self._losses.append((time.monotonic() + LOSS_SETTLE, attempt, outcome[1]))
        elif kind == "lost":
            self._lost(attempt, outcome[1])
        else:
            exc = outcome[1]
            self.fail(entry, TaskError(f"{type(exc).__name__}: {exc}", kind="exception", attempts=entry.attempts))

    def _value(self, attempt: Attempt, outcome: tuple):
        value = remote.loads(outcome[1])
        if attempt.context is not None:
            value = self.courier.inbound(attempt.context, value, outcome[2], outcome[3])
        return value

    def next_loss(self) -> float:
        """When the next lost attempt is due to be counted (a look later when none waits)."""
        return min((due for due, _, _ in self._losses), default=time.monotonic() + TICK)

    def settle_losses(self) -> None:
        """Count the lost attempts whose worker's end is known, or whose wait is over."""
        now = time.monotonic()
        due = [loss for loss in self._losses if loss[0] <= now or loss[2] in self._exits or self._closing()]
        self._losses = [loss for loss in self._losses if loss not in due]
        for _, attempt, address in due:
            self._lost(attempt, self._exits.get(address) or "its worker was lost")

    def drain_losses(self) -> list[Attempt]:
        """The attempts still waiting to be counted, given up on (the backend closes)."""
        attempts = [attempt for _, attempt, _ in self._losses]
        self._losses.clear()
        return attempts

    def _lost(self, attempt: Attempt, cause: str) -> None:
        entry = attempt.entry
        if attempt.past_deadline():
            kind, cause = "timeout", f"timed out after {attempt.timeout:g} s"
            self.counts["timeouts"] += 1
            log.warning("cluster.task_timeout", task=entry.task.func, group=entry.task.group, timeout=attempt.timeout)
        else:
            kind = "crash"
        entry.causes.append((kind, cause))
        if entry.attempts >= self.max_attempts:
            self.fail(entry, TaskError(lost_message(entry.attempts, entry.causes), kind=kind, attempts=entry.attempts))
        elif self._closing():
            settle([cancelled(entry, WHO)])
        else:
            self.counts["retries"] += 1
            log.warning("cluster.task_retry", task=entry.task.func, group=entry.task.group,
                        attempt=entry.attempts + 1, max_attempts=self.max_attempts, cause=cause)
            self._requeue(entry)

    def fail(self, entry: Entry, exc: BaseException) -> None:
        self.counts["tasks_failed"] += 1
        settle([(entry.future, None, exc)])
