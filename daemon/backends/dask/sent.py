"""``Sent``: the attempts the Dask backend has sent and not yet heard back from, by worker.

Each thread of a worker runs the first of the attempts it holds (in the order they were sent) and
has at most ``ahead`` more queued behind it.  Used on the backend's thread only (``stats`` reads a
copy): which worker has room, which attempt runs and which waits, and, when a worker dies, which of
its attempts it was running.
"""

from __future__ import annotations

from collections import Counter

from daemon.backends.dask.attempts import Attempt


class Sent:
    def __init__(self, ahead: int) -> None:
        self.ahead = ahead
        self._by_key: dict[str, Attempt] = {}
        self._running_at_death: dict[str, set[str]] = {}  # worker address -> the keys it was running

    def __len__(self) -> int:
        return len(self._by_key)

    def all(self) -> list[Attempt]:
        return list(self._by_key.values())

    def add(self, attempt: Attempt) -> None:
        self._by_key[attempt.key] = attempt

    def pop(self, key: str) -> Attempt | None:
        return self._by_key.pop(key, None)

    def clear(self) -> list[Attempt]:
        out = self.all()
        self._by_key.clear()
        return out

    def held(self, address: str) -> list[Attempt]:
        """What a worker holds, in the order it was sent (the first ``nthreads`` run)."""
        return sorted((a for a in self._by_key.values() if a.worker == address), key=lambda a: a.seq)

    def waiting(self) -> list[Attempt]:
        """Attempts queued behind a running one, whose callers' Futures have not started."""
        return [a for a in self._by_key.values() if not a.entry.started]

    def free_worker(self, warm: list):
        """The warm worker with the most room (a free thread first, then a free place behind one),
        or None when every one is full."""
        load = Counter(a.worker for a in self._by_key.values())
        free = [(w.nthreads * (1 + self.ahead) - load[w.address], -load[w.address], w.address, w) for w in warm]
        best = max(free, default=None, key=lambda f: f[:3])
        return best[3] if best is not None and best[0] > 0 else None

    def runs_now(self, worker) -> bool:
        """Whether a task sent to ``worker`` now starts at once (it has a free thread)."""
        return len(self.held(worker.address)) < worker.nthreads

    def promote(self, address: str) -> None:
        """A worker finished a task: the one queued behind it runs now, so its caller's Future starts
        (a caller that cancelled it meanwhile gets nothing: its result is dropped)."""
        held = self.held(address)
        for attempt in held[:held[0].nthreads] if held else ():
            entry = attempt.entry
            if not entry.started:
                entry.started = entry.future.set_running_or_notify_cancel() or entry.future.cancelled()

    def was_running(self, attempt: Attempt, address: str) -> bool:
        """Whether ``attempt`` was running when its worker died, rather than queued behind: the
        first ``nthreads`` sent of what that worker held then, leaving out what the scheduler had
        said finished (its value lost with the worker).  Decided once per death, when its first lost
        attempt comes back, before any of them leaves."""
        running = self._running_at_death.get(address)
        if running is None:
            held = [a for a in self.held(address) if not a.ran]
            running = self._running_at_death[address] = {a.key for a in held[:attempt.nthreads]}
        return attempt.key in running
