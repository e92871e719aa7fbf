"""`voice-daemon run` with VOICE_DAEMON_BACKEND=dask against a real `dask scheduler` process and
real `voice-daemon worker` nodes, all separate processes on 127.0.0.1, real recordings, the
`shift` engine, samples travelling (no shared storage).

A node SIGKILLed mid-batch and a node added mid-batch; the scheduler killed and restarted
mid-batch; a cluster over TLS with certificates the test makes.  Every file comes out exactly
once and nothing lands in failed/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_daemon import Daemon, cut

from helpers import cluster, tls, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
BATCH_TIMEOUT = 300


@pytest.fixture
def procs():
    """Every scheduler and node a test starts, stopped at its end whatever happened."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in reversed(started):
        cluster.stop(proc, timeout=30)


@pytest.fixture
def daemons(tmp_path):
    made: list[Daemon] = []

    def make(**env) -> Daemon:
        d = Daemon(tmp_path / f"d{len(made)}", **env)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def drop(d: Daemon, speech_dir: Path, names: list[str], seconds: float = 20.0) -> None:
    """Real speech files into the inbox (each cut elsewhere in the recording)."""
    for i, name in enumerate(names):
        staged = cut(speech_dir, d.root / "staging" / name, "silero_vad_en.wav", (7 * i) % 28, seconds)
        staged.rename(d.inbox / name)


def finished(d: Daemon, n: int) -> bool:
    """``n`` jobs logged done or failed (the spool has finished with them)."""
    return len(d.events("job.done")) + len(d.events("job.failed")) >= n


def warm_pids(d: Daemon) -> set[int]:
    return {e["worker_pid"] for e in d.events("cluster.worker_ready")}


def node_pids(log: Path) -> set[int]:
    return {e["pid"] for e in cluster.ready_workers(log)}


def health(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=60) as r:
        return r.read().decode()


def dask_daemon(daemons, address: str, **env) -> Daemon:
    return daemons(backend="dask", dask_scheduler=address, chunk_seconds=5, workers=2, **env)


def test_a_node_killed_and_a_node_added_mid_batch_every_file_once(procs, daemons, speech_dir, tmp_path):
    port = cluster.free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs.append(cluster.start_scheduler(port, tmp_path / "scheduler.log"))
    logs = [tmp_path / f"node{i}.log" for i in range(3)]
    nodes = [cluster.start_node(address, logs[i]) for i in range(2)]
    procs.extend(nodes)
    d = dask_daemon(daemons, address).start()
    wait_until(lambda: len(warm_pids(d)) >= 2, BATCH_TIMEOUT, message="both nodes warm")

    first = [f"first-{i}.wav" for i in range(4)]
    drop(d, speech_dir, first)
    wait_until(lambda: d.events("job.done"), BATCH_TIMEOUT, message="a first file done")
    victim = node_pids(logs[0])
    cluster.kill_group(nodes[0])                      # the whole machine, nanny and worker
    procs.append(cluster.start_node(address, logs[2]))
    wait_until(lambda: node_pids(logs[2]) & warm_pids(d), BATCH_TIMEOUT, message="the new node warm")
    second = [f"second-{i}.wav" for i in range(4)]
    drop(d, speech_dir, second)
    wait_until(lambda: finished(d, 8), BATCH_TIMEOUT, message=f"outcomes {d.outputs()} {d.quarantined()}")

    d.assert_exactly_once(first + second, [])
    done = d.events("job.done")
    assert sorted(e["input"] for e in done) == sorted(first + second)
    used = set().union(*(e["worker_pids"] for e in done))
    assert used & node_pids(logs[2]), "the node that joined got no work"
    assert any(e["worker_pid"] in victim for e in d.events("cluster.worker_left"))
    assert d.stop() == 0


def test_the_scheduler_restarted_mid_batch_jobs_wait_unhealthy_then_finish_once(procs, daemons, speech_dir,
                                                                                tmp_path):
    port, metrics_port = cluster.free_port(), cluster.free_port()
    address, url = f"tcp://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    scheduler = cluster.start_scheduler(port, tmp_path / "scheduler.log")
    procs.append(scheduler)
    procs.extend(cluster.start_node(address, tmp_path / f"node{i}.log") for i in range(2))
    d = dask_daemon(daemons, address, metrics_addr=f"127.0.0.1:{metrics_port}").start()
    wait_until(lambda: len(warm_pids(d)) >= 2, BATCH_TIMEOUT, message="both nodes warm")

    names = [f"talk-{i}.wav" for i in range(6)]
    drop(d, speech_dir, names, seconds=30.0)
    wait_until(lambda: d.events("job.done"), BATCH_TIMEOUT, message="a first file done")
    cluster.kill_group(scheduler)
    wait_until(lambda: health(url) == 503, 60, message="unhealthy while the scheduler is gone")
    # The gauges follow the supervisor's turns (at least every 10 s).
    wait_until(lambda: "voice_daemon_backend_connected 0.0" in scrape(url), 60, message="metrics: not connected")
    assert d.proc.poll() is None and d.quarantined() == []
    procs.append(cluster.start_scheduler(port, tmp_path / "scheduler2.log"))
    wait_until(lambda: finished(d, 6), BATCH_TIMEOUT, message=f"outcomes {d.outputs()} {d.quarantined()}")

    d.assert_exactly_once(names, [])
    assert sorted(e["input"] for e in d.events("job.done")) == sorted(names)
    assert d.events("cluster.scheduler_lost") and d.events("cluster.connected")[1:]
    wait_until(lambda: health(url) == 200, 60, message="healthy again")
    assert d.stop() == 0


def test_a_cluster_over_tls(procs, daemons, speech_dir, tmp_path):
    certs = tls.make_certs(tmp_path / "certs")
    port = cluster.free_port()
    address = f"tls://127.0.0.1:{port}"
    procs.append(cluster.start_scheduler(port, tmp_path / "scheduler.log", certs=certs))
    node_log = tmp_path / "node.log"
    procs.append(cluster.start_node(address, node_log, env=certs.env()))
    d = dask_daemon(daemons, address, tls_ca_file=certs.ca, tls_cert_file=certs.cert, tls_key_file=certs.key)
    d.start()
    names = ["secret-0.wav", "secret-1.wav"]
    drop(d, speech_dir, names)
    wait_until(lambda: finished(d, 2), BATCH_TIMEOUT, message=f"outcomes {d.outputs()} {d.quarantined()}")
    d.assert_exactly_once(names, [])
    assert set().union(*(e["worker_pids"] for e in d.events("job.done"))) & node_pids(node_log)

    status = subprocess.run([sys.executable, "-m", "daemon", "status", "--json"], env=d.env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    backend = json.loads(status.stdout)["backend"]
    assert (backend["reachable"], backend["workers_connected"]) == (True, 1), status.stdout + status.stderr
    plain = dict(d.env, VOICE_DAEMON_DASK_SCHEDULER=address.replace("tls://", "tcp://"))
    for k in ("VOICE_DAEMON_TLS_CA_FILE", "VOICE_DAEMON_TLS_CERT_FILE", "VOICE_DAEMON_TLS_KEY_FILE"):
        plain.pop(k)
    refused = subprocess.run([sys.executable, "-m", "daemon", "status", "--json"], env=plain, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert json.loads(refused.stdout)["backend"]["reachable"] is False  # no plain TCP into a TLS cluster
    assert d.stop() == 0


@pytest.mark.parametrize("shared_storage", ["false", "true"])
def test_convert_on_a_local_dask_cluster_equals_the_sequential_result(speech_dir, tmp_path, shared_storage):
    """No scheduler given: the daemon starts its own cluster on 127.0.0.1 and passes paths (shared
    storage or not: it is this machine's disk).  The deterministic `shift` engine gives the same
    samples as one process."""
    src = cut(speech_dir, tmp_path / "in.wav", "silero_vad_en.wav", 3, 16.0)
    env = cluster.base_env(VOICE_DAEMON_SAMPLE_RATE="16000", VOICE_DAEMON_CHUNK_SECONDS="5",
                           VOICE_DAEMON_WORKERS="2")
    runs = {}
    for name, extra, flags in (("sequential", {}, ["--sequential"]),
                               ("dask", {"VOICE_DAEMON_BACKEND": "dask",
                                         "VOICE_DAEMON_SHARED_STORAGE": shared_storage}, [])):
        out = tmp_path / f"{name}.wav"
        proc = subprocess.run([sys.executable, "-m", "daemon", "convert", str(src), str(out), "--no-progress", *flags],
                              env={**env, **extra}, cwd=ROOT, capture_output=True, text=True, timeout=400)
        assert proc.returncode == 0, proc.stderr[-4000:]
        runs[name] = (sf.read(out, dtype="float32")[0], proc.stderr)
    assert np.array_equal(runs["dask"][0], runs["sequential"][0])
    done = json.loads(next(line for line in runs["dask"][1].splitlines() if '"convert.done"' in line))
    assert done["chunks"] >= 3
    # A local cluster shares this disk: paths pass whatever the setting, and no worker on this host
    # besides the cluster's two is needed for decode and stitch.
    assert len(done["worker_pids"]) == 2
    assert not [line for line in runs["dask"][1].splitlines() if line.strip() and not line.startswith("{")
                and "part2_3_length" not in line], "stderr is not all JSON"
