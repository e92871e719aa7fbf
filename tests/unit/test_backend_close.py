"""The close bookkeeping every backend shares (``base.Closing``), with real threads and futures."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from daemon.backends.base import CANCEL, Closing


def test_a_second_close_may_shorten_the_grace_never_lengthen_it():
    c = Closing()
    assert not c.asked
    before = time.monotonic()
    c.ask(60.0)
    first = c.deadline
    assert c.asked and before + 60.0 <= first <= time.monotonic() + 60.0
    c.ask(600.0)
    assert c.deadline == first
    c.ask(1.0)
    assert c.deadline <= time.monotonic() + 1.0 < first
    c.ask(-5.0)  # a negative grace is none at all
    assert c.deadline <= time.monotonic()


def test_the_backends_thread_begins_closing_once():
    c = Closing()
    assert [c.begin(), c.begin(), c.begin()] == [True, False, False]


def test_without_a_thread_the_caller_tears_down_and_settles():
    c = Closing()
    queued, running = Future(), Future()
    running.set_running_or_notify_cancel()
    c.ask(0)
    c.wait(None, lambda: [(queued, CANCEL, None), (running, None, RuntimeError("closed"))])
    assert c.ended.is_set()
    assert queued.cancelled()
    assert isinstance(running.exception(0), RuntimeError)


def test_close_returns_once_the_backends_thread_has_ended():
    c = Closing()
    go = threading.Event()

    def backend():
        go.wait(30)
        c.ended.set()

    thread = threading.Thread(target=backend)
    thread.start()
    c.ask(0)
    waiter = threading.Thread(target=c.wait, args=(thread, list))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "close() returned before the backend's thread ended"
    go.set()
    waiter.join(30)
    assert not waiter.is_alive() and not thread.is_alive()


def test_a_close_from_the_backends_own_thread_does_not_wait_for_itself():
    # e.g. a Future's done-callback, run where the backend settles futures, that closes it
    c = Closing()
    returned = threading.Event()

    def backend():
        c.ask(0)
        c.wait(threading.current_thread(), list)
        returned.set()

    thread = threading.Thread(target=backend)
    thread.start()
    thread.join(30)
    assert returned.is_set() and not c.ended.is_set()
