"""A worker's states: only its own methods move them, and a move its state does not allow raises.

Each test drives one real ``spawn`` child (no initializer, so it is ready in about a
second) by hand, the way the dispatcher does: read its messages, call the transition.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import Future

import pytest

from daemon.backends import remote
from daemon.backends.base import Entry as _Entry
from daemon.backends.local.worker import PoolOptions, State, Worker, WorkerStateError
from daemon.jobs import Task

CTX = multiprocessing.get_context("spawn")


def receive(w: Worker, timeout: float = 60.0) -> tuple:
    assert w.conn.poll(timeout), f"no message from worker {w.pid} within {timeout} s"
    return remote.loads(w.conn.recv_bytes())


def entry(func: str = "os:getpid", eid: int = 1) -> _Entry:
    return _Entry(eid, Task(func), Future(), remote.dumps(("task", eid, func, {})))


@pytest.fixture
def worker():
    w = Worker.spawn(CTX, 1, PoolOptions())
    try:
        yield w
    finally:
        if w.proc.exitcode is None:
            w.proc.kill()
        w.finish()


def ready(w: Worker) -> Worker:
    assert receive(w)[0] == "ready"
    w.became_ready()
    return w


def test_a_task_moves_it_idle_busy_idle_and_stop_ends_it(worker):
    assert worker.state is State.STARTING and not worker.ready
    with pytest.raises(WorkerStateError, match="cannot take a task while starting"):
        worker.assign(entry(), None)
    ready(worker)
    assert worker.state is State.IDLE and worker.ready and not worker.busy
    with pytest.raises(WorkerStateError, match="cannot become ready while idle"):
        worker.became_ready()
    with pytest.raises(WorkerStateError, match="cannot finish a task while idle"):
        worker.task_done()

    e = entry()
    worker.assign(e, 30.0)
    assert worker.state is State.BUSY and worker.busy and worker.entry is e and worker.deadline is not None
    for wrong in (lambda: worker.assign(entry(eid=2), None), worker.stop, worker.became_ready):
        with pytest.raises(WorkerStateError):
            wrong()
    kind, eid, value, _seconds = receive(worker)
    assert (kind, eid, value) == ("done", 1, worker.pid)
    assert worker.task_done() is e
    assert worker.state is State.IDLE and worker.entry is None and worker.deadline is None
    assert worker.tasks_done == 1

    worker.stop()
    assert worker.state is State.STOPPING and not worker.ready
    with pytest.raises(WorkerStateError, match="cannot take a task while stopping"):
        worker.assign(entry(), None)
    assert worker.finish() == 0  # it read the stop and left


def test_retiring_waits_for_the_task_then_stops(worker):
    ready(worker)
    worker.assign(entry("time:sleep"), None)  # no argument: the task fails, the worker stays
    worker.retire()
    assert worker.state is State.RETIRING and worker.busy
    assert receive(worker)[0] == "error"
    worker.task_done()
    assert worker.state is State.RETIRED  # told to stop: it exits on its own
    with pytest.raises(WorkerStateError, match="cannot take a task while retired"):
        worker.assign(entry(), None)
    assert worker.finish() == 0


def test_an_idle_worker_retires_at_once(worker):
    ready(worker)
    worker.retire()
    assert worker.state is State.RETIRED
    assert worker.finish() == 0


def test_killed_on_its_deadline_loses_the_attempt_as_a_timeout(worker):
    ready(worker)
    with pytest.raises(WorkerStateError, match="cannot be killed while idle"):
        worker.kill("timed out")
    worker.assign(entry("helpers.pool_tasks:hang"), 0.1)
    worker.kill("timed out after 0.1 s")
    assert worker.state is State.KILLED and worker.cause == "timed out after 0.1 s"
    assert worker.loss_kind == "timeout"
    assert worker.finish() == -signal.SIGKILL


def test_too_slow_to_start_is_a_failed_start(worker):
    worker.kill("did not become ready within 1 s")
    assert worker.state is State.FAILED and not worker.ready and worker.loss_kind == "crash"
    worker.became_ready()  # a "ready" sent just before the kill does not revive it
    assert worker.state is State.FAILED
    with pytest.raises(WorkerStateError, match="cannot take a task while failed"):
        worker.assign(entry(), None)


def test_terminated_while_loading_ignores_a_late_ready(worker):
    worker.terminate(now=100.0)
    assert worker.state is State.TERMINATED and worker.terminated_at == 100.0
    worker.became_ready()  # its "ready" may already be in the pipe
    assert worker.state is State.TERMINATED
    with pytest.raises(WorkerStateError, match="cannot be terminated while terminated"):
        worker.terminate(now=101.0)
    worker.escalate(now=101.0)  # too early for SIGKILL
    assert worker.finish() == -signal.SIGTERM
