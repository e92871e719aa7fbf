"""Composition root of `voice-daemon run`: builds the parts from Settings and wires them.

    folders checked and created → state lock → spool recovery → warm pool → watcher →
    supervisor loop (until SIGTERM/SIGINT) → orderly close
"""

from __future__ import annotations

import os
import sys

from daemon import log
from daemon.metrics import Metrics
from daemon.pool import WorkerPool
from daemon.settings import SettingsError
from daemon.spool import Spool, acquire_lock, daemon_pid
from daemon.supervisor import Signals, Supervisor
from daemon.systemd import Notifier
from daemon.watcher import GuardedProbe, Watcher


def cli_run(settings, args) -> int:
    logger = log.get("daemon")
    spool = Spool(settings)
    try:
        spool.ensure_dirs()
    except SettingsError as exc:
        print(f"voice-daemon: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    lock = acquire_lock(spool.state)
    if lock is None:
        print(f"voice-daemon: error: another voice-daemon (pid {daemon_pid(settings)}) is using "
              f"VOICE_DAEMON_STATE_DIR={spool.state}", file=sys.stderr)
        return 1
    # Signals are counted from here on: a SIGTERM while the models load is not lost.
    signals = Signals().install()
    notifier = Notifier()
    metrics = pool = None
    try:
        recovered = spool.recover()
        pool = WorkerPool.from_settings(settings)
        metrics = Metrics(settings, workers_ok=lambda: pool.broken is None)
        metrics.start()  # /healthz answers "starting" (503) while the workers warm up
        notifier.status("loading models")
        logger.info("daemon.starting", workers=settings.workers, engine=settings.engine,
                    resumed=len(recovered), state_dir=str(spool.state))
        pool.start()  # PoolStartError → exit 78 with the child's cause (cli.py)
        if signals.count:
            logger.info("daemon.stopped", reason=f"{signals.last} while starting")
            return 0
        supervisor = Supervisor(settings, spool, pool, signals=signals, notifier=notifier, metrics=metrics)
        watcher = Watcher(settings, supervisor.on_candidate, on_seen=metrics.watcher_seen,
                          probe=GuardedProbe(spool.state / "probing"))
        return supervisor.run(watcher, recovered)
    finally:
        notifier.stopping()
        if pool is not None:
            pool.close(0)
        if metrics is not None:
            metrics.close()
        notifier.close()
        signals.restore()
        os.close(lock)
