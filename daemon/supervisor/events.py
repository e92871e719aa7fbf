"""The one queue the supervisor's loop blocks on, and the signal handlers that feed it.

Signal handlers, the watcher's thread, the pool's thread and job futures' done-callbacks
all ``put`` an ``Event``; the loop ``get``s with a timeout only for real deadlines.  The
queue is a ``queue.SimpleQueue``: a Python signal handler runs in the main thread between
two bytecodes, possibly while that thread is inside ``get()``, and ``SimpleQueue.put`` is
reentrant there, where a lock-based ``queue.Queue`` could deadlock on its own lock.
"""

from __future__ import annotations

import queue
import signal
from dataclasses import dataclass
from typing import Any

SIGNAL = "signal"          # value: the signal's name
CANDIDATE = "candidate"    # value: a watcher.Candidate
FINISHED = "finished"      # value: the job id whose future is done
POOL_BROKEN = "pool_broken"  # value: the pool's reason
POOL_STARTED = "pool_started"  # every worker warm (or the start failed: see the future)
RELOAD = "reload"          # SIGHUP: read the configuration again, replace the workers


@dataclass(frozen=True)
class Event:
    kind: str
    value: Any = None


class Events:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def put(self, kind: str, value: Any = None) -> None:
        """Safe from any thread and from a signal handler."""
        self._queue.put(Event(kind, value))

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (None: until one comes)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def get_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None


class Signals:
    """SIGTERM/SIGINT (stop) and SIGHUP (reload): the handler counts the signal and puts an event;
    the loop acts."""

    def __init__(self, events: Events):
        self.events = events
        self.count = 0       # stop signals
        self.hups = 0        # reload requests
        self.last: str | None = None
        self._old: dict[int, object] = {}

    def install(self) -> "Signals":
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def receive(self, name: str) -> None:
        """What the handler does; a test without real signals calls it directly."""
        self.count += 1
        self.last = name
        self.events.put(SIGNAL, name)

    def reload(self) -> None:
        """What SIGHUP's handler does; a test without real signals calls it directly."""
        self.hups += 1
        self.events.put(RELOAD, "SIGHUP")

    def _handle(self, signum, _frame) -> None:
        if signum == signal.SIGHUP:
            self.reload()
        else:
            self.receive(signal.Signals(signum).name)
