"""What `voice-daemon status` says about a Dask cluster: asked of its scheduler, read only."""

from __future__ import annotations

from daemon.backends.dask.connect import describe_address, security

ASK_TIMEOUT = 5.0  # seconds


def cluster_status(settings, timeout: float = ASK_TIMEOUT) -> dict:
    """The backend, the scheduler, and (when one is given and answers) its workers: connected,
    their threads, busy.  A local cluster lives inside the daemon: only the daemon's /metrics
    sees it."""
    out = {"backend": "dask", "scheduler": describe_address(settings), "reachable": None,
           "workers_connected": None, "threads": None, "workers_busy": None}
    if not settings.dask_scheduler:
        return out
    from distributed import Client

    try:
        sec = security(settings)
        with Client(settings.dask_scheduler, security=sec, timeout=timeout, set_as_default=False) as client:
            threads = client.nthreads()
            processing = client.processing()
    except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
        return {**out, "reachable": False, "error": f"{type(exc).__name__}: {exc}"}
    return {**out, "reachable": True, "workers_connected": len(threads), "threads": sum(threads.values()),
            "workers_busy": sum(1 for keys in processing.values() if keys)}


def describe(backend: dict) -> str:
    """The line `voice-daemon status` prints for a Dask backend."""
    line = f"dask, {backend['scheduler']}"
    if backend.get("reachable") is False:
        return f"{line}: unreachable ({backend.get('error')})"
    if backend.get("reachable"):
        return (f"{line}: {backend['workers_connected']} worker(s) connected ({backend['threads']} threads), "
                f"{backend['workers_busy']} busy")
    return line
