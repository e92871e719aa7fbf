"""`voice-daemon run` as systemd runs it: NOTIFY_SOCKET, WATCHDOG_USEC and a metrics address.

A real unix datagram socket stands in for systemd's notify socket (no systemd runs as
PID 1 here).  The daemon must say READY=1 only once every worker is warm, send
WATCHDOG=1 heartbeats, STATUS= lines with its figures, and STOPPING=1 after SIGTERM;
/metrics and /healthz must answer during the run and the counters must move.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180  # two workers loading models on a busy 2-core machine
WORKERS = 2


class NotifySocket:
    """Binds an abstract AF_UNIX datagram socket and records (wall time, message) as they arrive."""

    def __init__(self):
        self.name = f"@voice-daemon-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-listener", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append((time.time(), data.decode()))

    def times(self, field: str) -> list[float]:
        return [t for t, msg in self.messages if field in msg.split("\n")]

    def lines(self, prefix: str) -> list[str]:
        return [line for _t, msg in self.messages for line in msg.split("\n") if line.startswith(prefix)]

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def events(log: Path, name: str) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"event": "{name}"' in line:
            out.append(json.loads(line))
    return out


def wall(ev: dict) -> float:
    return datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def test_notify_watchdog_metrics_and_stop(notify, speech_dir, tmp_path):
    port = free_port()
    folders = {k: tmp_path / k for k in ("inbox", "outbox", "failed", "state")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICE_DAEMON_", "WATCHDOG_"))}
    env.update({
        "NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "3000000",  # heartbeats due every 1.5 s
        "VOICE_DAEMON_INBOX": str(folders["inbox"]), "VOICE_DAEMON_OUTBOX": str(folders["outbox"]),
        "VOICE_DAEMON_FAILED_DIR": str(folders["failed"]), "VOICE_DAEMON_STATE_DIR": str(folders["state"]),
        "VOICE_DAEMON_ENGINE": "shift", "VOICE_DAEMON_WORKERS": str(WORKERS),
        "VOICE_DAEMON_SAMPLE_RATE": "16000", "VOICE_DAEMON_SETTLE_SECONDS": "0.3",
        "VOICE_DAEMON_METRICS_ADDR": f"127.0.0.1:{port}", "VOICE_DAEMON_LOG_FORMAT": "json",
    })
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        health_while_warming = set()

        def warming():
            try:
                code, body = get(base + "/healthz")
            except urllib.error.URLError:  # not listening yet
                code, body = None, ""
            if code is not None:
                health_while_warming.add((code, json.loads(body)["status"]))
            if code == 200:  # the loop runs only after READY=1 was sent
                wait_until(lambda: notify.times("READY=1"), 30, message="/healthz green before READY=1")
            return notify.times("READY=1") or proc.poll() is not None

        wait_until(warming, START_TIMEOUT, interval=0.1, message="READY=1 from the daemon")
        assert proc.poll() is None, log.read_text()[-3000:]
        ready_at = notify.times("READY=1")[0]

        # READY only after every worker had loaded its models
        warm = events(log, "pool.worker_ready")
        assert len(warm) >= WORKERS, log.read_text()[-3000:]
        assert all(wall(ev) <= ready_at for ev in warm[:WORKERS])
        started = events(log, "pool.started")
        assert started and wall(started[0]) <= ready_at
        assert len(notify.times("READY=1")) == 1
        # while the workers warmed up, /healthz said so with a 503
        assert (503, "starting") in health_while_warming, health_while_warming
        wait_until(lambda: get(base + "/healthz")[0] == 200, 30, message="/healthz 200 after READY")

        # heartbeats keep coming after READY
        wait_until(lambda: len([t for t in notify.times("WATCHDOG=1") if t >= ready_at]) >= 3, 30,
                   message="three WATCHDOG=1 heartbeats")

        # real work, then the counters and the status line move
        for name, src in (("one.wav", "silero_vad_en.wav"), ("two.flac", "fw_jfk.flac")):
            data = (speech_dir / src).read_bytes()
            tmp = folders["inbox"] / f".{name}.part"
            tmp.write_bytes(data)
            os.rename(tmp, folders["inbox"] / name)
        wait_until(lambda: len([p for p in folders["outbox"].rglob("*") if p.is_file()
                                and not p.name.startswith(".")]) >= 2, 300, message="two outputs")

        def scraped_done() -> str | None:
            code, text = get(base + "/metrics")
            return text if code == 200 and sample(text, 'voice_daemon_jobs_total{outcome="done"}') == 2 else None

        text = wait_until(scraped_done, 30, message="/metrics counts two done jobs")
        assert sample(text, 'voice_daemon_jobs_total{outcome="failed"}') == 0
        assert sample(text, "voice_daemon_audio_seconds_total") > 60  # 60 s + 11 s of speech
        assert sample(text, "voice_daemon_job_duration_seconds_count") == 2
        assert sample(text, "voice_daemon_queue_depth") == 0
        assert sample(text, "voice_daemon_watcher_activity_age_seconds") < 120
        code, body = get(base + "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok", body
        wait_until(lambda: any("2 done" in s for s in notify.lines("STATUS=")), 30,
                   message="a STATUS= line with the figures")

        # SIGTERM: STOPPING=1, a clean exit, the metrics endpoint gone
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
        stopping = notify.times("STOPPING=1")
        assert stopping and stopping[0] >= ready_at
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(base + "/metrics", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
