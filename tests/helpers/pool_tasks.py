"""Tiny task functions and initializers run inside real pool children by the pool tests.

Spawned children import this module as ``helpers.pool_tasks``: spawn hands the
parent's ``sys.path`` (which conftest extends with ``tests/``) to every child.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

from daemon.errors import InputError

INITIALIZED: dict = {}


# ---- initializers --------------------------------------------------------------------------
def init_record(value="warm"):
    INITIALIZED["value"] = value


def init_fail(path="/nonexistent/model.pt"):
    raise FileNotFoundError(f"model file {path} not found")


def init_crash():
    ctypes.string_at(0)


def init_fail_if_exists(marker):
    """Loads fine until ``marker`` exists: lets a test break only the replacement workers."""
    if Path(marker).exists():
        raise RuntimeError(f"cannot load models: {marker} says so")


def init_wait_if_exists(marker, gate):
    """Loads at once until ``marker`` exists; after that, only once ``gate`` exists: lets a test
    hold a replacement worker in its initializer."""
    if Path(marker).exists():
        wait_for_file(gate)


def init_killed_if_exists(marker):
    """Loads fine until ``marker`` exists; after that the child is SIGKILLed while loading, as
    the OOM killer would do it."""
    if Path(marker).exists():
        os.kill(os.getpid(), signal.SIGKILL)


def init_torch_like_silero():
    """What importing silero-vad does: torch comes in and is set to one thread."""
    import torch

    torch.set_num_threads(1)


# ---- tasks -----------------------------------------------------------------------------------
def square(x):
    return {"x": x, "y": x * x, "pid": os.getpid()}


def whoami(tag=None):
    return {"pid": os.getpid(), "tag": tag, "initialized": INITIALIZED.get("value")}


def fail(message="boom"):
    raise ValueError(message)


def input_error(path, cause):
    raise InputError(path, cause, stage="engine")


def exit_now(code=3):
    os._exit(code)


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def segfault():
    ctypes.string_at(0)


def hang():
    while True:
        signal.pause()


def crash_until(counter, crashes, code=1):
    """Die (exit ``code``) on the first ``crashes`` calls sharing ``counter``, then succeed."""
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= crashes:
        os._exit(code)
    return {"calls": calls, "pid": os.getpid()}


def wait_for_file(path, tag=None, timeout=120.0):
    """Block until ``path`` exists (a gate the test opens), then report."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return {"pid": os.getpid(), "tag": tag}


def torch_threads():
    torch = sys.modules.get("torch")
    return {"torch_threads": torch.get_num_threads() if torch else None}


def torch_tensor():
    import torch

    return {"tensor": torch.zeros(2)}


def unpicklable_result():
    return {"f": lambda: 0}


def count_call(path, x=0):
    """Append one line to ``path`` per call: a test counts how often a task really ran."""
    with open(path, "a") as f:
        f.write(f"{x}\n")
    return {"x": x, "pid": os.getpid()}
