"""Both backends behind the one seam, built the same way for the tests that run on each.

``local``: the warm spawn pool.  ``dask``: the Dask backend on a real ``LocalCluster`` of
single-thread worker processes on 127.0.0.1 (their nannies run in the test process, their
worker processes are its children, so the leak guard sees them).
"""

from __future__ import annotations

from daemon.backends.local import WorkerPool

T = "helpers.pool_tasks:"
KINDS = ("local", "dask")


def build(kind: str, workers: int = 2, *, initializer: str | None = T + "init_record", init_args: tuple = (),
          security=None, **options):
    """A backend of ``kind`` (not started) with ``workers`` single-thread workers."""
    if kind == "local":
        return WorkerPool(workers, initializer=initializer, init_args=init_args, **options)
    from daemon.backends.dask import DaskBackend
    from daemon.backends.dask.connect import start_local_cluster
    from daemon.backends.dask.warm import WarmModels

    return DaskBackend(address=None, plugin=WarmModels(initializer, init_args, threads=options.pop("threads_per_worker", 0)),
                       local_cluster=lambda: start_local_cluster(workers, security), security=security, **options)


def worker_pids(backend) -> list[int]:
    return list(backend.stats()["pids"])
