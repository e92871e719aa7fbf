"""Real small filesystems for full-disk tests: a tmpfs mounted on a folder (needs root), and a
filler file that takes every byte left on it."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (the CI runs as root)")


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "4m"):
    """``folder`` is a fresh tmpfs of ``size`` for the block; unmounted (lazily) after."""
    need_root()
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, name: str = "filler.bin") -> Path:
    """Write ``folder/name`` until the filesystem refuses another byte; return its path."""
    path = folder / name
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        for size in (4096, 512, 1):  # the last partial blocks
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return path
