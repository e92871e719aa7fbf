"""`voice-daemon worker`: a Dask worker node for the daemon's chunks.

    voice-daemon worker --scheduler tcp://10.0.0.5:8786 --nworkers 2

The node runs ``--nworkers`` worker processes of one thread each, every one watched by a
nanny that starts a fresh process when it dies.  The processes load no models of their own:
the daemon's ``WarmModels`` plugin, handed out by the scheduler, loads them once in each with
the daemon's settings (``warm.py``).  Dask workers end when their scheduler goes away; this
node then waits for the scheduler to come back and starts them again, so a scheduler restart
needs nothing done on the nodes.  SIGTERM or SIGINT: the workers leave the cluster (their
tasks go to other workers) and the node exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress

import dask
from distributed import Nanny
from distributed.comm import connect
from distributed.core import Status
from distributed.utils import get_ip

from daemon import log
from daemon.backends.dask.connect import DASK_CONFIG, security, worker_env
from daemon.backends.dask.nanny import ReportingNanny
from daemon.settings import usable_cores

RECONNECT_EVERY = 1.0     # seconds between tries to reach the scheduler
WAITING_LOG_EVERY = 60.0  # seconds between "still waiting" lines


def serve(settings, scheduler: str, nworkers: int | None = None, host: str | None = None) -> int:
    """Run the node until SIGTERM/SIGINT; 0 then."""
    sec = security(settings)
    n = nworkers or usable_cores()
    threads = settings.threads_per_worker or max(1, usable_cores() // n)
    host = host or get_ip(scheduler.partition("://")[2].rpartition(":")[0] or "127.0.0.1")
    with dask.config.set(DASK_CONFIG):
        return asyncio.run(_serve(scheduler, n, threads, host, sec))


async def _serve(scheduler: str, n: int, threads: int, host: str, sec) -> int:
    logger = log.get("cluster")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info("cluster.node_starting", scheduler=scheduler, nworkers=n, torch_threads=threads, host=host)
    args = sec.get_connection_args("worker") if sec else {}
    while not stop.is_set():
        if not await _wait_for_scheduler(scheduler, args, stop, logger):
            break
        nannies = [ReportingNanny(scheduler, nthreads=1, memory_limit=0, host=host, security=sec,
                                  env=worker_env(threads), dashboard=False) for _ in range(n)]
        try:
            await asyncio.gather(*nannies)
        except Exception as exc:  # the scheduler went away while they started: try again
            logger.warning("cluster.node_start_failed", scheduler=scheduler, error=f"{type(exc).__name__}: {exc}")
            await _close(nannies)
            continue
        logger.info("cluster.node_ready", scheduler=scheduler, workers=[nn.worker_address for nn in nannies])
        finished = asyncio.ensure_future(asyncio.gather(*(nn.finished() for nn in nannies)))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([finished, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        await _close(nannies)
        finished.cancel()
        if not stop.is_set():
            logger.warning("cluster.node_scheduler_lost", scheduler=scheduler)
    logger.info("cluster.node_stopped", scheduler=scheduler)
    return 0


async def _wait_for_scheduler(address: str, args: dict, stop: asyncio.Event, logger) -> bool:
    """True once the scheduler accepts a connection; False when told to stop first."""
    waited = 0.0
    while not stop.is_set():
        try:
            comm = await connect(address, timeout=5, **args)
        except (OSError, asyncio.TimeoutError) as exc:
            if waited == 0.0 or waited >= WAITING_LOG_EVERY:
                logger.info("cluster.node_waiting", scheduler=address, error=str(exc))
                waited = 0.0
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), RECONNECT_EVERY)
            waited += RECONNECT_EVERY
            continue
        await comm.close()
        return True
    return False


async def _close(nannies: list[Nanny]) -> None:
    await asyncio.gather(*(nn.close(timeout=10, reason="voice-daemon-node-stop") for nn in nannies
                           if nn.status not in (Status.closed, Status.closing)), return_exceptions=True)
