"""The second backend: the daemon's tasks on a Dask cluster (VOICE_DAEMON_BACKEND=dask).

    backend.py   DaskBackend: the daemon's side (fair queue, back-pressure, attempts, reconnects)
    view.py      what the daemon knows of the workers (connected, warm, busy, threads)
    warm.py      inside each Dask worker process: the models plugin and the task wrapper
    node.py      `voice-daemon worker`: a node of worker processes that survives scheduler restarts
    connect.py   addresses, TLS, Dask's settings, a local cluster
    status.py    what `voice-daemon status` says about the cluster

Imported only when the settings ask for Dask: the local pool never loads it.
"""

from daemon.pool.cluster.backend import DaskBackend

__all__ = ["DaskBackend"]
