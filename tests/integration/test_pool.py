"""The worker pool with real spawn children: results, fairness, the crash matrix, recycling, close.

The tasks are tiny functions in tests/helpers/pool_tasks.py (a test engine: the
pool knows nothing about audio, so real audio would only slow these tests).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from concurrent.futures import as_completed
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.backends.local import AudioScaledTimeout, PoolBrokenError, Task, WorkerPool
from daemon.errors import InputError, PoolClosedError, PoolStartError, TaskError
from helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
T = "helpers.pool_tasks:"


def task(name: str, group: str = "", timeout=None, audio_seconds=0.0, **kwargs) -> Task:
    return Task(func=T + name, kwargs=kwargs, group=group, timeout=timeout, audio_seconds=audio_seconds)


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@pytest.fixture
def make_pool():
    pools = []

    def make(workers=2, **options):
        options.setdefault("initializer", T + "init_record")
        pool = WorkerPool(workers, **options)
        pools.append(pool)
        return pool.start()

    yield make
    for pool in pools:
        pool.close(grace=5)


# ---- normal work ----------------------------------------------------------------------------
def test_many_tasks_all_results_in_submission_order(make_pool):
    pool = make_pool(2)
    start_pids = set(pool.stats()["pids"])
    futures = [pool.submit(task("square", group=f"file-{i % 3}", x=i)) for i in range(30)]
    results = [f.result(timeout=60) for f in futures]

    assert [r.value["y"] for r in results] == [i * i for i in range(30)]
    assert all(r.attempts == 1 and r.worker_pid in start_pids for r in results)
    assert all(r.compute_seconds >= 0 for r in results)
    assert pool.submit(task("whoami")).result(timeout=30).value["initialized"] == "warm"
    stats = pool.stats()
    assert (stats["tasks_done"], stats["models_loaded"], stats["restarts"]) == (31, 2, 0)


def test_round_robin_between_groups_short_file_is_not_starved(make_pool, tmp_path):
    pool = make_pool(1)
    gate = tmp_path / "gate"
    futures = [pool.submit(task("wait_for_file", group="long", path=str(gate), tag="long-0"))]
    futures += [pool.submit(task("whoami", group="long", tag=f"long-{i}")) for i in range(1, 10)]
    futures.append(pool.submit(task("whoami", group="short", tag="short")))
    finished = []
    for f in futures:  # all before the gate opens: callbacks then run in completion order
        f.add_done_callback(lambda f: finished.append(f.result().value["tag"]))
    gate.touch()
    wait_until(lambda: len(finished) == 11, timeout=60)

    assert finished.index("short") <= 2, finished
    assert [t for t in finished if t != "short"] == [f"long-{i}" for i in range(10)]


# ---- the crash matrix -----------------------------------------------------------------------
def test_exception_fails_only_its_task_and_the_worker_stays(make_pool):
    pool = make_pool(1)
    pid = pool.stats()["pids"][0]
    with pytest.raises(TaskError) as info:
        pool.submit(task("fail", message="bad value")).result(timeout=30)
    err = info.value
    assert (err.kind, err.attempts, err.retryable) == ("exception", 1, True)
    assert str(err) == "ValueError: bad value"
    assert isinstance(err.__cause__, ValueError) and "pool_tasks.py" in str(err.__cause__.__cause__)

    assert pool.submit(task("whoami")).result(timeout=30).worker_pid == pid
    stats = pool.stats()
    assert (stats["restarts"], stats["tasks_failed"], stats["tasks_done"]) == (0, 1, 1)


def test_input_error_reaches_the_caller_with_its_type_and_fields(make_pool):
    pool = make_pool(1)
    with pytest.raises(InputError) as info:
        pool.submit(task("input_error", path="/in/x.wav", cause="not audio")).result(timeout=30)
    err = info.value
    assert (err.path, err.cause, err.stage, err.retryable) == ("/in/x.wav", "not audio", "engine", False)
    assert str(err) == "/in/x.wav: not audio" and err.exit_code == 65


@pytest.mark.parametrize("crash, cause", [
    ("exit_now", "exit code 3"),
    ("kill_self", "signal SIGKILL"),
    ("segfault", "signal SIGSEGV"),
])
def test_worker_death_is_retried_then_fails_clearly_others_untouched(make_pool, crash, cause):
    pool = make_pool(2, max_attempts=3)
    start_pids = set(pool.stats()["pids"])
    with capture_logs() as events:
        doomed = pool.submit(task(crash, group="bad"))
        others = [pool.submit(task("square", group="good", x=i)) for i in range(6)]
        with pytest.raises(TaskError) as info:
            doomed.result(timeout=60)
        results = [f.result(timeout=60) for f in others]

    assert (info.value.kind, info.value.attempts) == ("crash", 3)
    assert str(info.value) == f"worker died ({cause}) on every one of 3 attempts"
    assert [r.value["y"] for r in results] == [i * i for i in range(6)]
    assert all(r.attempts == 1 for r in results)
    # The pool keeps its size with fresh warm children.
    wait_until(lambda: pool.stats()["ready"] == 2, timeout=60)
    stats = pool.stats()
    assert stats["restarts"] == 3 and stats["retries"] == 2 and stats["alive"] == 2
    died = [e for e in events if e["event"] == "pool.worker_died"]
    assert len(died) == 3 and all(e["cause"] == cause and e["task"] == T + crash for e in died)
    assert {e["worker_pid"] for e in died}.isdisjoint(stats["pids"])
    assert died[0]["worker_pid"] in start_pids
    assert [e["attempt"] for e in events if e["event"] == "pool.task_retry"] == [2, 3]
    assert sum(e["event"] == "pool.worker_started" for e in events) == 3


def test_a_task_that_crashes_twice_succeeds_on_its_third_attempt(make_pool, tmp_path):
    pool = make_pool(2, max_attempts=3)
    result = pool.submit(task("crash_until", counter=str(tmp_path / "calls"), crashes=2)).result(timeout=60)
    assert result.attempts == 3 and result.value["calls"] == 3
    assert pool.stats()["retries"] == 2


def test_single_attempt_failure_says_so(make_pool):
    pool = make_pool(1, max_attempts=1)
    with pytest.raises(TaskError, match=r"^worker died \(exit code 3\) on its only attempt$"):
        pool.submit(task("exit_now")).result(timeout=30)


@pytest.mark.parametrize("task_timeout, default, audio", [
    (1.0, None, 0.0),                                  # the task's own deadline
    (None, AudioScaledTimeout(0.5, 0.25), 2.0),        # the pool's, scaled by audio length: 1 s
])
def test_task_past_its_deadline_has_its_worker_killed_and_replaced(make_pool, task_timeout, default, audio):
    pool = make_pool(1, max_attempts=2, default_timeout=default)
    first = pool.stats()["pids"][0]
    with capture_logs() as events:
        with pytest.raises(TaskError) as info:
            pool.submit(task("hang", timeout=task_timeout, audio_seconds=audio)).result(timeout=60)
    assert (info.value.kind, info.value.attempts) == ("timeout", 2)
    assert str(info.value) == "task timed out after 1 s on every one of 2 attempts"
    assert sum(e["event"] == "pool.task_timeout" for e in events) == 2
    after = pool.submit(task("whoami")).result(timeout=60)
    assert after.worker_pid != first and not alive(first)
    assert pool.stats()["timeouts"] == 2


def test_idle_worker_killed_from_outside_is_replaced(make_pool):
    pool = make_pool(2)
    victim = pool.stats()["pids"][0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: pool.stats()["ready"] == 2 and victim not in pool.stats()["pids"], timeout=60)
    assert pool.stats()["restarts"] == 1
    assert all(f.result(timeout=30).attempts == 1 for f in [pool.submit(task("square", x=i)) for i in range(4)])


def test_results_that_cannot_be_pickled_fail_their_task_only(make_pool):
    pool = make_pool(1)
    pid = pool.stats()["pids"][0]
    with pytest.raises(TaskError, match="cannot be pickled"):
        pool.submit(task("unpicklable_result")).result(timeout=30)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pool.submit(task("square", x=lambda: 1))
    assert pool.submit(task("whoami")).result(timeout=30).worker_pid == pid


# ---- failing initializers -------------------------------------------------------------------
@pytest.mark.parametrize("initializer, args, cause", [
    ("init_fail", ("/nope/model.pt",), "FileNotFoundError: model file /nope/model.pt not found"),
    ("init_crash", (), "died while loading (signal SIGSEGV)"),
])
def test_initializer_failure_at_start_refuses_to_start_once(initializer, args, cause):
    # A death while loading breaks the pool only after max_failed_starts in a row: one here.
    pool = WorkerPool(2, initializer=T + initializer, init_args=args, max_failed_starts=1)
    with capture_logs() as events:
        with pytest.raises(PoolStartError) as info:
            pool.start()
    assert str(info.value).endswith("failed to start: " + cause)
    if initializer == "init_fail":  # the child's exception, rebuilt, with its traceback
        assert isinstance(info.value.__cause__, FileNotFoundError)
        assert "init_fail" in str(info.value.__cause__.__cause__)
    assert pool.broken and cause in pool.broken
    failures = [e for e in events if e["event"] == "pool.worker_start_failed" and e["log_level"] == "error"]
    assert len(failures) == 1
    assert sum(e["event"] == "pool.worker_started" for e in events) == 2  # no restart loop
    with pytest.raises(RuntimeError):
        pool.submit(task("whoami"))
    pool.close()


def test_a_crashing_loader_is_tried_again_then_breaks_the_pool():
    """A segfault while loading is a death, not the loader's error: tried again with backoff,
    broken after max_failed_starts starts in a row."""
    pool = WorkerPool(2, initializer=T + "init_crash", max_failed_starts=3, start_backoff=0.05)
    with capture_logs() as events:
        with pytest.raises(PoolStartError) as info:
            pool.start()
    assert str(info.value).endswith("failed to start: died while loading (signal SIGSEGV)")
    assert "3 worker starts in a row failed" in str(info.value)
    failures = [e for e in events if e["event"] == "pool.worker_start_failed"]
    assert [e["log_level"] for e in failures[:3]] == ["warning", "warning", "error"]
    assert [e["retry_in"] for e in failures[:2]] == [0.05, 0.1]  # doubling
    assert sum(e["event"] == "pool.worker_started" for e in events) == 4  # 2, then one after each warning
    pool.close()


def test_a_replacement_killed_while_loading_is_started_again(make_pool, tmp_path):
    """Issue 11, fault 1: SIGKILL a warm worker, then its replacement while it loads (what the OOM
    killer does under memory pressure): the pool starts another one and the task still runs."""
    slow, gate = tmp_path / "slow", tmp_path / "gate"
    pool = make_pool(1, initializer=T + "init_wait_if_exists", init_args=(str(slow), str(gate)),
                     start_backoff=0.05)
    slow.touch()  # from now on a new child waits for the gate in its initializer

    def started(reason):
        return [e["worker_pid"] for e in events if e["event"] == "pool.worker_started" and e["reason"] == reason]

    with capture_logs() as events:
        future = pool.submit(task("crash_until", counter=str(tmp_path / "calls"), crashes=1))
        (replacement,) = wait_until(lambda: started("replace"), timeout=30)
        wait_until(lambda: pool.stats()["starting"] == 1, timeout=30)
        os.kill(replacement, signal.SIGKILL)
        (again,) = wait_until(lambda: started("restart"), timeout=30)
        assert pool.broken is None and again != replacement
        gate.touch()
        result = future.result(timeout=60)
    assert result.attempts == 2 and result.worker_pid == again
    (failed,) = [e for e in events if e["event"] == "pool.worker_start_failed"]
    assert failed["log_level"] == "warning" and "signal SIGKILL" in failed["cause"] and failed["retry_in"] == 0.05
    stats = pool.stats()
    assert pool.broken is None and stats["failed_starts"] == 0 and stats["restarts"] == 2
    assert pool.submit(task("square", x=3)).result(timeout=30).value["y"] == 9


def test_deaths_while_loading_break_the_pool_after_max_failed_starts(make_pool, tmp_path):
    marker = tmp_path / "oom"
    pool = make_pool(1, initializer=T + "init_killed_if_exists", init_args=(str(marker),),
                     max_failed_starts=3, start_backoff=0.05)
    marker.touch()
    with capture_logs() as events:
        with pytest.raises(PoolBrokenError) as info:
            pool.submit(task("kill_self")).result(timeout=60)
    assert "3 worker starts in a row failed" in str(info.value) and "signal SIGKILL" in str(info.value)
    assert [e["reason"] for e in events if e["event"] == "pool.worker_started"] == ["replace", "restart", "restart"]
    assert pool.stats()["alive"] == 0


def test_replacement_that_cannot_load_breaks_the_pool_without_a_loop(make_pool, tmp_path):
    marker = tmp_path / "models-gone"
    pool = make_pool(1, initializer=T + "init_fail_if_exists", init_args=(str(marker),))
    marker.touch()
    futures = [pool.submit(task("kill_self")), pool.submit(task("square", x=2)), pool.submit(task("square", x=3))]
    for f in futures:
        with pytest.raises(PoolBrokenError, match="cannot load models"):
            f.result(timeout=60)
    assert "replacement worker" in pool.broken and "cannot load models" in pool.broken
    with pytest.raises(PoolBrokenError):
        pool.submit(task("whoami"))
    stats = pool.stats()
    assert (stats["models_loaded"], stats["restarts"], stats["alive"]) == (1, 1, 0)


def test_on_broken_tells_once_with_the_reason_even_a_late_listener(make_pool, tmp_path):
    marker = tmp_path / "models-gone"
    pool = make_pool(1, initializer=T + "init_fail_if_exists", init_args=(str(marker),))
    heard: list[str] = []
    pool.on_broken(heard.append)
    marker.touch()
    with pytest.raises(PoolBrokenError):
        pool.submit(task("kill_self")).result(timeout=60)
    wait_until(lambda: heard, timeout=30)
    late: list[str] = []
    pool.on_broken(late.append)  # broken already: called at once
    assert heard == late == [pool.broken] and "cannot load models" in heard[0]


def test_start_async_resolves_when_warm_and_fails_when_closed_while_loading(tmp_path):
    gate = tmp_path / "gate"
    warm = WorkerPool(1, initializer=T + "init_record")
    started = warm.start_async()
    assert started.result(timeout=60) is None and warm.stats()["ready"] == 1
    warm.close()
    slow = WorkerPool(2, initializer=T + "init_wait_if_exists", init_args=(str(tmp_path), str(gate)))
    started = slow.start_async()  # both children wait in their initializer for a gate never opened
    wait_until(lambda: slow.stats()["starting"] == 2, timeout=30)
    pids = [w.pid for w in slow._core._workers.values()]
    slow.close(0)
    with pytest.raises(PoolStartError, match="closed while starting"):
        started.result(timeout=30)
    assert not any(alive(pid) for pid in pids)


# ---- recycling ------------------------------------------------------------------------------
def test_recycled_after_n_tasks_replacement_warm_first_old_finishes_its_task(make_pool, tmp_path):
    slow_start, ready_gate, task_gate = tmp_path / "slow", tmp_path / "ready", tmp_path / "task"
    pool = make_pool(1, max_tasks_per_worker=1, initializer=T + "init_wait_if_exists",
                     init_args=(str(slow_start), str(ready_gate)))
    old = pool.stats()["pids"][0]
    slow_start.touch()  # from now on a new child waits for ready_gate in its initializer
    assert pool.submit(task("whoami")).result(timeout=30).worker_pid == old
    running = pool.submit(task("wait_for_file", path=str(task_gate)))   # one past its limit
    wait_until(lambda: pool.stats()["busy"] == 1 and pool.stats()["starting"] == 1, timeout=30)

    ready_gate.touch()                              # the replacement becomes warm...
    wait_until(lambda: pool.stats()["models_loaded"] == 2, timeout=60)
    assert alive(old) and pool.stats()["recycled"] == 0   # ...while the old one still works
    task_gate.touch()
    assert running.result(timeout=30).worker_pid == old and running.result().attempts == 1
    wait_until(lambda: pool.stats()["recycled"] == 1, timeout=30)
    wait_until(lambda: not alive(old), timeout=30)

    later = [f.result(timeout=60) for f in [pool.submit(task("square", x=i)) for i in range(5)]]
    assert [r.value["y"] for r in later] == [i * i for i in range(5)]
    assert old not in {r.worker_pid for r in later}
    assert pool.stats()["restarts"] == 0


# ---- shutdown -------------------------------------------------------------------------------
def test_close_cancels_queued_tasks_and_stops_a_running_one_after_grace(make_pool, tmp_path):
    pool = make_pool(1)
    pid = pool.stats()["pids"][0]
    running = pool.submit(task("wait_for_file", path=str(tmp_path / "never")))
    queued = [pool.submit(task("whoami", tag=i)) for i in range(3)]
    wait_until(lambda: pool.stats()["busy"] == 1, timeout=30)
    # A caller blocked in as_completed() (what run_job does) must be woken by the close.
    seen = []
    waiter = threading.Thread(target=lambda: seen.extend(as_completed([running, *queued], timeout=30)))
    waiter.start()
    with capture_logs() as events:
        pool.close(grace=0.5)
    waiter.join(30)
    assert not waiter.is_alive() and len(seen) == 4
    assert all(f.cancelled() for f in queued)
    assert isinstance(running.exception(timeout=5), TaskError) and running.exception().kind == "shutdown"
    assert not alive(pid)
    assert [e["event"] for e in events][-1] == "pool.closed"
    pool.close()  # idempotent
    with pytest.raises(RuntimeError):
        pool.submit(task("whoami"))


def test_close_lets_a_running_task_finish_within_grace(make_pool, tmp_path):
    pool = make_pool(1)
    gate = tmp_path / "gate"
    running = pool.submit(task("wait_for_file", path=str(gate), tag="finished"))
    wait_until(lambda: pool.stats()["busy"] == 1, timeout=30)
    closer = threading.Thread(target=pool.close, kwargs={"grace": 60})
    closer.start()
    wait_until(lambda: pool.stats()["closed"], timeout=60)
    gate.touch()
    closer.join(60)
    assert not closer.is_alive()
    assert running.result(timeout=5).value["tag"] == "finished"


def test_submit_after_close_raises_pool_closed_error():
    pool = WorkerPool(1, initializer=T + "init_record")
    pool.close()
    with pytest.raises(PoolClosedError, match="closed worker pool") as info:
        pool.submit(task("whoami"))
    assert isinstance(info.value, RuntimeError)  # what callers caught before it had a type


def test_context_manager_leaves_no_children():
    with WorkerPool(2, initializer=T + "init_record") as pool:
        pids = pool.stats()["pids"]
        assert pool.submit(task("square", x=7)).result(timeout=30).value["y"] == 49
    assert pids and not any(alive(pid) for pid in pids)
    assert pool.stats()["alive"] == 0


def test_parent_never_imports_torch_and_threads_are_set_after_the_initializer(tmp_path):
    """In a fresh interpreter: the children import torch (and set one thread, like silero);
    the pool then sets threads_per_worker, and the parent never imports torch, not even to
    unpickle a result that holds a tensor."""
    script = tmp_path / "pool_parent.py"
    script.write_text(
        "import json, sys\n"
        "from daemon.errors import TaskError\n"
        "from daemon.backends.local import Task, WorkerPool\n"
        "def main():\n"
        "    with WorkerPool(1, initializer='helpers.pool_tasks:init_torch_like_silero',\n"
        "                    threads_per_worker=2) as pool:\n"
        "        threads = pool.submit(Task('helpers.pool_tasks:torch_threads')).result(120)\n"
        "        try:\n"
        "            pool.submit(Task('helpers.pool_tasks:torch_tensor')).result(120)\n"
        "            tensor = 'returned'\n"
        "        except TaskError as exc:\n"
        "            tensor = str(exc)\n"
        "    print(json.dumps({'threads': threads.value['torch_threads'], 'tensor': tensor,\n"
        "                      'torch_in_parent': 'torch' in sys.modules}))\n"
        "if __name__ == '__main__':\n"
        "    main()\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["torch_in_parent"] is False
    assert out["threads"] == 2
    assert "refers to module 'torch" in out["tensor"]
