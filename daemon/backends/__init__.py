"""The backends: what runs the daemon's tasks, behind one seam (``seam.Backend``).

    seam.py      the protocol every backend keeps
    base.py      what they share: entries, settling futures, deadlines, lost attempts, guards
    queue.py     the fair queue (round-robin between files)
    remote.py    what crosses a process boundary: results and exceptions, without importing torch
    warmup.py    what a warm worker runs once (models, thread pools), local or on a Dask node
    inline.py    every task at once in this process (``--sequential``; the benchmark's baseline)
    local/       the warm ``spawn`` pool
    dask/        a Dask cluster (imported only when the settings ask for it)

A backend never reaches into another's modules (pyproject.toml's import contracts say so).
"""

from daemon.backends.base import SIGNAL_LOOK, first_done, result_of
from daemon.backends.seam import Backend, Submit

__all__ = ["SIGNAL_LOOK", "Backend", "Submit", "first_done", "result_of"]
