"""The crash matrix on both backends: the local spawn pool and the Dask backend on a real LocalCluster.

The same tasks (tests/helpers/pool_tasks.py), the same assertions: results, an exception, a
worker that exits, is SIGKILLed or segfaults, a hang past the deadline, a failure at model
load, fairness between groups, back-pressure, results not recomputed once read, and close.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.errors import InputError, PoolClosedError, PoolStartError, TaskError
from daemon.jobs import Task
from helpers import backends, tls, wait_until

ROOT = Path(__file__).resolve().parents[2]
T = backends.T


def task(name: str, group: str = "", timeout=None, **kwargs) -> Task:
    return Task(func=T + name, kwargs=kwargs, group=group, timeout=timeout)


@pytest.fixture(params=backends.KINDS)
def make_backend(request):
    made = []

    def make(workers=2, **options):
        backend = backends.build(request.param, workers, **options)
        made.append(backend)
        return backend.start()

    make.kind = request.param
    yield make
    for backend in made:
        backend.close(grace=5)


def test_results_come_back_and_models_load_once_per_worker(make_backend):
    backend = make_backend(2)
    futures = [backend.submit(task("square", group=f"file-{i % 3}", x=i)) for i in range(20)]
    results = [f.result(timeout=120) for f in futures]
    assert [r.value["y"] for r in results] == [i * i for i in range(20)]
    assert all(r.attempts == 1 for r in results)
    assert {r.worker_pid for r in results} <= set(backend.stats()["pids"])
    assert backend.submit(task("whoami")).result(timeout=60).value["initialized"] == "warm"
    stats = backend.stats()
    assert (stats["tasks_done"], stats["models_loaded"], stats["restarts"]) == (21, 2, 0)


def test_an_exception_fails_its_task_only_and_keeps_its_type_for_our_errors(make_backend):
    backend = make_backend(1)
    with pytest.raises(TaskError) as info:
        backend.submit(task("fail", message="bad value")).result(timeout=60)
    assert (info.value.kind, info.value.attempts, str(info.value)) == ("exception", 1, "ValueError: bad value")
    assert "pool_tasks.py" in str(info.value.__cause__.__cause__)  # the worker's traceback
    with pytest.raises(InputError) as err:
        backend.submit(task("input_error", path="/in/x.wav", cause="not audio")).result(timeout=60)
    assert (err.value.path, err.value.cause, err.value.stage) == ("/in/x.wav", "not audio", "engine")
    assert backend.submit(task("square", x=3)).result(timeout=60).value["y"] == 9
    assert backend.stats()["restarts"] == 0


@pytest.mark.parametrize("crash, cause", [
    ("exit_now", "exit code 3"),
    ("kill_self", "signal SIGKILL"),
    ("segfault", "signal SIGSEGV"),
])
def test_a_task_that_kills_its_worker_every_time_fails_after_max_attempts(make_backend, crash, cause):
    backend = make_backend(2, max_attempts=3)
    doomed = backend.submit(task(crash, group="bad"))
    others = [backend.submit(task("square", group="good", x=i)) for i in range(6)]
    with pytest.raises(TaskError) as info:
        doomed.result(timeout=180)
    results = [f.result(timeout=180) for f in others]

    assert (info.value.kind, info.value.attempts) == ("crash", 3)
    msg = str(info.value)
    # Dask names a death by the exit code its nanny reports; on a loaded machine that report can come
    # after the few seconds the backend waits for it, and that death is then "its worker was lost".
    assert msg == f"worker died ({cause}) on every one of 3 attempts" or (
        msg.startswith("worker died or timed out on every one of 3 attempts: ") and cause in msg
        and set(msg.split(": ", 1)[1].split("; ")) <= {cause, "its worker was lost"}), msg
    assert [r.value["y"] for r in results] == [i * i for i in range(6)]
    assert all(r.attempts == 1 for r in results)  # no other task paid for the crashes
    wait_until(lambda: backend.stats()["ready"] == 2, timeout=120)  # fresh warm workers
    stats = backend.stats()
    assert (stats["restarts"], stats["retries"]) == (3, 2)


def test_a_crash_right_behind_a_finished_task_is_charged_to_the_crash_alone(make_backend):
    """A task that ends its worker the moment it starts, right behind one that finishes at once, on
    one worker: the death is the crash's.  (A Dask worker sends its messages in batches; had the
    crash started before the first task's end left the process, the scheduler would still count
    that task as running, and the death would be charged to it: with one attempt allowed, it fails.)"""
    backend = make_backend(1, max_attempts=1)
    for i in range(6):
        quick = backend.submit(task("square", group="one", x=i))
        doomed = backend.submit(task("exit_now", group="one"))
        assert quick.result(timeout=120).attempts == 1
        with pytest.raises(TaskError) as info:
            doomed.result(timeout=120)
        assert (info.value.kind, info.value.attempts) == ("crash", 1)


def test_a_worker_killed_mid_task_runs_that_task_again_once(make_backend, tmp_path):
    backend = make_backend(2, max_attempts=3)
    result = backend.submit(task("crash_until", counter=str(tmp_path / "calls"), crashes=1, code=1)).result(timeout=180)
    assert (result.attempts, result.value["calls"]) == (2, 2)
    assert backend.stats()["retries"] == 1


def test_a_hang_past_its_deadline_is_killed_and_counted_as_a_timeout(make_backend):
    backend = make_backend(1, max_attempts=2)
    first = backend.stats()["pids"][0]
    with pytest.raises(TaskError) as info:
        backend.submit(task("hang", timeout=1.0)).result(timeout=180)
    assert (info.value.kind, info.value.attempts) == ("timeout", 2)
    assert str(info.value) == "task timed out after 1 s on every one of 2 attempts"
    after = backend.submit(task("whoami")).result(timeout=120)
    assert after.worker_pid != first and not os.path.exists(f"/proc/{first}")
    assert backend.stats()["timeouts"] == 2


@pytest.mark.parametrize("kind", backends.KINDS)
def test_a_failure_at_model_load_refuses_to_start_with_the_cause(kind):
    backend = backends.build(kind, 2, initializer=T + "init_fail", init_args=("/nope/model.pt",))
    with pytest.raises(PoolStartError) as info:
        backend.start()
    assert "failed to start" in str(info.value)
    assert "FileNotFoundError: model file /nope/model.pt not found" in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)  # rebuilt from the worker's description
    with pytest.raises(RuntimeError):
        backend.submit(task("whoami"))
    backend.close()


def test_files_share_the_workers_in_turn(make_backend, tmp_path):
    backend = make_backend(1)
    gate = tmp_path / "gate"
    futures = [backend.submit(task("wait_for_file", group="long", path=str(gate), tag="long-0"))]
    futures += [backend.submit(task("whoami", group="long", tag=f"long-{i}")) for i in range(1, 10)]
    futures.append(backend.submit(task("whoami", group="short", tag="short")))
    finished = []
    for f in futures:
        f.add_done_callback(lambda f: finished.append(f.result().value["tag"]))
    gate.touch()
    wait_until(lambda: len(finished) == 11, timeout=120)
    assert finished.index("short") <= 2, finished
    assert [t for t in finished if t != "short"] == [f"long-{i}" for i in range(10)]


def test_no_more_tasks_are_sent_than_the_workers_have_threads(make_backend, tmp_path):
    backend = make_backend(2)
    gate = tmp_path / "gate"
    futures = [backend.submit(task("wait_for_file", group=f"g{i % 2}", path=str(gate), tag=i)) for i in range(8)]
    wait_until(lambda: backend.stats()["busy"] == 2, timeout=120)
    stats = backend.stats()
    assert stats["queued"] == 6 and stats.get("in_flight", 2) == 2
    gate.touch()
    assert sorted(f.result(timeout=120).value["tag"] for f in futures) == list(range(8))


def test_results_already_read_are_not_computed_again_when_workers_die(make_backend, tmp_path):
    backend = make_backend(2)
    calls = tmp_path / "calls"
    results = [f.result(timeout=120) for f in [backend.submit(task("count_call", path=str(calls), x=i))
                                               for i in range(6)]]
    assert sorted(r.value["x"] for r in results) == list(range(6))
    victims = backend.stats()["pids"]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: backend.stats()["ready"] == 2 and not set(victims) & set(backend.stats()["pids"]),
               timeout=120)
    assert backend.submit(task("square", x=2)).result(timeout=60).value["y"] == 4
    assert len(calls.read_text().splitlines()) == 6  # nothing ran twice


def test_close_cancels_what_waits_and_fails_what_runs_past_the_grace(make_backend, tmp_path):
    backend = make_backend(1)
    running = backend.submit(task("wait_for_file", path=str(tmp_path / "never")))
    queued = [backend.submit(task("whoami", tag=i)) for i in range(3)]
    wait_until(lambda: backend.stats()["busy"] == 1, timeout=120)
    backend.close(grace=0.5)
    assert all(f.cancelled() for f in queued)
    assert isinstance(running.exception(timeout=30), TaskError) and running.exception().kind == "shutdown"
    backend.close()  # idempotent
    with pytest.raises(PoolClosedError):
        backend.submit(task("whoami"))


def test_the_daemon_side_of_dask_never_imports_torch(tmp_path):
    """In a fresh interpreter: the Dask workers import torch (as silero does) and return a tensor;
    the daemon's side refuses to unpickle it rather than import torch."""
    script = tmp_path / "dask_parent.py"
    script.write_text(
        "import json, sys\n"
        "from daemon.errors import TaskError\n"
        "from daemon.jobs import Task\n"
        "from helpers import backends\n"
        "def main():\n"
        "    with backends.build('dask', 1, initializer='helpers.pool_tasks:init_torch_like_silero',\n"
        "                        threads_per_worker=2) as b:\n"
        "        threads = b.submit(Task('helpers.pool_tasks:torch_threads')).result(120)\n"
        "        try:\n"
        "            b.submit(Task('helpers.pool_tasks:torch_tensor')).result(120)\n"
        "            tensor = 'returned'\n"
        "        except TaskError as exc:\n"
        "            tensor = str(exc)\n"
        "    print(json.dumps({'threads': threads.value['torch_threads'], 'tensor': tensor,\n"
        "                      'torch_in_parent': 'torch' in sys.modules}))\n"
        "if __name__ == '__main__':\n"
        "    main()\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.strip().splitlines()[-1]
    assert '"torch_in_parent": false' in out and '"threads": 2' in out and "refers to module 'torch" in out


def test_a_tls_cluster_on_loopback_runs_tasks_and_refuses_others(tmp_path):
    """Certificates made here; the cluster speaks TLS only: plain TCP and a certificate signed
    by another CA are both refused."""
    from distributed import Client

    certs, rogue = tls.make_certs(tmp_path / "ours"), tls.make_certs(tmp_path / "rogue", "rogue")
    backend = backends.build("dask", 1, security=tls.security(certs)).start()
    try:
        address = backend.stats()["scheduler"]
        assert address.startswith("tls://127.0.0.1:")
        assert backend.submit(task("square", x=4)).result(timeout=120).value["y"] == 16
        for other, sec in ((address.replace("tls://", "tcp://"), None), (address, tls.security(rogue))):
            with pytest.raises((OSError, TimeoutError)):
                Client(other, security=sec, timeout=3, set_as_default=False)
    finally:
        backend.close()


def test_the_dask_backends_capacity_follows_the_clusters_threads():
    """Jobs in flight follow ``capacity()`` (the supervisor keeps twice as many): a worker that joins
    raises it once warm, one that leaves lowers it; VOICE_DAEMON_WORKERS plays no part."""
    from daemon.backends.dask import DaskBackend
    from daemon.backends.dask.connect import start_local_cluster
    from daemon.backends.dask.warm import WarmModels

    cluster = start_local_cluster(1)
    try:
        backend = DaskBackend(address=cluster.scheduler_address, plugin=WarmModels(T + "init_record")).start()
        try:
            assert backend.capacity() == 1
            cluster.scale(2)
            wait_until(lambda: backend.capacity() == 2, timeout=120, message="the joining worker counted")
            assert backend.submit(task("square", x=4)).result(timeout=60).value["y"] == 16
            cluster.scale(1)
            wait_until(lambda: backend.capacity() == 1, timeout=120, message="the leaving worker no longer counted")
        finally:
            backend.close()
    finally:
        cluster.close()


def test_a_dask_worker_runs_with_the_environment_of_a_pool_worker(monkeypatch):
    """A nanny starts its worker with MALLOC_TRIM_THRESHOLD_=65536 unless told otherwise, which makes
    every large array a fresh mmap and costs a chunk more CPU there than in a pool worker: the
    daemon's Dask workers run with glibc's defaults, as the pool's do, and the thread variables set."""
    from distributed import Client

    from daemon.backends.dask.connect import start_local_cluster

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    cluster = start_local_cluster(1, threads=1)
    try:
        with Client(cluster, set_as_default=False) as client:
            seen = {name: list(client.run(os.getenv, name).values())
                    for name in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}
    finally:
        cluster.close()
    assert seen == {"MALLOC_TRIM_THRESHOLD_": [None], "OMP_NUM_THREADS": ["1"]}
