"""The backend's envelope: ``Task`` (a function's path and its keyword arguments) and
``TaskResult``, the records every backend passes to and from its workers.  A leaf module.

What a stage's task carries is in ``daemon/tasks.py``: paths and small parameters, with two
exceptions named there (a chunk's seam frames, and a chunk's samples where the Dask workers share
no disk with the daemon).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


def resolve(path: str) -> Any:
    """``"package.module:function"`` -> the object (qualified names like ``Class.method`` too).

    The one resolver of such paths: task functions, pool initializers, CLI handlers.
    """
    module, sep, qualname = path.partition(":")
    if not sep or not module or not qualname:
        raise ValueError(f"expected 'module:function', got {path!r}")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Task:
    """One unit of work for a warm child: ``func(**kwargs)`` in the child.

    ``func`` is a ``"package.module:function"`` path imported in the child, so the
    pool stays ignorant of audio.  The function returns a small picklable dict
    (paths and figures).
    """

    func: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    group: str = ""                 # fairness key: tasks of one job/file share a group
    timeout: float | None = None    # seconds; None = the pool's default
    audio_seconds: float = 0.0      # for figures and deadline scaling


@dataclass(frozen=True)
class TaskResult:
    value: dict[str, Any]
    worker_pid: int
    attempts: int
    compute_seconds: float


@dataclass(frozen=True)
class Chunk:
    """A frame range of the working WAV.  ``overlap_*``: frames shared with the
    neighbour for a crossfade (non-zero only where a cut fell inside speech)."""

    index: int
    start: int
    end: int
    overlap_before: int = 0
    overlap_after: int = 0

    @property
    def frames(self) -> int:
        return self.end - self.start
