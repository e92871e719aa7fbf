"""One daemon per state folder: an flock on STATE_DIR/daemon.lock, which also names its pid."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from daemon import durable

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


#: What the daemon holding the lock wrote at start: its folders, so `status --state-dir` finds them.
RECORD = "daemon.json"


def write_record(state_dir: Path, info: dict) -> None:
    """Record the running daemon's pid, folders and addresses beside its lock."""
    durable.write_text(state_dir / RECORD, json.dumps({"pid": os.getpid(), **info}, ensure_ascii=False, indent=1))


def read_record(state_dir: Path) -> dict | None:
    try:
        data = json.loads((Path(state_dir) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
