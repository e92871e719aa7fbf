"""One daemon per state folder: an flock on STATE_DIR/daemon.lock, which also names its pid."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK = "daemon.lock"


def acquire_lock(state_dir: Path):
    """Hold STATE_DIR/daemon.lock for this process's life; None if another daemon holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def daemon_pid(settings) -> int | None:
    """The pid of the daemon holding the state folder's lock, or None."""
    path = Path(settings.state_dir).absolute() / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
