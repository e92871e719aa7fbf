"""Helpers for tests: waiting on conditions with deadlines (never bare sleeps)."""

from __future__ import annotations

import os
import time


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns a truthy value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate}")
        time.sleep(interval)


def live_in_group(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes of process group ``pgid``, read from /proc: what a
    program started with ``start_new_session=True`` left behind, its workers included."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                rest = f.read().decode(errors="replace").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if rest[0] != "Z" and int(rest[2]) == pgid:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (read from /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False
