"""The second backend: the daemon's tasks on a Dask cluster (VOICE_DAEMON_BACKEND=dask).

    backend.py   DaskBackend: the daemon's side (fair queue, back-pressure, attempts)
    attempts.py  one try of a task, and what became of it (watched on the client's event loop)
    outcomes.py  that outcome settled on the caller's Future: a value, an error, again, or a lost attempt
    sent.py      what each worker holds: the attempt it runs and the one queued behind it
    figures.py   the tasks' seconds and the workers' idle gaps, for the benchmark
    link.py      the connection: start-up, reconnects, the workers seen (view.py)
    view.py      what the daemon knows of the workers (connected, warm, busy, threads)
    warm.py      inside each Dask worker process: the models plugin and the task wrapper
    nanny.py     the nanny that reports how a worker process ended
    node.py      `voice-daemon worker`: a node of worker processes that survives scheduler restarts
    connect.py   addresses, TLS, Dask's settings, a local cluster
    samples.py   what travels to a node that shares no disk: a chunk's samples, and back
    status.py    what `voice-daemon status` says about the cluster

Imported only when the settings ask for Dask: the local pool never loads it.
"""

from daemon.backends.dask.backend import DaskBackend

__all__ = ["DaskBackend"]
