"""The pool's start as its dispatcher tracks it: until every worker has been warm once, and what a
worker that never became ready leads to.

``started`` resolves once as many workers as the pool has are ready, or fails with
``PoolStartError`` (its cause: the initializer's own exception, rebuilt, when there is one).  A
worker that never became ready is started again after a backoff, or the pool breaks
(``restarts.py``): its loader's error or a load past the start timeout would happen again and is
fatal at once; a death while loading (the OOM killer) is not, until ``max_failed_starts`` in a row.
Used on the dispatcher's thread, under the pool's lock; it decides and logs, the dispatcher acts.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Iterable

from daemon import log as logs
from daemon.backends import remote
from daemon.backends.local.restarts import Restarts
from daemon.backends.local.worker import PoolOptions, Worker
from daemon.errors import PoolStartError

log = logs.get()


class Startup:
    def __init__(self, opts: PoolOptions) -> None:
        self.opts = opts
        self.restarts = Restarts(opts.max_failed_starts, opts.start_backoff)
        self.starting = True            # not every worker has been warm yet
        self.opened_at = 0.0
        self.started: Future = Future()  # None once every worker is warm, or PoolStartError
        self.cause: BaseException | None = None  # the initializer's exception, rebuilt

    def open(self) -> None:
        self.opened_at = time.monotonic()

    def check(self, workers: Iterable[Worker], broken: str | None, settle: list) -> None:
        """Resolve ``started`` once enough ``workers`` are ready, or the pool is ``broken``."""
        if not self.starting or self.started.done():
            return
        if broken:
            settle.append((self.started, None, self.error(broken)))
        elif sum(w.ready for w in workers) >= self.opts.workers:
            self.starting = False
            log.info("pool.started", workers=self.opts.workers, threads_per_worker=self.opts.threads_per_worker,
                     seconds=round(time.monotonic() - self.opened_at, 3))
            settle.append((self.started, None, None))

    def error(self, reason: str) -> PoolStartError:
        exc = PoolStartError(reason)
        exc.__cause__ = self.cause
        return exc

    def failed(self, w: Worker, cause: str, broken: str | None) -> str | None:
        """``w`` never became ready: None when it is started again later (``restarts.due``) or
        the pool is broken already, else why the pool breaks now."""
        if w.init_error:
            detail = remote.summary(w.init_error)
        else:
            detail = w.cause or f"died while loading ({cause})"
        if broken:
            log.debug("pool.worker_start_failed", worker_pid=w.pid, cause=detail)
            return None
        fatal = w.init_error is not None or w.cause is not None  # w.cause: the pool killed it (too slow)
        delay = self.restarts.start_failed(fatal, w.replaces)
        failed = self.restarts.failed
        if delay is not None:
            log.warning("pool.worker_start_failed", worker_pid=w.pid, cause=detail, retry_in=round(delay, 3),
                        failed_starts=failed, max_failed_starts=self.opts.max_failed_starts)
            return None
        log.error("pool.worker_start_failed", worker_pid=w.pid, cause=detail,
                  traceback=(w.init_error or {}).get("traceback"), failed_starts=failed)
        who = f"worker {w.pid}" if self.starting else f"replacement worker {w.pid}"
        if w.init_error:
            self.cause = remote.rebuild(w.init_error)
            if self.cause is not None:
                self.cause.__cause__ = remote.RemoteTraceback(w.init_error["traceback"])
        reason = f"{who} failed to start: {detail}"
        if not fatal:
            reason = f"{failed} worker starts in a row failed; the last: {reason}"
        return reason
