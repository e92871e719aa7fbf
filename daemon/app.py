"""The composition root: builds and wires the parts from Settings for `run`, `convert` and `bench`.

    run:      folders checked and created → state lock → spool recovery → warm pool → watcher →
              supervisor loop (until SIGTERM/SIGINT; SIGHUP: settings read again, a new pool
              built here replaces the old one) → orderly close
    convert:  paths checked → warm pool (or everything in this process) → one job
    bench:    one workload through each way of running it, the pool built here

Nothing imports this module but the command line; errors are raised, ``daemon/cli.py`` maps
them to exit codes.
"""

from __future__ import annotations

import os
import time

from daemon import __version__, bench, bench_long, convert, log
from daemon.engines import voice_folders
from daemon.errors import AlreadyRunningError
from daemon.hooks import Hooks
from daemon.metrics import Metrics
from daemon.pool import WorkerPool
from daemon.settings import env_file_values, reload_settings
from daemon.spool import Spool, acquire_lock, daemon_pid, write_record
from daemon.spool.folders import folder_paths
from daemon.supervisor import Events, Signals, Supervisor
from daemon.supervisor.events import POOL_STARTED, SIGNAL
from daemon.systemd import Notifier
from daemon.watcher import GuardedProbe, Watcher
from daemon.web import LiveBoard, StatusPage

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


class Reloader:
    """What the supervisor needs on SIGHUP: the settings read again (the `run` command's own
    flags still win) and, for new settings, the pool, the job runner and the voice folders."""

    FLAGS = ("log_format", "log_level")  # the global flags that override settings

    def __init__(self, args):
        self.at_start = env_file_values()
        self.overrides = {f: getattr(args, f) for f in self.FLAGS if getattr(args, f, None) is not None}

    def read(self):
        return reload_settings(self.at_start, **self.overrides)

    def build(self, settings):
        return build_pool(settings), convert.job_runner(settings), voice_folders(settings)


def cli_run(settings, args) -> int:
    logger = log.get("daemon")
    convert.check_voice(settings)  # before any model loads
    spool = Spool(settings, voices=voice_folders(settings))
    spool.ensure_dirs()  # SettingsError (exit 78) when the folders overlap or cannot be made
    lock = acquire_lock(spool.state)
    if lock is None:
        raise AlreadyRunningError(f"another voice-daemon (pid {daemon_pid(settings)}) is using "
                                  f"VOICE_DAEMON_STATE_DIR={spool.state}")
    # What `voice-daemon status --state-dir` reads to find this daemon's other folders.
    try:
        write_record(spool.state, {"version": __version__, "started_at": time.time(),
                                   "folders": folder_paths(settings), "metrics_addr": settings.metrics_addr})
    except OSError as exc:  # a full state disk: the daemon still starts (and pauses until there is space)
        logger.warning("daemon.record_error", error=str(exc))
    events = Events()
    # Signals are counted from here on: a SIGTERM while the models load is not lost.
    signals = Signals(events).install()
    notifier = Notifier()
    metrics = pool = hooks = supervisor = None
    try:
        reloader = Reloader(args)
        recovered = spool.recover()
        pool = build_pool(settings)
        # After a SIGHUP the supervisor's pool is another one: ask for the one in use.
        metrics = Metrics(settings, workers_ok=lambda: (supervisor.pool if supervisor else pool).broken is None)
        live = LiveBoard()
        StatusPage(settings, live, metrics=metrics,
                   pool_stats=lambda: (supervisor.pool if supervisor else pool).stats()).install(metrics)
        metrics.start()  # /healthz answers "starting" (503) while the workers warm up
        notifier.status("loading models")
        logger.info("daemon.starting", workers=settings.workers, engine=settings.engine,
                    resumed=len(recovered), state_dir=str(spool.state))
        if not _start(pool, events) or signals.count:
            logger.info("daemon.stopped", reason=f"{signals.last} while starting")
            return 0
        hooks = Hooks.from_settings(settings)
        supervisor = Supervisor(settings, spool, pool, events=events, signals=signals, notifier=notifier,
                                metrics=metrics, run_job=convert.job_runner(settings), clock=time.time,
                                observers=[live, *([hooks] if hooks else [])], reloader=reloader)
        watcher = Watcher(settings, supervisor.on_candidate, on_seen=metrics.watcher_seen,
                          probe=GuardedProbe(spool.state / "probing"))
        return supervisor.run(watcher, recovered)
    finally:
        notifier.stopping()
        for p in {id(p): p for p in (pool, getattr(supervisor, "pool", None)) if p is not None}.values():
            p.close(0)  # workers still loading their models are terminated, not waited for
        if hooks is not None:
            hooks.close()  # the last jobs' hooks get their timeout, then are killed
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
