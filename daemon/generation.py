"""What a reload rebuilds, as one value, and the one cell that holds the value in use.

A ``Generation`` is the settings, what the engine can do, the backend and the job runner built
from them.  The composition root (``daemon/app.py``) builds the first; on SIGHUP the reloader builds
the next (``daemon/supervisor/reload.py``) and the supervisor swaps it in one assignment to
``Current.gen``.  The parts that read settings or capabilities (the spool, the reporter, the
schedule's retry limits) share that ``Current`` and read it when they act, so none of them is
written to.  A job already running keeps the backend and job runner it started with.

A leaf: no import but ``daemon.capabilities``; the backend and the job runner are whatever the
composition root hands over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from daemon.capabilities import Capabilities


@dataclass(frozen=True)
class Generation:
    settings: Any                              # daemon.settings.Settings
    capabilities: Capabilities
    #: the backend (``daemon.backends.seam.Backend``) and ``run_job``; None where only the settings are
    #: read (a spool before the backend is built, ``voice-daemon status``)
    pool: Any = None
    run_job: Callable[..., dict] | None = None


class Current:
    """The generation in use: one cell, shared by every part that reads it, set in one assignment."""

    def __init__(self, gen: Generation):
        self.gen = gen


class ReadsCurrent:
    """A part that reads the generation in use (the spool, the reporter): ``s`` and
    ``capabilities`` come from its ``current`` cell whenever they are read."""

    current: Current

    @property
    def s(self):
        """The settings in use."""
        return self.current.gen.settings

    @property
    def capabilities(self) -> Capabilities:
        return self.current.gen.capabilities
