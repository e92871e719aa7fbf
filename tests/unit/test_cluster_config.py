"""The dask backend's settings, command line, status line and metrics (no cluster needed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from daemon.backends.dask import connect, status
from daemon.metrics import Metrics
from daemon.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def vd(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    full.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True, env=full,
                          timeout=120, cwd=ROOT)


@pytest.mark.parametrize("given, kept", [
    ("10.0.0.5:8786", "tcp://10.0.0.5:8786"),
    (" tcp://sched:8786 ", "tcp://sched:8786"),
    ("", ""),
])
def test_a_scheduler_address_is_tcp_unless_it_says_tls(given, kept):
    assert Settings(dask_scheduler=given).dask_scheduler == kept


@pytest.mark.parametrize("env, variable, words", [
    ({"VOICE_DAEMON_DASK_SCHEDULER": "udp://h:1"}, "VOICE_DAEMON_DASK_SCHEDULER", "tcp://host:port"),
    ({"VOICE_DAEMON_DASK_SCHEDULER": "tcp://h:99999"}, "VOICE_DAEMON_DASK_SCHEDULER", "tcp://host:port"),
    ({"VOICE_DAEMON_DASK_SCHEDULER": "tls://h:8786"}, "VOICE_DAEMON_DASK_SCHEDULER",
     "needs VOICE_DAEMON_TLS_CA_FILE, VOICE_DAEMON_TLS_CERT_FILE, VOICE_DAEMON_TLS_KEY_FILE"),
    ({"VOICE_DAEMON_TLS_CA_FILE": "/ca.pem"}, "VOICE_DAEMON_TLS_CA_FILE", "all three"),
    ({"VOICE_DAEMON_BACKEND": "ray"}, "VOICE_DAEMON_BACKEND", "must be local or dask"),
])
def test_bad_dask_settings_name_the_variable(monkeypatch, env, variable, words):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.variable == variable and words in str(info.value)


def test_tls_files_that_are_not_there_stop_the_start_with_the_variable(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    s = Settings(tls_ca_file=str(tmp_path / "ca.pem"), tls_cert_file=str(tmp_path / "cert.pem"),
                 tls_key_file=str(tmp_path / "key.pem"))
    with pytest.raises(SettingsError) as info:
        connect.security(s)
    assert info.value.variable == "VOICE_DAEMON_TLS_CERT_FILE" and info.value.exit_code == 78
    assert connect.security(Settings()) is None


@pytest.mark.parametrize("args, env, words", [
    ((), {}, "no scheduler: pass --scheduler"),
    (("--scheduler", "tcp://127.0.0.1:1", "--nworkers", "0"), {}, "--nworkers 0: allowed: 1 or more"),
    (("--scheduler", "ftp://x:1"), {}, "--scheduler ftp://x:1"),
    (("--scheduler", "tls://127.0.0.1:1"), {}, "needs VOICE_DAEMON_TLS_CA_FILE"),
])
def test_worker_command_usage_errors_exit_2(args, env, words):
    proc = vd("worker", *args, **env)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr


def test_status_says_where_the_tasks_run(tmp_path):
    env = {"VOICE_DAEMON_STATE_DIR": str(tmp_path / "state"), "VOICE_DAEMON_INBOX": str(tmp_path / "in"),
           "VOICE_DAEMON_OUTBOX": str(tmp_path / "out"), "VOICE_DAEMON_FAILED_DIR": str(tmp_path / "failed")}
    local = vd("status", **env, VOICE_DAEMON_WORKERS="3")
    assert local.returncode == 3 and "backend:     local pool of 3 worker process(es)" in local.stdout
    # Nothing listens on this port: the scheduler is reported unreachable, status still answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    away = vd("status", "--json", **env, VOICE_DAEMON_BACKEND="dask", VOICE_DAEMON_DASK_SCHEDULER=f"tcp://127.0.0.1:{port}")
    assert away.returncode == 3, away.stderr  # no daemon runs: status still answers, exits 3
    backend = json.loads(away.stdout)["backend"]
    assert backend["backend"] == "dask" and backend["scheduler"] == f"tcp://127.0.0.1:{port}"
    assert backend["reachable"] is False and backend["error"]


def test_status_line_of_a_dask_backend():
    up = {"backend": "dask", "scheduler": "tcp://s:8786", "reachable": True, "workers_connected": 3,
          "threads": 6, "workers_busy": 2}
    assert status.describe(up) == "dask, tcp://s:8786: 3 worker(s) connected (6 threads), 2 busy"
    assert status.describe({**up, "reachable": False, "error": "OSError: refused"}) == \
        "dask, tcp://s:8786: unreachable (OSError: refused)"
    assert status.describe({**up, "reachable": None, "scheduler": "local cluster"}) == "dask, local cluster"


def test_metrics_show_the_backend_the_scheduler_and_whether_it_is_connected():
    m = Metrics(Settings(backend="dask", dask_scheduler="tcp://s:8786"))
    assert 'voice_daemon_backend_info{backend="dask",scheduler="tcp://s:8786"} 1.0' in scrape(m)
    m.observe_pool({"backend": "dask", "scheduler": "tcp://s:8786", "connected": False, "workers": 3,
                    "alive": 3, "ready": 2, "busy": 1, "restarts": 0})
    out = scrape(m)
    assert "voice_daemon_backend_connected 0.0" in out and "voice_daemon_workers_busy 1.0" in out
    assert "voice_daemon_workers_ready 2.0" in out and "voice_daemon_workers_alive 3.0" in out
    assert m.health()[1]["backend_connected"] is False and m.health()[1]["scheduler"] == "tcp://s:8786"
    local = Metrics(Settings())
    local.observe_pool({"workers": 2, "alive": 2, "ready": 2, "busy": 0})
    assert 'voice_daemon_backend_info{backend="local",scheduler=""} 1.0' in scrape(local)


def scrape(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_the_daemons_side_of_the_dask_backend_imports_no_model_library():
    from test_parent_imports import HEAVY

    code = ("import sys, daemon.backends.dask, daemon.backends.dask.node, daemon.backends.dask.status, daemon.backends.dask.samples\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"loaded in the parent: {proc.stdout.strip()}"
