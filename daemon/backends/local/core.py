"""The dispatcher: one thread in the parent that owns every child of the pool.

It waits (``multiprocessing.connection.wait``) on each child's pipe, each
child's process sentinel and a wake-up socket that ``submit``/``close`` poke.
Each child holds at most one task, so when a child dies the pool knows exactly
which task to retry, and the other tasks are not touched.

Only this thread touches the children; other threads touch the queue and the
flags under ``_lock``.  Futures are resolved outside the lock, because their
callbacks may submit more tasks.
"""

from __future__ import annotations

import itertools
import multiprocessing
import socket
import threading
import time
from collections import Counter
from concurrent.futures import Future
from multiprocessing.connection import wait

from daemon import log as logs
from daemon.backends import remote
from daemon.backends.base import (
    Closing,
    Entry,
    PoolBrokenError,
    cancelled,
    check_open,
    check_task,
    exit_cause,
    lost_message,
    next_entry,
    push,
    task_timeout,
)
from daemon.backends.base import settle as _settle
from daemon.backends.local.startup import Startup
from daemon.backends.local.worker import NEVER_READY, PoolOptions, State, Worker
from daemon.backends.queue import FairQueue
from daemon.errors import PoolStartError, TaskError
from daemon.jobs import Task, TaskResult

log = logs.get()

CLOSE_POLL = 0.1


class PoolCore:
    def __init__(self, opts: PoolOptions):
        self.opts = opts
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._queue: FairQueue[Entry] = FairQueue()
        self._workers: dict[int, Worker] = {}
        self._handles: dict = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._worker_ids = itertools.count(1)
        self._task_ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closing = Closing()
        self._startup = Startup(opts)
        self.broken: str | None = None
        self.counts: Counter = Counter()
        # Resolved by the dispatcher, outside the lock: waiters (the daemon's loop) get one event each.
        self.started: Future = self._startup.started  # None once every worker is warm, or PoolStartError
        self.broken_signal: Future = Future()         # the reason, once the pool breaks

    # ---- called by other threads --------------------------------------------------
    def start(self) -> Future:
        """Spawn every child; the Future resolves once all are warm, or fails with PoolStartError."""
        with self._lock:
            if self._thread is not None or self._closing.asked:
                raise RuntimeError("a pool can be started once")
            self._startup.open()
            try:
                for _ in range(self.opts.workers):
                    self._spawn("start")
            except BaseException as exc:
                self._teardown()
                raise PoolStartError(f"cannot start workers: {exc}") from exc
            self._thread = threading.Thread(target=self._loop, name="pool-dispatcher", daemon=True)
            self._thread.start()
        return self.started

    def submit(self, task: Task) -> Future:
        check_task(task)
        eid = next(self._task_ids)
        payload = remote.dumps(("task", eid, task.func, dict(task.kwargs)))  # unpicklable: raises here
        future: Future = Future()
        with self._lock:
            check_open("worker pool", closing=self._closing.asked, broken=self.broken, started=self._thread is not None)
            push(self._queue, Entry(eid, task, future, payload))
        self._wake()
        return future

    def close(self, grace: float = 10.0) -> None:
        with self._lock:
            self._closing.ask(grace)
            thread = self._thread
        self._wake()
        self._closing.wait(thread, self._locked_teardown)

    def stats(self) -> dict:
        with self._lock:
            ws = list(self._workers.values())
            return {
                "workers": self.opts.workers,
                "alive": len(ws),
                "ready": sum(w.ready for w in ws),
                "busy": sum(w.busy for w in ws),
                "starting": sum(w.state is State.STARTING for w in ws),
                "respawns_pending": len(self._startup.restarts.pending),
                "failed_starts": self._startup.restarts.failed,
                "queued": len(self._queue),
                "pids": sorted(w.pid for w in ws if w.ready),
                **{k: self.counts[k] for k in ("tasks_done", "tasks_failed", "retries", "timeouts",
                                               "restarts", "recycled", "models_loaded")},
                "broken": self.broken,
                "closed": self._closing.asked,
            }

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # already awake (buffer full) or closed
            pass

    # ---- the dispatcher thread --------------------------------------------------------
    def _loop(self) -> None:
        crash = None
        try:
            while True:
                with self._lock:
                    if self._closing.asked and not self._workers:
                        break
                    handles = self._refresh_handles()
                    timeout = self._next_timeout()
                ready = wait([self._wake_r, *handles], timeout)
                settle: list = []
                with self._lock:
                    self._drain_wake()
                    self._on_ready(ready, settle)
                    self._check_deadlines(settle)
                    if self._closing.asked:
                        self._advance_close(settle)
                    else:
                        self._respawn_due()
                        self._dispatch()
                    self._startup.check(self._workers.values(), self.broken, settle)
                _settle(settle)
        except BaseException as exc:  # noqa: BLE001 - a bug here must not leave children behind
            crash = exc
            log.exception("pool.dispatcher_failed")
        finally:
            with self._lock:
                self._closing.asked = True
                if crash is not None and not self.broken:
                    self.broken = f"the pool's dispatcher failed: {crash!r}"
                    settle = [(self.broken_signal, self.broken, None)]
                else:
                    settle = []
                settle += self._teardown()
                if self._startup.starting:
                    reason = self.broken or "the pool closed while starting"
                    settle.append((self.started, None, self._startup.error(reason)))
            _settle(settle)
            figures = {k: self.counts[k] for k in ("tasks_done", "tasks_failed", "restarts", "recycled")}
            log.info("pool.closed", **figures, seconds=round(time.monotonic() - self._startup.opened_at, 3))
            self._closing.ended.set()

    def _refresh_handles(self) -> list:
        self._handles = {}
        for w in self._workers.values():
            self._handles[w.conn] = w
            self._handles[w.proc.sentinel] = w
        return list(self._handles)

    def _next_timeout(self) -> float | None:
        now = time.monotonic()
        times = []
        for w in self._workers.values():
            if w.busy and w.deadline is not None:
                times.append(w.deadline)
            elif w.state in NEVER_READY:
                times.append(w.started + self.opts.start_timeout)
        if (due := self._startup.restarts.next_due()) is not None and not self._closing.asked:
            times.append(due)
        if self._closing.asked:
            deadline = self._closing.deadline
            times.append(deadline if now < deadline else now + CLOSE_POLL)
        return max(0.0, min(times) - now) if times else None

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:  # BlockingIOError: nothing left
            pass

    def _on_ready(self, ready: list, settle: list) -> None:
        # Messages before deaths: a child may send its last result and exit at once.
        exited = []
        for obj in ready:
            w = self._handles.get(obj)
            if w is None:
                continue
            if obj is w.conn:
                if w.id in self._workers and not self._read(w, settle):
                    self._reap(w, settle)
            else:
                exited.append(w)
        for w in exited:
            if w.id in self._workers:
                self._reap(w, settle)

    def _read(self, w: Worker, settle: list) -> bool:
        """Handle every message waiting on ``w``'s pipe; False when the pipe is closed."""
        while True:
            try:
                if not w.conn.poll():
                    return True
                data = w.conn.recv_bytes()
            except (EOFError, OSError):
                return False
            try:
                message = remote.loads(data)
            except Exception as exc:  # noqa: BLE001 - only a task's value can fail to load
                self._finish_task(w, None, settle, error=self._unloadable_result(w, exc))
                continue
            self._on_message(w, message, settle)

    def _on_message(self, w: Worker, message: tuple, settle: list) -> None:
        kind = message[0]
        if kind == "ready":
            _, pid, seconds, torch_threads = message
            w.became_ready()
            self.counts["models_loaded"] += 1
            self._startup.restarts.ready()
            # seconds: from spawn to ready (interpreter, imports, models); init_seconds: in the child
            log.info("pool.worker_ready", worker_pid=pid, worker=w.id,
                     seconds=round(time.monotonic() - w.started, 3), init_seconds=round(seconds, 3),
                     torch_threads=torch_threads)
            old = self._workers.get(w.replaces) if w.replaces else None
            if old is not None:
                old.retire()
            if self._closing.asked and w.state is State.IDLE:
                w.stop()
        elif kind == "init_error":
            w.init_failed(message[1])
        elif kind in ("done", "error"):
            if w.entry is None or w.entry.id != message[1]:
                log.warning("pool.unexpected_message", worker_pid=w.pid, kind=kind)
                return
            if kind == "done":
                result = TaskResult(message[2], w.pid, w.entry.attempts, message[3])
                self._finish_task(w, result, settle)
            else:
                self._finish_task(w, None, settle, error=remote.caller_exception(message[2], w.entry.attempts))

    def _unloadable_result(self, w: Worker, exc: Exception) -> TaskError:
        func = w.entry.task.func if w.entry else "?"
        return TaskError(f"the result of {func} {exc}; tasks must return plain values (paths, numbers, text)",
                         kind="exception", attempts=w.entry.attempts if w.entry else 1, retryable=False)

    def _finish_task(self, w: Worker, result: TaskResult | None, settle: list, error=None) -> None:
        entry = w.task_done()
        if entry is not None:
            self.counts["tasks_done" if error is None else "tasks_failed"] += 1
            settle.append((entry.future, result, error))
        limit = self.opts.max_tasks_per_worker
        if w.state is not State.IDLE:  # retired, or being stopped or killed
            return
        if self._closing.asked:
            w.stop()
        elif limit and w.tasks_done >= limit and w.replacement is None and not self.broken:
            # Warm the replacement first; this one keeps serving until it is ready.
            w.replacement = self._spawn("recycle", replaces=w.id).id

    def _reap(self, w: Worker, settle: list) -> None:
        """``w``'s process ended (or its pipe broke): account for it and replace it if needed."""
        self._read(w, settle)  # its last words: a result, or why its initializer failed
        exitcode = w.finish()
        del self._workers[w.id]
        cause = w.cause or exit_cause(exitcode)
        entry, task_info = w.entry, w.describe_task()
        w.entry = None
        if self._closing.asked:
            if entry is not None:
                settle.append((entry.future, None, TaskError(
                    "the worker pool closed before the task finished", kind="shutdown",
                    attempts=entry.attempts)))
            return
        if w.state in NEVER_READY:
            if (reason := self._startup.failed(w, cause, self.broken)) is not None:
                self._break(reason, settle)
            return
        if w.state in (State.STOPPING, State.RETIRED) and entry is None:
            if w.state is State.RETIRED:
                self.counts["recycled"] += 1
                log.info("pool.worker_recycled", worker_pid=w.pid, tasks=w.tasks_done,
                         new_pid=getattr(self._workers.get(w.replacement), "pid", None))
            return
        log.warning("pool.worker_died", worker_pid=w.pid, exitcode=exitcode, cause=cause, **task_info)
        if entry is not None:
            self._retry_or_fail(entry, cause, w.loss_kind, settle)
        if w.replacement is None and not self.broken:
            self.counts["restarts"] += 1
            self._spawn("replace")

    def _respawn_due(self) -> None:
        """Start again the workers whose backoff after a failed start has passed."""
        if self.broken:
            return
        for replaces in self._startup.restarts.due():
            self.counts["restarts"] += 1
            old = self._workers.get(replaces) if replaces is not None else None
            w = self._spawn("restart", replaces=replaces if old is not None else None)
            if old is not None:
                old.replacement = w.id

    def _break(self, reason: str, settle: list) -> None:
        self.broken = reason
        log.error("pool.broken", reason=reason)
        settle.append((self.broken_signal, reason, None))
        for entry in self._queue.drain():
            settle.append((entry.future, None, PoolBrokenError(reason)))

    def _retry_or_fail(self, entry: Entry, cause: str, kind: str, settle: list) -> None:
        entry.causes.append((kind, cause))
        if entry.attempts >= self.opts.max_attempts:
            settle.append((entry.future, None, TaskError(
                lost_message(entry.attempts, entry.causes), kind=kind, attempts=entry.attempts)))
        elif self.broken:
            settle.append((entry.future, None, PoolBrokenError(self.broken)))
        else:
            self.counts["retries"] += 1
            log.warning("pool.task_retry", task=entry.task.func, group=entry.task.group,
                        attempt=entry.attempts + 1, max_attempts=self.opts.max_attempts, cause=cause)
            self._queue.push_front(entry, entry.task.group)

    def _check_deadlines(self, settle: list) -> None:
        now = time.monotonic()
        for w in list(self._workers.values()):
            if w.busy and w.deadline is not None and now >= w.deadline:
                self.counts["timeouts"] += 1
                log.warning("pool.task_timeout", worker_pid=w.pid, timeout=w.timeout, **w.describe_task())
                w.kill(f"timed out after {w.timeout:g} s")
                self._reap(w, settle)
            elif w.state in NEVER_READY and now >= w.started + self.opts.start_timeout:
                w.kill(f"did not become ready within {self.opts.start_timeout:g} s")
                self._reap(w, settle)

    def _dispatch(self) -> None:
        if self.broken:
            return
        for w in list(self._workers.values()):
            if w.state is not State.IDLE:
                continue
            entry = self._next_entry()
            if entry is None:
                return
            entry.attempts += 1
            w.assign(entry, self._timeout_for(entry.task))

    def _next_entry(self) -> Entry | None:
        return next_entry(self._queue)

    def _timeout_for(self, task: Task) -> float | None:
        return task_timeout(task, self.opts.default_timeout)

    def _advance_close(self, settle: list) -> None:
        now = time.monotonic()
        if self._closing.begin():
            for entry in self._queue.drain():
                settle.append(cancelled(entry))
            for w in self._workers.values():
                if w.state is State.IDLE:
                    w.stop()
                elif w.state in NEVER_READY:  # no use waiting for models nobody will use
                    w.terminate(now)
        if now < self._closing.deadline:
            return
        for w in self._workers.values():
            if w.state is State.TERMINATED:
                w.escalate(now)
            else:
                w.terminate(now)

    def _locked_teardown(self) -> list:
        with self._lock:
            return self._teardown()

    def _teardown(self) -> list:
        """Last resort and final step: no child, queued task or socket survives this."""
        settle = [cancelled(entry) for entry in self._queue.drain()]
        for w in list(self._workers.values()):
            if w.proc.exitcode is None:
                w.proc.kill()
            w.finish()
            if w.entry is not None:
                settle.append((w.entry.future, None, TaskError(
                    "the worker pool closed before the task finished", kind="shutdown",
                    attempts=w.entry.attempts)))
        self._workers.clear()
        self._handles = {}
        self._wake_r.close()
        self._wake_w.close()
        return settle

    def _spawn(self, reason: str, replaces: int | None = None) -> Worker:
        w = Worker.spawn(self._ctx, next(self._worker_ids), self.opts, replaces)
        self._workers[w.id] = w
        log.info("pool.worker_started", worker_pid=w.pid, worker=w.id, reason=reason,
                 replaces=getattr(self._workers.get(replaces), "pid", None))
        return w
