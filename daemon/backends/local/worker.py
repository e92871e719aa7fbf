"""One child process as the parent sees it: process, pipe end, state and the task it holds.

A worker's life is one ``State``; only the methods below change it, each allowing
the moves listed in its ``_move`` call and raising ``WorkerStateError`` on any
other (a dispatcher bug, not a child's fault)::

    STARTING ─became_ready─▶ IDLE ─assign─▶ BUSY ─task_done─▶ IDLE
    STARTING ─init_failed / kill─▶ FAILED         BUSY, RETIRING ─kill─▶ KILLED (missed its deadline)
    IDLE ─retire─▶ RETIRED       BUSY ─retire─▶ RETIRING ─task_done─▶ RETIRED
    IDLE ─stop─▶ STOPPING        any live state ─terminate─▶ TERMINATED (the pool closes)

Messages already in the pipe when the pool killed or terminated a worker (a late
"ready", a last result) are taken without changing its state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable

from daemon.backends.local import child
from daemon.backends.remote import dumps

STOP = dumps(("stop",))
KILL_AFTER_TERMINATE = 2.0  # seconds between SIGTERM and SIGKILL at close


class State(StrEnum):
    STARTING = "starting"      # loading its models
    IDLE = "idle"              # ready, holds no task
    BUSY = "busy"              # running exactly one task
    RETIRING = "retiring"      # running its last task: its replacement is ready
    RETIRED = "retired"        # told to stop because its replacement is ready; waiting for it to exit
    STOPPING = "stopping"      # told to stop (the pool closes); waiting for it to exit
    TERMINATED = "terminated"  # sent SIGTERM (the pool closes); SIGKILL follows
    KILLED = "killed"          # killed by the pool: it missed its task's deadline
    FAILED = "failed"          # could not start: its initializer failed or it was too slow


READY = frozenset({State.IDLE, State.BUSY, State.RETIRING})
BUSY = frozenset({State.BUSY, State.RETIRING})
NEVER_READY = frozenset({State.STARTING, State.FAILED})


class WorkerStateError(RuntimeError):
    """A move the worker's state does not allow."""


@dataclass(frozen=True)
class PoolOptions:
    workers: int = 1
    initializer: str | None = None
    init_args: tuple = ()
    init_kwargs: dict = field(default_factory=dict)
    threads_per_worker: int = 0
    log_config: dict | None = None
    max_attempts: int = 3
    #: seconds, None (no deadline), or a function Task -> seconds or None
    default_timeout: float | Callable[[Any], float | None] | None = None
    max_tasks_per_worker: int = 0
    start_timeout: float = 180.0
    #: A worker that dies while loading is started again after ``start_backoff`` seconds, doubling;
    #: the pool breaks after ``max_failed_starts`` failed starts in a row (``restarts.py``).
    max_failed_starts: int = 5
    start_backoff: float = 1.0


class Worker:
    def __init__(self, wid: int, proc, conn, replaces: int | None) -> None:
        self.id, self.proc, self.conn, self.pid = wid, proc, conn, proc.pid
        self.replaces = replaces            # id of the worker this one recycles
        self.replacement: int | None = None  # id of the worker started to recycle this one
        self.state = State.STARTING
        self.started = time.monotonic()
        self.entry = None                   # the task it runs (pool-side record)
        self.timeout: float | None = None
        self.deadline: float | None = None
        self.tasks_done = 0
        self.init_error: dict | None = None  # why its initializer failed (from the child)
        self.cause: str | None = None        # why the pool killed it
        self.terminated_at: float | None = None

    @classmethod
    def spawn(cls, ctx, wid: int, opts: PoolOptions, replaces: int | None = None) -> "Worker":
        parent_end, child_end = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=child.main,
            name=f"voice-daemon-worker-{wid}",
            args=(child_end, opts.initializer, tuple(opts.init_args), dict(opts.init_kwargs),
                  opts.threads_per_worker, opts.log_config),
            # A safety net only: multiprocessing terminates daemonic children at interpreter
            # exit if close() never ran.  Workers may still run subprocesses (ffmpeg).
            daemon=True,
        )
        try:
            proc.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        return cls(wid, proc, parent_end, replaces)

    # ---- what the pool asks ------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state in READY

    @property
    def busy(self) -> bool:
        return self.state in BUSY

    @property
    def loss_kind(self) -> str:
        """How the attempt it held was lost: "timeout" when the pool killed it, else "crash"."""
        return "timeout" if self.state is State.KILLED else "crash"

    # ---- transitions -------------------------------------------------------------
    def _move(self, allowed: dict[State, State], action: str) -> State:
        """Go to ``allowed[state]``; returns the state it left."""
        old = self.state
        if old not in allowed:
            raise WorkerStateError(f"worker {self.id} cannot {action} while {old}")
        self.state = allowed[old]
        return old

    def became_ready(self) -> None:
        """Its models are loaded.  One killed or terminated while loading may still say so:
        its message was in the pipe before the signal."""
        self._move({State.STARTING: State.IDLE, State.FAILED: State.FAILED,
                    State.TERMINATED: State.TERMINATED}, "become ready")

    def init_failed(self, desc: dict) -> None:
        self._move({State.STARTING: State.FAILED, State.FAILED: State.FAILED,
                    State.TERMINATED: State.TERMINATED}, "fail to start")
        self.init_error = desc

    def assign(self, entry, timeout: float | None) -> None:
        """Give it ``entry``; a dead child's sentinel reports it and the task is retried."""
        self._move({State.IDLE: State.BUSY}, "take a task")
        self.entry, self.timeout = entry, timeout
        self.deadline = time.monotonic() + timeout if timeout else None
        self.send(entry.payload)

    def task_done(self):
        """Its task ended (a result, an error, or a result that cannot be read): the entry.

        A worker the pool is stopping or has killed may still deliver its last result."""
        old = self._move({State.BUSY: State.IDLE, State.RETIRING: State.RETIRED,
                          State.TERMINATED: State.TERMINATED, State.KILLED: State.KILLED}, "finish a task")
        entry, self.entry, self.deadline = self.entry, None, None
        self.tasks_done += 1
        if old is State.RETIRING:
            self.send(STOP)
        return entry

    def retire(self) -> None:
        """Its replacement is ready: stop now if idle, after its task if busy.  A worker that
        the closing pool already stops stays as it is."""
        old = self._move({State.IDLE: State.RETIRED, State.BUSY: State.RETIRING,
                          State.STOPPING: State.STOPPING, State.TERMINATED: State.TERMINATED}, "retire")
        if old is State.IDLE:
            self.send(STOP)

    def stop(self) -> None:
        """Ask an idle worker to exit (the pool closes)."""
        self._move({State.IDLE: State.STOPPING}, "stop")
        self.send(STOP)

    def kill(self, cause: str) -> None:
        """Kill it now: a task past its deadline (KILLED), or models not loaded in time (FAILED)."""
        self._move({State.BUSY: State.KILLED, State.RETIRING: State.KILLED,
                    State.STARTING: State.FAILED, State.FAILED: State.FAILED}, "be killed")
        self.cause = cause
        self.proc.kill()
        self.proc.join(5)

    def terminate(self, now: float) -> None:
        """SIGTERM (the pool closes); ``escalate`` sends SIGKILL once it lingers."""
        live = (State.STARTING, State.IDLE, State.BUSY, State.RETIRING, State.RETIRED, State.STOPPING, State.FAILED)
        self._move(dict.fromkeys(live, State.TERMINATED), "be terminated")
        self.terminated_at = now
        self.proc.terminate()

    def escalate(self, now: float) -> None:
        if self.state is State.TERMINATED and now >= self.terminated_at + KILL_AFTER_TERMINATE:
            self.proc.kill()

    # ---- the process ---------------------------------------------------------------
    def send(self, data: bytes) -> bool:
        try:
            self.conn.send_bytes(data)
        except OSError:  # it died; its sentinel will tell
            return False
        return True

    def finish(self) -> int | None:
        """Wait for the process to end (killing it if it lingers) and release the pipe."""
        self.proc.join(5)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()
        return self.proc.exitcode

    def describe_task(self) -> dict:
        if self.entry is None:
            return {}
        return {"task": self.entry.task.func, "group": self.entry.task.group, "attempt": self.entry.attempts}
