"""The decode's progress through a FIFO: another process tells, the daemon's end hears.

The teller runs in a real second process (as the decode does in a spawn worker)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import wait

import pytest

from daemon.audio.progress import Listener, Teller

TELL = """
import sys
from daemon.audio.progress import Teller
with Teller(sys.argv[1]) as t:
    for frames in map(int, sys.argv[2:]):
        t.tell(frames)
"""


def _tell(path, *frames: int) -> None:
    subprocess.run([sys.executable, "-c", TELL, str(path), *map(str, frames)], check=True, timeout=60)


@pytest.fixture
def listener(tmp_path):
    lst = Listener.open(tmp_path / "decode.fifo")
    assert lst is not None
    yield lst
    lst.close()


def test_a_report_from_another_process_completes_the_wait(listener):
    more = listener.past(0)
    assert not more.done()
    _tell(listener.path, 4800, 9600)
    assert more.result(timeout=30) in (4800, 9600)
    assert listener.past(4800).result(timeout=30) == 9600  # the latest report, once both are read


def test_a_wait_for_more_than_was_told_stays_open(listener):
    _tell(listener.path, 100)
    assert listener.past(0).result(timeout=30) == 100
    later = listener.past(100)
    assert not later.done()
    _tell(listener.path, 50)  # a decode run again tells from the start: never less than before
    _tell(listener.path, 200)
    assert later.result(timeout=30) == 200


def test_close_stops_the_reader_and_removes_the_fifo(tmp_path):
    lst = Listener.open(tmp_path / "decode.fifo")
    assert lst.path.exists()
    lst.close()
    assert not lst.path.exists()
    assert not lst._thread.is_alive()
    lst.close()  # twice: nothing


def test_a_teller_without_a_reader_tells_nothing_and_does_not_fail(tmp_path):
    with Teller(str(tmp_path / "gone.fifo")) as t:  # the job's folder has no FIFO (any more)
        assert t.fd is None
        t.tell(10)
    with Teller("") as t:  # the stream made none
        t.tell(10)
    lst = Listener.open(tmp_path / "decode.fifo")
    t = Teller(str(lst.path))
    lst.close()  # the job ended while its decode still ran
    for frames in range(5):
        t.tell(frames)  # EPIPE, never SIGPIPE: the worker goes on
    assert t.fd is None
    t.close()


def test_a_full_pipe_drops_reports_instead_of_blocking(tmp_path):
    lst = Listener.open(tmp_path / "decode.fifo")
    t = Teller(str(lst.path))
    for frames in range(100_000):  # more than a pipe holds, faster than the reader may read
        t.tell(frames)
    last = lst.past(10**9 - 1)
    deadline = time.monotonic() + 30
    while not last.done() and time.monotonic() < deadline:
        t.tell(10**9)  # dropped while the pipe is full; told again until the reader has it
        wait([last], timeout=0.05)
    assert last.result(timeout=0) == 10**9
    t.close()
    lst.close()


def test_a_fifo_left_by_a_crash_is_replaced(tmp_path):
    os.mkfifo(tmp_path / "decode.fifo")
    lst = Listener.open(tmp_path / "decode.fifo")
    assert lst is not None
    _tell(lst.path, 7)
    assert lst.past(0).result(timeout=30) == 7
    lst.close()
