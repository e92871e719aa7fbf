"""The composition root: builds and wires the parts from Settings for `run`, `convert` and `bench`.

    run:      folders checked and created → state lock → spool recovery → warm pool → watcher →
              supervisor loop (until SIGTERM/SIGINT) → orderly close
    convert:  paths checked → warm pool (or everything in this process) → one job
    bench:    one workload through each way of running it, the pool built here

Nothing imports this module but the command line; errors are raised, ``daemon/cli.py`` maps
them to exit codes.
"""

from __future__ import annotations

import os
import time

from daemon import bench, bench_long, convert, log
from daemon.engines import voice_folders
from daemon.errors import AlreadyRunningError
from daemon.metrics import Metrics
from daemon.pool import WorkerPool
from daemon.spool import Spool, acquire_lock, daemon_pid
from daemon.supervisor import Events, Signals, Supervisor
from daemon.supervisor.events import POOL_STARTED, SIGNAL
from daemon.systemd import Notifier
from daemon.watcher import GuardedProbe, Watcher

#: What every worker child runs first: load the VAD and the engine (``daemon/pipeline.py``).
WORKER_INITIALIZER = "daemon.pipeline:init_worker"


def build_pool(settings, *, log_config: dict | None = None) -> WorkerPool:
    """The (not yet started) pool of pipeline workers the settings describe."""
    if log_config is None:
        # Resolved here: a child's stderr is not a terminal, "auto" must mean what it means here.
        log_config = {"fmt": log.resolve_format(settings.log_format), "level": settings.log_level}
    return WorkerPool.from_settings(settings, initializer=WORKER_INITIALIZER, init_args=(settings,),
                                    log_config=log_config)


def make_runner(settings, sequential: bool):
    """The warm pool (default), or everything in this process with ``--sequential``."""
    if sequential:
        return convert.InlineRunner(settings)
    return build_pool(settings).start()


def cli_convert(settings, args) -> int:
    return convert.convert_command(settings, args, lambda: make_runner(settings, args.sequential))


def cli_bench(settings, args) -> int:
    if getattr(args, "workload", "batch") == "long":
        return bench_long.cli_bench_long(settings, args, build_pool)
    return bench.cli_bench(settings, args, build_pool)


def cli_run(settings, args) -> int:
    logger = log.get("daemon")
    spool = Spool(settings, voices=voice_folders(settings))
    spool.ensure_dirs()  # SettingsError (exit 78) when the folders overlap or cannot be made
    lock = acquire_lock(spool.state)
    if lock is None:
        raise AlreadyRunningError(f"another voice-daemon (pid {daemon_pid(settings)}) is using "
                                  f"VOICE_DAEMON_STATE_DIR={spool.state}")
    events = Events()
    # Signals are counted from here on: a SIGTERM while the models load is not lost.
    signals = Signals(events).install()
    notifier = Notifier()
    metrics = pool = None
    try:
        recovered = spool.recover()
        pool = build_pool(settings)
        metrics = Metrics(settings, workers_ok=lambda: pool.broken is None)
        metrics.start()  # /healthz answers "starting" (503) while the workers warm up
        notifier.status("loading models")
        logger.info("daemon.starting", workers=settings.workers, engine=settings.engine,
                    resumed=len(recovered), state_dir=str(spool.state))
        if not _start(pool, events) or signals.count:
            logger.info("daemon.stopped", reason=f"{signals.last} while starting")
            return 0
        supervisor = Supervisor(settings, spool, pool, events=events, signals=signals, notifier=notifier,
                                metrics=metrics, run_job=convert.job_runner(settings), clock=time.time)
        watcher = Watcher(settings, supervisor.on_candidate, on_seen=metrics.watcher_seen,
                          probe=GuardedProbe(spool.state / "probing"))
        return supervisor.run(watcher, recovered)
    finally:
        notifier.stopping()
        if pool is not None:
            pool.close(0)  # workers still loading their models are terminated, not waited for
        if metrics is not None:
            metrics.close()
        notifier.close()
        signals.restore()
        os.close(lock)


def _start(pool: WorkerPool, events: Events) -> bool:
    """Start the workers and wait until they are warm or a signal comes (False).  The pool's
    start timeout bounds the wait; PoolStartError (exit 78, with the child's cause) if one
    cannot load its models."""
    started = pool.start_async()
    started.add_done_callback(lambda _f: events.put(POOL_STARTED))
    while not started.done():
        event = events.get()
        if event is not None and event.kind == SIGNAL:
            return False
    started.result()
    return True
