"""How this program talks to a Dask cluster: the address, TLS, the settings Dask runs with.

Every Dask connection of the daemon, a worker node and ``voice-daemon status`` goes through
``security(settings)``: with certificates, Dask's own TLS (``distributed.comm.tls``: each side
shows a certificate signed by the CA and checks the other's; plain TCP is refused).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dask
from distributed import LocalCluster
from distributed.security import Security

from daemon import log
from daemon.backends.dask.nanny import ReportingNanny
from daemon.backends.warmup import thread_env
from daemon.settings import SettingsError

#: Dask settings of the daemon's client, of a cluster it starts itself and of a node.
#: allowed-failures 0: a task whose worker dies comes back to the daemon at once, which counts
#: the attempt and sends it again (VOICE_DAEMON_MAX_ATTEMPTS), as with the local pool.
#: The rest turns off what costs CPU in every Dask process and buys nothing here: the task
#: profiler (10 ms samples in each worker), work stealing (every task is pinned to its worker),
#: the 20 ms event-loop ticks and the 0.5 s system monitors (disk, GIL).
DASK_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.work-stealing": False,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.tick.limit": "30s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.daemon": True,
    "distributed.comm.timeouts.connect": "10s",
    # Models are "unmanaged memory" to Dask: no limit, or it pauses and kills warm workers.
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": False,
    # A nanny starts its worker with MALLOC_TRIM_THRESHOLD_=65536 by default.  That turns off glibc's
    # adaptive mmap threshold: every large array is a fresh mmap, faulted in and unmapped again.
    # The same tasks then cost a Dask worker's thread up to 2.5x the CPU of a pool worker (decoding,
    # the VAD's features) and 7-15 % more per chunk.  Both backends' workers run with glibc's
    # defaults (an operator's own MALLOC_TRIM_THRESHOLD_ in the environment still wins).
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


class _DaskToEvents(logging.Handler):
    """Dask's stdlib log records as our events (``dask.log``): the daemon's stderr stays JSON."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log.get("dask").log(record.levelno, "dask.log", logger=record.name, message=record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def quiet_dask_logs() -> None:
    """In the daemon: Dask's own lines from warnings up, as ``dask.log`` events; what it does is
    told in our ``cluster.*`` events.  A worker node keeps Dask's informative lines as they are."""
    logger = logging.getLogger("distributed")
    if not any(isinstance(h, _DaskToEvents) for h in logger.handlers):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(_DaskToEvents())
        logger.propagate = False
    for name in ("distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))):
        sub = logging.getLogger(name)
        if sub.level == logging.NOTSET or sub.level < logging.WARNING:
            sub.setLevel(logging.WARNING)


def security(settings) -> Security | None:
    """Dask's TLS settings from VOICE_DAEMON_TLS_*, or None for plain TCP.  The same certificate
    serves every role this process may take (client, worker, a local scheduler)."""
    if not settings.tls:
        return None
    files = {}
    for field in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        path = Path(getattr(settings, field))
        if not path.is_file() or not os.access(path, os.R_OK):
            raise SettingsError(settings.env_name(field), path, "allowed: a readable PEM file")
        files[field] = str(path)
    ca, cert, key = files["tls_ca_file"], files["tls_cert_file"], files["tls_key_file"]
    return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, tls_worker_cert=cert,
                    tls_worker_key=key, tls_scheduler_cert=cert, tls_scheduler_key=key,
                    require_encryption=True)


def protocol(settings) -> str:
    return "tls://" if settings.tls else "tcp://"


def describe_address(settings) -> str:
    """Where the tasks go, for logs and status: the scheduler, or "local cluster"."""
    return settings.dask_scheduler or f"local cluster ({settings.workers} processes, {protocol(settings)}127.0.0.1)"


worker_env = thread_env  # the environment of a Dask worker process


def start_local_cluster(workers: int, sec: Security | None = None, *, threads: int = 1) -> LocalCluster:
    """A cluster of ``workers`` single-thread worker processes on 127.0.0.1 (over TLS with ``sec``),
    owned by the caller: the daemon with no VOICE_DAEMON_DASK_SCHEDULER, the benchmark, tests."""
    with dask.config.set(DASK_CONFIG):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", protocol="tls://" if sec else "tcp://", security=sec,
                            dashboard_address=None, memory_limit=0, worker_class=ReportingNanny,
                            # Their stderr is the daemon's: Dask's informative lines stay out of it.
                            env={**worker_env(threads), "DASK_LOGGING__DISTRIBUTED": "warning"})


def own_scheduling(dask_scheduler=None) -> int:
    """Run on the scheduler (``Client.run_on_scheduler``) when the daemon connects: the daemon
    counts the attempts of its tasks itself, so the scheduler must not re-run a task whose worker
    died; and every task is pinned to a worker, so work stealing only costs CPU (an external
    scheduler may have been started without ``DASK_CONFIG``).  Returns allowed_failures' old value."""
    before = dask_scheduler.allowed_failures
    dask_scheduler.allowed_failures = 0
    stealing = dask_scheduler.periodic_callbacks.get("stealing")
    if stealing is not None:
        stealing.stop()
    return before


def scheduler_cpu(dask_scheduler=None) -> tuple[float, int]:
    """Run on the scheduler: CPU seconds its event loop's thread has used (the benchmark divides
    the difference by the tasks it ran), and the scheduler's process id."""
    import os
    import time

    return time.thread_time(), os.getpid()


def task_states(keys: list[str], dask_scheduler=None) -> dict[str, str | None]:
    """Run on the scheduler: the state of each task (None: unknown there)."""
    tasks = dask_scheduler.tasks
    return {key: tasks[key].state if key in tasks else None for key in keys}
