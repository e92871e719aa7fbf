"""SIGHUP: read the configuration again and replace the workers gracefully, as gunicorn does.

    SIGHUP ─▶ the settings are read again (a bad value: logged, nothing changes)
           ─▶ the next generation is built from them (``daemon/generation.py``: settings,
              capabilities, pool, job runner); its pool warms up while the old one keeps working
           ─▶ once every new worker is warm, one assignment (``sup.gen``) swaps it in: jobs that
              start from then on use the new settings and the new pool; jobs already running
              finish on the old pool, which is closed as soon as none of them needs it
    A new pool that cannot load its models is closed: the old generation stays.

The folders, the watcher's settings, the metrics address, the log format and the job hooks take
effect at the next restart only (a warning names them); everything else applies to jobs started after the
swap.  A SIGHUP during a reload starts another once it is done.  The loop calls ``step()`` each
turn; nothing here blocks but the close of an old pool that has no work left.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass

from daemon import log as logs
from daemon.generation import Generation
from daemon.settings import SettingsError
from daemon.supervisor.events import POOL_STARTED

#: settings a running daemon cannot change: they keep their value until the next start
RESTART_ONLY = ("inbox", "outbox", "failed_dir", "state_dir", "observer", "rescan_seconds", "settle_seconds",
                "closed_settle_seconds", "max_input_bytes", "metrics_addr", "log_format",
                "on_done", "on_failed", "webhook_url", "hook_timeout_seconds")
CLOSE_GRACE = 5.0  # seconds an idle old pool's workers get to leave


@dataclass
class _Next:
    gen: Generation  # its pool warming up
    started: Future
    changed: list[str]
    since: float


class Reloading:
    """``reloader``: ``read()`` → Settings (SettingsError when a value is bad) and ``build(settings)``
    → the next ``Generation`` (its pool not yet started), given by the composition root; None: SIGHUP
    is only logged."""

    def __init__(self, supervisor, reloader):
        self.sup, self.reloader = supervisor, reloader
        self.seen = 0
        self.next: _Next | None = None
        self.again = False
        self.old_pools: list = []
        self.log = logs.get("supervisor")

    def step(self) -> None:
        hups = self.sup.signals.hups
        if hups != self.seen:
            self.seen = hups
            self._begin()
        if self.next is not None and self.next.started.done():
            self._finish()

    def retire_idle_pools(self) -> None:
        """Close the old pools no running job uses any more."""
        for pool in list(self.old_pools):
            if not any(r.pool is pool for r in self.sup.running.values()):
                self.old_pools.remove(pool)
                pool.close(CLOSE_GRACE)
                self.log.info("daemon.old_workers_stopped")

    def close(self) -> None:
        """Shutdown: the pool still warming up and every old pool."""
        if self.next is not None:
            self.next.gen.pool.close(0)
            self.next = None
        for pool in self.old_pools:
            pool.close(0)
        self.old_pools.clear()

    # --- the steps --------------------------------------------------------------------
    def _begin(self) -> None:
        if self.reloader is None:
            self.log.warning("daemon.reload_unsupported", reason="this supervisor was built without a reloader")
            return
        if self.next is not None:
            self.again = True  # the configuration may have changed again since this reload read it
            return
        old = self.sup.s
        try:
            new = self.reloader.read()
        except SettingsError as exc:
            self.log.error("daemon.reload_failed", error=str(exc), kept="the running settings and workers")
            return
        kept = [f for f in RESTART_ONLY if getattr(new, f) != getattr(old, f)]
        if kept:
            self.log.warning("daemon.reload_needs_restart", variables=[old.env_name(f) for f in kept],
                             reason="these take effect at the next restart")
            new = new.model_copy(update={f: getattr(old, f) for f in kept})
        changed = [old.env_name(f) for f in type(old).model_fields if getattr(new, f) != getattr(old, f)]
        try:
            gen = self.reloader.build(new)
            started = gen.pool.start_async()
        except Exception as exc:  # e.g. no process could be spawned
            self.log.error("daemon.reload_failed", error=str(exc), kept="the running settings and workers")
            return
        started.add_done_callback(lambda _f: self.sup.events.put(POOL_STARTED))
        self.next = _Next(gen, started, changed, time.monotonic())
        self.sup.notifier.reloading(f"reloading: {len(changed)} setting(s) changed; new workers loading")
        self.log.info("daemon.reloading", changed=changed, workers=new.workers)

    def _finish(self) -> None:
        n, self.next = self.next, None
        exc = n.started.exception()
        if exc is not None:
            n.gen.pool.close(0)
            self.log.error("daemon.reload_failed", error=str(exc), kept="the running settings and workers")
        else:
            self._swap(n)
        self.sup.notifier.ready()
        if self.again:
            self.again = False
            self._begin()

    def _swap(self, n: _Next) -> None:
        """One assignment: the spool, the reporter and the schedule read the new generation from the
        cell they share with the supervisor; running jobs keep their own pool and job runner."""
        sup, s = self.sup, n.gen.settings
        self.old_pools.append(sup.gen.pool)
        sup.gen = n.gen
        sup.watch_pool(n.gen.pool)
        logs.configure(s.log_format, s.log_level)
        self.log.info("daemon.reloaded", changed=n.changed, workers=s.workers,
                      worker_pids=n.gen.pool.stats()["pids"], seconds=round(time.monotonic() - n.since, 3),
                      running_on_old_workers=len(sup.running))
