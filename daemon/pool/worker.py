"""One child process as the parent sees it: process, pipe end, state and the task it holds."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from daemon.pool import child
from daemon.pool.remote import dumps

STARTING = "starting"   # loading its models
IDLE = "idle"           # ready, holds no task
BUSY = "busy"           # running exactly one task
STOPPING = "stopping"   # told to stop; waiting for it to exit

STOP = dumps(("stop",))


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


class Worker:
    def __init__(self, wid: int, proc, conn, replaces: int | None) -> None:
        self.id, self.proc, self.conn, self.pid = wid, proc, conn, proc.pid
        self.replaces = replaces            # id of the worker this one recycles
        self.replacement: int | None = None  # id of the worker started to recycle this one
        self.state = STARTING
        self.started = time.monotonic()
        self.entry = None                   # the task it runs (pool-side record)
        self.timeout: float | None = None
        self.deadline: float | None = None
        self.tasks_done = 0
        self.retiring = False               # stop once idle: its replacement is ready
        self.init_error: dict | None = None
        self.kill_cause: str | None = None  # set when the pool killed it (deadline)
        self.kill_kind = "crash"
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

    @property
    def ready(self) -> bool:
        return self.state in (IDLE, BUSY)

    def send(self, data: bytes) -> bool:
        try:
            self.conn.send_bytes(data)
        except OSError:  # it died; its sentinel will tell
            return False
        return True

    def stop(self) -> None:
        self.send(STOP)
        self.state = STOPPING

    def kill(self, cause: str, kind: str = "crash") -> None:
        self.kill_cause, self.kill_kind = cause, kind
        self.proc.kill()
        self.proc.join(5)

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


def exit_cause(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"
