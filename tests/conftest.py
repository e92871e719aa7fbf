"""Shared fixtures: real speech paths, wait_until, and a guard against leaked children."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


SPEECH = (ROOT.parent / "shared" / "data" / "speech").resolve()


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not SPEECH.is_dir():
        pytest.fail(f"real speech not found at {SPEECH}: the shared/ folder must sit beside the checkout")
    return SPEECH


def _children() -> set[int]:
    """PIDs of live (non-zombie) descendants of this process, read from /proc."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        if rest[0] == "Z":
            continue
        parents[int(entry)] = int(rest[1])
    found, frontier = set(), {me}
    while frontier:
        nxt = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= nxt
        frontier = nxt
    return found


@pytest.fixture(scope="session", autouse=True)
def resource_tracker_running():
    """The first spawn child starts multiprocessing's resource tracker, one helper process that
    lives as long as pytest; start it before the leak guard takes its first snapshot."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


#: Threads a library starts once per process and keeps, idle, for its later users: Dask's
#: executors for future callbacks and for (de)serialising large messages.
PROCESS_WIDE_THREADS = ("Dask-Callback-Thread", "Dask-Offload")
#: How long what a test started may take to end after it (a real leak is reported after this long).
LEAK_GRACE_SECONDS = 60


@pytest.fixture(autouse=True)
def no_leaked_children_or_threads(resource_tracker_running):
    """Fail a test that leaves child processes or non-daemon threads behind."""
    threads_before = {t.ident for t in threading.enumerate()}
    kids_before = _children()
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS  # children still exiting on a loaded machine
    while time.monotonic() < deadline:
        leaked = _children() - kids_before
        if not leaked:
            break
        time.sleep(0.05)
    else:
        for pid in leaked:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        pytest.fail(f"test leaked child processes: {sorted(leaked)}")
    deadline = time.monotonic() + LEAK_GRACE_SECONDS / 2
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate()
                 if t.ident not in threads_before and t.is_alive() and not t.daemon
                 and not t.name.startswith(PROCESS_WIDE_THREADS)]
        if not extra:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"test leaked threads: {[t.name for t in extra]}")


@pytest.fixture(scope="session")
def tools():
    missing = [c for c in ("ffmpeg", "sox") if shutil.which(c) is None]
    if missing:
        pytest.fail(f"missing system commands {missing}: run `make test`, which installs them")
