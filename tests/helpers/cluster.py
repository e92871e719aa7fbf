"""Real Dask processes on 127.0.0.1 for the tests: a `dask scheduler` and `voice-daemon worker` nodes.

Each is started in a session of its own, so a test can SIGKILL a whole node (nanny and worker
processes together) with one ``killpg``, and ``stop`` leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from helpers import live_in_group, wait_until

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICE_DAEMON_", "DASK_"))}
    env.update(PYTHONPATH=str(ROOT), VOICE_DAEMON_LOG_FORMAT="json", **extra)
    return env


def start_scheduler(port: int, log: Path, certs=None) -> subprocess.Popen:
    """`dask scheduler` on 127.0.0.1:port (TLS with ``certs``); returns once it accepts connections."""
    cmd = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
           "--dashboard-address", "127.0.0.1:0"]
    if certs is not None:
        cmd += ["--protocol", "tls", "--tls-ca-file", str(certs.ca), "--tls-cert", str(certs.cert),
                "--tls-key", str(certs.key)]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=base_env(),
                            start_new_session=True)
    wait_until(lambda: _listening(port) or proc.poll() is not None, timeout=60, message="scheduler listening")
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


def start_node(scheduler: str, log: Path, nworkers: int = 1, env: dict | None = None,
               python: tuple[str, ...] = (sys.executable,)) -> subprocess.Popen:
    """`voice-daemon worker` (its JSON lines and Dask's go to ``log``); ``python``: how to run
    Python (e.g. under a seccomp sandbox)."""
    cmd = [*python, "-m", "daemon", "worker", "--scheduler", scheduler, "--nworkers", str(nworkers)]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=base_env(**(env or {})),
                            cwd=ROOT, start_new_session=True)


def ready_workers(log: Path) -> list[dict]:
    """The ``cluster.worker_ready`` lines a node's worker processes wrote (pid, seconds)."""
    return [e for e in events(log) if e.get("event") == "cluster.worker_ready"]


def events(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole session: what losing the machine looks like to the cluster."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    wait_until(lambda: not live_in_group(proc.pid), timeout=30, message="node's processes gone")


def stop(proc: subprocess.Popen, timeout: float = 60) -> int | None:
    """SIGTERM, wait; SIGKILL the session if it lingers.  The exit code (None if it was killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    code = proc.poll()
    kill_group(proc)
    return code


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
