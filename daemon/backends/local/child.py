"""The worker child: set up once (logging, models, threads), then run tasks until told to stop.

Runs only inside a ``spawn`` child.  Messages on the pipe (pickled tuples):

    parent -> child   ("task", task_id, "module:function", kwargs)   ("stop",)
    child -> parent   ("ready", pid, load_seconds, torch_threads)
                      ("init_error", exception_description)
                      ("done", task_id, value, compute_seconds)
                      ("error", task_id, exception_description, compute_seconds)
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time

from daemon.backends.remote import describe_exception, dumps
from daemon.backends.warmup import start_up
from daemon.jobs import resolve

EXIT_INIT_FAILED = 78   # EX_CONFIG: the models could not be loaded
EXIT_ORPHANED = 70


def main(conn, initializer: str | None, init_args: tuple, init_kwargs: dict,
         threads: int, log_config: dict | None) -> None:
    # Ctrl-C on a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()  # a segfault in a native library prints where Python was first
    _exit_when_orphaned(os.getppid())
    started = time.perf_counter()
    from daemon import log

    log.configure(**(log_config or {}), process="worker")
    try:
        torch_threads = start_up(initializer, init_args, init_kwargs, threads)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which refuses to start
        _send(conn, ("init_error", describe_exception(exc)))
        conn.close()
        sys.exit(EXIT_INIT_FAILED)
    _send(conn, ("ready", os.getpid(), time.perf_counter() - started, torch_threads))
    _serve(conn)
    conn.close()


def _serve(conn) -> None:
    functions: dict = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message[0] == "stop":
            return
        _, task_id, func, kwargs = message
        if not _send(conn, _run(functions, task_id, func, kwargs)):
            return


def _run(functions: dict, task_id: int, func: str, kwargs: dict) -> tuple:
    started = time.perf_counter()
    try:
        fn = functions.get(func)
        if fn is None:
            fn = functions[func] = resolve(func)
        value = fn(**kwargs)
    except BaseException as exc:  # noqa: BLE001 - an exception fails the task, not the worker
        return ("error", task_id, describe_exception(exc), time.perf_counter() - started)
    return ("done", task_id, value, time.perf_counter() - started)


def _send(conn, message: tuple) -> bool:
    try:
        data = dumps(message)
    except Exception as exc:  # noqa: BLE001 - a result that cannot cross the pipe fails its task
        problem = TypeError(f"the result of the task cannot be pickled: {exc}")
        data = dumps(("error", message[1], describe_exception(problem), message[3]))
    try:
        conn.send_bytes(data)
    except OSError:  # the parent is gone
        return False
    return True


def _exit_when_orphaned(parent_pid: int) -> None:
    """Leave when the parent dies, even in the middle of a long task (an idle child
    notices by the closed pipe; a busy one would otherwise run on as an orphan)."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="orphan-guard", daemon=True).start()
