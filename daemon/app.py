"""The composition root: builds and wires the parts from Settings for `run`, `convert` and `bench`.

    run:      folders checked and created → state lock → spool recovery → backend (the warm pool, or a
              Dask cluster: VOICE_DAEMON_BACKEND) → watcher → supervisor loop (until SIGTERM/SIGINT;
              SIGHUP: settings read again, the next generation built here (``build_generation``:
              settings, capabilities, backend, job runner) replaces the old one) → orderly close
    convert:  paths checked → backend (or everything in this process) → one job
    bench:    one workload through each way of running it, the pool and the Dask backend built here
    worker:   a Dask worker node for the dask backend
    status:   the spool's folders, and the backend's workers

Nothing imports this module but the command line; errors are raised, ``daemon/cli.py`` maps
them to exit codes.
"""

from __future__ import annotations

import os
import time
from functools import partial

from daemon import __version__, bench, convert, log
from daemon.audio.header import GuardedProbe
from daemon.backends import SIGNAL_LOOK, Backend
from daemon.backends.inline import InlineRunner
from daemon.backends.local import WorkerPool
from daemon.bench import long as bench_long
from daemon.capabilities import Capabilities
from daemon.engines import capabilities
from daemon.errors import AlreadyRunningError, UsageError
from daemon.generation import Generation
from daemon.hooks import Hooks
from daemon.metrics import Metrics
from daemon.settings import env_file_values, reload_settings, scheduler_address
from daemon.spool import Spool, acquire_lock, daemon_pid, write_record
from daemon.spool import cli_status as spool_status
from daemon.spool.folders import folder_paths
from daemon.supervisor import Events, Signals, Supervisor
from daemon.supervisor.events import POOL_STARTED, SIGNAL
from daemon.systemd import Notifier
from daemon.watcher import Watcher
from daemon.web import LiveBoard, StatusPage
from daemon.web.server import serve

#: What every worker child runs first: load the VAD and the engine (``daemon/pipeline.py``).
WORKER_INITIALIZER = "daemon.pipeline:init_worker"


def _child_log_config(settings, log_config: dict | None) -> dict:
    # Resolved here: a child's stderr is not a terminal, "auto" must mean what it means here.
    return log_config or {"fmt": log.resolve_format(settings.log_format), "level": settings.log_level}


def build_pool(settings, *, log_config: dict | None = None) -> WorkerPool:
    """The (not yet started) local pool of pipeline workers the settings describe."""
    return WorkerPool.from_settings(settings, initializer=WORKER_INITIALIZER, init_args=(settings,),
                                    log_config=_child_log_config(settings, log_config))


def build_dask(settings, *, log_config: dict | None = None, local: bool = False):
    """The (not yet started) Dask backend: VOICE_DAEMON_DASK_SCHEDULER's cluster, or a local one
    (``local``, or no scheduler given).  Its workers load the models with these settings.

    Tasks pass paths on a local cluster and with VOICE_DAEMON_SHARED_STORAGE.  Only an external
    cluster without shared storage gets the chunks' samples (``daemon/backends/dask/samples.py``,
    straight to the worker), and then the whole-file stages run in one warm worker on this host."""
    from daemon.backends.dask import DaskBackend
    from daemon.backends.dask.samples import SamplesCourier

    if local and settings.dask_scheduler:
        settings = settings.model_copy(update={"dask_scheduler": ""})
    log_config = _child_log_config(settings, log_config)
    courier = host = None
    if settings.dask_scheduler and not settings.shared_storage:
        courier = SamplesCourier()
        host = build_pool(settings.model_copy(update={"workers": 1, "threads_per_worker": settings.torch_threads}),
                          log_config=log_config)
    return DaskBackend.from_settings(settings, initializer=WORKER_INITIALIZER, init_args=(settings,),
                                     log_config=log_config, courier=courier, host=host)


def build_backend(settings, *, log_config: dict | None = None) -> Backend:
    """What runs the tasks, as VOICE_DAEMON_BACKEND says (not yet started)."""
    if settings.backend == "dask":
        return build_dask(settings, log_config=log_config)
    return build_pool(settings, log_config=log_config)


def make_runner(settings, sequential: bool):
    """The backend (default), or everything in this process with ``--sequential``."""
    if sequential:
        return InlineRunner(settings)
    return build_backend(settings).start()


def cli_convert(settings, args) -> int:
    return convert.convert_command(settings, args, lambda: make_runner(settings, args.sequential))


def cli_bench(settings, args) -> int:
    # dask: the cluster of VOICE_DAEMON_DASK_SCHEDULER where one is given (its nodes started apart),
    # else a local one in the mode's own process
    make_dask = partial(build_dask, local=not settings.dask_scheduler)
    if getattr(args, "workload", "batch") == "long":
        return bench_long.cli_bench_long(settings, args, build_pool, make_dask)
    return bench.cli_bench(settings, args, build_pool, make_dask=make_dask)


def cli_worker(settings, args) -> int:
    """`voice-daemon worker`: a Dask worker node (runs until SIGTERM/SIGINT)."""
    from daemon.backends.dask import node

    if args.nworkers is not None and args.nworkers < 1:
        raise UsageError(f"--nworkers {args.nworkers}: allowed: 1 or more")
    scheduler = args.scheduler or settings.dask_scheduler
    if not scheduler:
        raise UsageError("no scheduler: pass --scheduler tcp://HOST:8786 or set VOICE_DAEMON_DASK_SCHEDULER")
    try:
        scheduler = scheduler_address(scheduler)
    except ValueError as exc:
        raise UsageError(f"--scheduler {scheduler}: {exc}") from None
    if scheduler.startswith("tls://") and not settings.tls:
        raise UsageError(f"--scheduler {scheduler} needs VOICE_DAEMON_TLS_CA_FILE, _CERT_FILE and _KEY_FILE")
    return node.serve(settings, scheduler, nworkers=args.nworkers or settings.workers, host=args.host)


def cli_status(settings, args) -> int:
    """`voice-daemon status`: the spool's folders, and where the tasks run."""
    if settings.backend == "dask":
        from daemon.backends.dask.status import cluster_status, describe

        backend = cluster_status(settings)
        line = describe(backend)
    else:
        backend = {"backend": "local", "workers": settings.workers}
        line = f"local pool of {settings.workers} worker process(es)"
    return spool_status(settings, args, backend=backend, backend_line=line)


def build_generation(settings, pool: Backend | None = None, caps: Capabilities | None = None) -> Generation:
    """What a reload rebuilds, from ``settings``: what the engine can do (``caps``; the voice folders
    among it), the backend (``pool``, or a new one, not yet started) and the job runner."""
    caps = caps or capabilities(settings)
    return Generation(settings, caps, pool or build_backend(settings), convert.job_runner(settings, caps))


class Reloader:
    """What the supervisor needs on SIGHUP: the settings read again (the `run` command's own
    flags still win) and, for new settings, the next generation."""

    FLAGS = ("log_format", "log_level")  # the global flags that override settings

    def __init__(self, args):
        self.at_start = env_file_values()
        self.overrides = {f: getattr(args, f) for f in self.FLAGS if getattr(args, f, None) is not None}

    def read(self):
        return reload_settings(self.at_start, **self.overrides)

    def build(self, settings) -> Generation:
        return build_generation(settings)


def cli_run(settings, args) -> int:
    logger = log.get("daemon")
    convert.check_voice(settings)  # before any model loads
    caps = capabilities(settings)  # what the engine can do: the parent side asks this, never its name
    spool = Spool(settings, capabilities=caps)
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
    server = pool = hooks = supervisor = None
    try:
        reloader = Reloader(args)
        recovered = spool.recover()
        pool = build_backend(settings)
        # After a SIGHUP the supervisor's backend is another one: ask for the one in use.  Unhealthy
        # too while the Dask scheduler is out of reach (the jobs wait in the spool).
        in_use = lambda: spool.current.gen.pool or pool  # noqa: E731
        metrics = Metrics(settings, workers_ok=lambda: in_use().broken is None and in_use().stats().get("connected", True))
        live = LiveBoard()
        page = StatusPage(settings, live, metrics=metrics, pool_stats=lambda: in_use().stats())
        # /healthz answers "starting" (503) while the workers warm up
        server = serve(metrics, settings.metrics_addr, routes=page.routes())
        notifier.status("loading models")
        logger.info("daemon.starting", workers=settings.workers, engine=settings.engine,
                    resumed=len(recovered), state_dir=str(spool.state))
        if not _start(pool, events) or signals.count:
            logger.info("daemon.stopped", reason=f"{signals.last} while starting")
            return 0
        hooks = Hooks.from_settings(settings)
        supervisor = Supervisor(build_generation(settings, pool, caps), spool, events=events, signals=signals,
                                notifier=notifier, metrics=metrics, clock=time.time,
                                observers=[live, *([hooks] if hooks else [])], reloader=reloader)
        watcher = Watcher(settings, supervisor.on_candidate, on_seen=metrics.watcher_seen, current=spool.current,
                          probe=GuardedProbe(spool.state / "probing"))
        return supervisor.run(watcher, recovered)
    finally:
        notifier.stopping()
        for p in {id(p): p for p in (pool, getattr(supervisor, "pool", None)) if p is not None}.values():
            p.close(0)  # workers still loading their models are terminated, not waited for
        if hooks is not None:
            hooks.close()  # the last jobs' hooks get their timeout, then are killed
        if server is not None:
            server.close()
        notifier.close()
        signals.restore()
        os.close(lock)


def _start(pool: Backend, events: Events) -> bool:
    """Start the workers and wait until they are warm or a signal comes (False).  The pool's
    start timeout bounds the wait; PoolStartError (exit 78, with the child's cause) if one
    cannot load its models."""
    started = pool.start_async()
    started.add_done_callback(lambda _f: events.put(POOL_STARTED))
    while not started.done():
        event = events.get(SIGNAL_LOOK)  # wakes to run a signal's handler (daemon/backends/base.py)
        if event is not None and event.kind == SIGNAL:
            return False
    started.result()
    return True
