"""Beyond one machine, really: the scheduler, each worker node and the daemon on machines of their
own — network namespaces the test makes (``helpers/netns.py``), joined by veth pairs, with
addresses the test assigns; loopback only otherwise.  The nodes cannot see the daemon's folders
(a mount namespace each, in which they are empty): the chunks' samples travel to them and back.

A node killed mid-batch (the whole machine: nanny and worker) and one added: every input comes out
exactly once, nothing fails, and the node that joined takes work.  Skipped, with the reason, only
where namespaces cannot be made.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon import Daemon
from test_dask_cluster import BATCH_TIMEOUT, drop, finished, node_pids, warm_pids

from helpers import cluster, netns, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
PORT = 8786


@pytest.fixture
def machines():
    try:
        made = netns.Machines(["scheduler", "node1", "node2", "node3", "daemon"])
    except netns.NamespacesUnavailable as exc:
        pytest.skip(f"cannot make network namespaces here: {exc}")
    yield made
    made.close()


class NamespacedDaemon(Daemon):
    """`voice-daemon run` on the daemon's machine."""

    def __init__(self, root: Path, prefix: list[str], **env):
        super().__init__(root, **env)
        self.prefix = prefix

    def start(self, wait: bool = True) -> "NamespacedDaemon":
        self.runs += 1
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([*self.prefix, sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            wait_until(lambda: self.has("daemon.ready") or self.proc.poll() is not None, BATCH_TIMEOUT)
            assert self.proc.poll() is None, self.text()
        return self


def test_nodes_on_machines_of_their_own_a_node_killed_and_one_added(machines, speech_dir, tmp_path):
    address = f"tcp://{machines.address['scheduler']}:{PORT}"
    started: list[subprocess.Popen] = []
    d = NamespacedDaemon(tmp_path / "daemon", machines.prefix("daemon"), backend="dask", dask_scheduler=address,
                         chunk_seconds=5, workers=2)
    hidden = (str(d.root),)
    try:
        scheduler_log = tmp_path / "scheduler.log"
        started.append(subprocess.Popen(
            [*machines.prefix("scheduler"), str(cluster.DASK), "scheduler", "--host", machines.address["scheduler"],
             "--port", str(PORT), "--no-dashboard"],
            stdout=scheduler_log.open("ab"), stderr=subprocess.STDOUT, env=cluster.base_env(),
            start_new_session=True))
        wait_until(lambda: "Scheduler at:" in scheduler_log.read_text(errors="replace")
                   or started[0].poll() is not None, 60, message="the scheduler listening")
        assert started[0].poll() is None, scheduler_log.read_text()[-3000:]

        # What a node sees of the daemon's folders: nothing.
        probe = subprocess.run([*machines.prefix("node1", hide=hidden), "ls", "-A", str(d.root)],
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0 and probe.stdout == "", (probe.stdout, probe.stderr)
        unreachable = subprocess.run([*machines.prefix("node1"), sys.executable, "-c",
                                      "import socket; socket.create_connection(('127.0.0.1', %d), 2)" % PORT],
                                     capture_output=True, text=True, timeout=60)
        assert unreachable.returncode != 0, "the scheduler answers on the node's own loopback"

        logs = [tmp_path / f"node{i}.log" for i in (1, 2, 3)]
        nodes = [cluster.start_node(address, logs[i], python=(*machines.prefix(f"node{i + 1}", hide=hidden),
                                                                 sys.executable)) for i in range(2)]
        started.extend(nodes)
        d.start()
        wait_until(lambda: len(warm_pids(d)) >= 2, BATCH_TIMEOUT, message="both nodes warm")

        first = [f"first-{i}.wav" for i in range(4)]
        drop(d, speech_dir, first)
        wait_until(lambda: d.events("job.done"), BATCH_TIMEOUT, message="a first file done")
        victim = node_pids(logs[0])
        cluster.kill_group(nodes[0])  # the whole machine, nanny and worker, mid-batch
        started.append(cluster.start_node(address, logs[2], python=(*machines.prefix("node3", hide=hidden),
                                                                     sys.executable)))
        wait_until(lambda: node_pids(logs[2]) & warm_pids(d), BATCH_TIMEOUT, message="the new node warm")
        second = [f"second-{i}.wav" for i in range(4)]
        drop(d, speech_dir, second)
        wait_until(lambda: finished(d, 8), BATCH_TIMEOUT, message=f"outcomes {d.outputs()} {d.quarantined()}")

        d.assert_exactly_once(first + second, [])
        done = d.events("job.done")
        assert sorted(e["input"] for e in done) == sorted(first + second)
        used = set().union(*(e["worker_pids"] for e in done))
        assert used & node_pids(logs[2]), "the node that joined got no work"
        assert used & node_pids(logs[1]), "the node that stayed got no work"
        assert any(e["worker_pid"] in victim for e in d.events("cluster.worker_left"))
        workers = {e["worker"] for e in d.events("cluster.worker_joined")}
        assert workers and all(w.startswith(f"tcp://{netns.SUBNET}.") for w in workers), workers
        assert d.stop() == 0
    finally:
        d.close()
        for proc in reversed(started):
            cluster.stop(proc, timeout=30)
