"""The loop's one queue: a real signal wakes a main thread blocked on it, and so does another thread."""

from __future__ import annotations

import os
import signal
import threading

from daemon.supervisor import Events, Signals
from daemon.supervisor.events import CANDIDATE, SIGNAL


def test_a_real_sigterm_wakes_the_blocked_main_thread_with_an_event():
    events = Events()
    signals = Signals(events).install()
    try:
        # Sent once the main thread is (very likely) blocked in get(); a late one still must arrive.
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        event = events.get(timeout=60)
        timer.join()
    finally:
        signals.restore()
    assert event is not None and (event.kind, event.value) == (SIGNAL, "SIGTERM")
    assert signals.count == 1 and signals.last == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_events_from_threads_arrive_in_order_and_get_nowait_does_not_block():
    events = Events()
    assert events.get_nowait() is None and events.get(timeout=0) is None
    t = threading.Thread(target=lambda: [events.put(CANDIDATE, i) for i in range(100)])
    t.start()
    got = [events.get(timeout=60).value for _ in range(100)]
    t.join()
    assert got == list(range(100)) and events.get_nowait() is None
