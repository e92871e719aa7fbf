"""The supervisor's reporting on its own: job.* lines carry the job's bound fields, metrics and
systemd's STATUS=/WATCHDOG= follow, and the loop knows when it must turn again.

A real Notifier on a real unix datagram socket (standing in for systemd) and real Metrics."""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from daemon.metrics import Metrics
from daemon.settings import Settings
from daemon.supervisor import Reporter
from daemon.supervisor.report import TURNS_PER_STALL
from daemon.systemd import Notifier

STATS = {"workers": 2, "alive": 2, "ready": 2, "busy": 0, "restarts": 0}


@dataclass
class J:
    id: str
    rel: str
    voice: str | None = None
    attempts: int = 1
    not_before: float = 0.0
    history: list = field(default_factory=list)


@pytest.fixture
def systemd(tmp_path):
    """(address, messages()): a bound socket as systemd's NOTIFY_SOCKET, and what arrived on it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)

    def messages() -> list[str]:
        out = []
        while True:
            try:
                out.append(sock.recv(4096).decode())
            except BlockingIOError:
                return out

    yield str(path), messages
    sock.close()


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make(systemd, watchdog_usec: int | None = None, observers=(), **settings):
    address, messages = systemd
    env = {"NOTIFY_SOCKET": address, **({"WATCHDOG_USEC": str(watchdog_usec)} if watchdog_usec else {})}
    clock = Clock()
    settings = Settings(**{"engine": "shift", "voice": "kseniya", "workers": 2, **settings})
    metrics = Metrics(settings, clock=clock)
    notifier = Notifier(env, clock=clock)
    return (Reporter(settings, notifier, metrics, monotonic=clock, observers=observers), metrics, messages,
            clock)


def test_every_job_line_carries_the_bound_fields(systemd):
    with capture_logs() as logs:
        r, metrics, _, _ = make(systemd)
        job = J("j1", "baya/talk.wav", voice="baya")
        rep = r.job(job)
        assert r.job(job) is rep  # bound once per job
        rep.queued(resumed=True)
        rep.started()
        rep.retry("crash", "Worker died.", 0.25)
        rep.error("job.retry_error", OSError("disk full"))
        job.attempts = 2
        rep.done("baya/talk.wav", 2.0, {"audio_seconds": 4.0, "attempts": 1, "worker_pids": [7], "chunks": 1})
        other = r.job(J("j2", "bad.wav"))
        other.failed("bad.wav", "decode", "The input is empty.")
    assert [e["event"] for e in logs] == ["job.queued", "job.started", "job.retry", "job.retry_error",
                                          "job.done", "job.failed"]
    for e in logs[:5]:
        # shift has no voices: its lines carry its pitch and formant, and the voice folder's name only
        assert (e["job_id"], e["input"], e["engine"], e["voice"], e["semitones"], e["formant"]) == (
            "j1", "baya/talk.wav", "shift", "baya", 4.0, 1.15)
    assert logs[-1]["job_id"] == "j2" and logs[-1]["voice"] is None  # not VOICE_DAEMON_VOICE's kseniya
    assert logs[0]["resumed"] is True and logs[1]["attempt"] == 1
    assert logs[2]["retry_in"] == 0.25 and logs[2]["stage"] == "crash" and logs[2]["error"] == "Worker died."
    done = logs[4]
    assert (done["output"], done["audio_seconds"], done["wall_seconds"], done["rtf"], done["attempts"],
            done["worker_pids"], done["chunks"]) == ("baya/talk.wav", 4.0, 2.0, 0.5, 2, [7], 1)
    assert logs[5]["quarantined"] == "bad.wav" and logs[5]["output"] is None
    assert r.counts == {"done": 1, "failed": 1, "retried": 1}
    assert metrics.health()[1]["jobs"] == {"done": 1, "failed": 1, "retried": 1}
    assert r.job(job) is not rep  # forgotten once its outcome was logged


def test_a_turn_sets_metrics_and_sends_status_only_when_it_changes(systemd):
    r, metrics, messages, _ = make(systemd)
    r.turn(queued=3, running=1, pool_stats=STATS)
    r.turn(queued=3, running=1, pool_stats=STATS)
    r.turn(queued=2, running=2, pool_stats=STATS)
    assert messages() == ["STATUS=3 queued, 1 converting, 0 done, 0 failed; workers 2/2 ready",
                          "STATUS=2 queued, 2 converting, 0 done, 0 failed; workers 2/2 ready"]
    ok, body = metrics.health()
    assert ok and body["queue_depth"] == 2 and body["jobs_in_flight"] == 2 and body["workers_ready"] == 2


def test_next_turn_is_the_next_heartbeat_or_often_enough_for_healthz(systemd):
    r, metrics, messages, clock = make(systemd, watchdog_usec=4_000_000)  # heartbeats due every 2 s
    r.turn(queued=0, running=0, pool_stats=STATS)
    assert messages()[0] == "WATCHDOG=1"
    assert r.next_turn() == pytest.approx(clock.now + 2)
    clock.now += 1
    r.turn(queued=0, running=0, pool_stats=STATS)
    assert "WATCHDOG=1" not in messages()  # not due yet: the deadline stays
    assert r.next_turn() == pytest.approx(clock.now + 1)
    clock.now = r.next_turn()
    r.turn(queued=0, running=0, pool_stats=STATS)
    assert messages() == ["WATCHDOG=1"]  # waking at the deadline finds the heartbeat due

    dead, _, _, clock = make(("/nonexistent/notify.sock", None), watchdog_usec=4_000_000)
    dead.turn(queued=0, running=0, pool_stats=STATS)  # the send fails: still the next one is 2 s away,
    assert dead.next_turn() == pytest.approx(clock.now + 2)  # not now (that would spin the loop)

    quiet, metrics, _, clock = make(systemd)  # no watchdog: only /healthz's stall limit
    quiet.turn(queued=0, running=0, pool_stats=STATS)
    assert quiet.next_turn() == pytest.approx(clock.now + metrics.stall_seconds / TURNS_PER_STALL)
    assert not math.isinf(quiet.next_turn())


def test_the_status_line_says_when_intake_is_paused_and_why(systemd, tmp_path):
    import errno

    from daemon.spool.space import Space

    r, metrics, messages, _ = make(systemd)
    space = Space({"outbox": tmp_path, "state": tmp_path})
    space.mark(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x")), "outbox")
    r.turn(queued=1, running=0, pool_stats=STATS, space=space)
    assert messages() == [f"STATUS=paused, the outbox folder {tmp_path} is full: no space left on device; "
                          "1 queued, 0 converting, 0 done, 0 failed; workers 2/2 ready"]
    assert metrics.health()[1]["status"] == "paused"
    space.full.clear()
    r.turn(queued=1, running=0, pool_stats=STATS, space=space)
    assert messages() == ["STATUS=1 queued, 0 converting, 0 done, 0 failed; workers 2/2 ready"]


class Heard:
    def __init__(self, fail: bool = False):
        self.events, self.fail = [], fail

    def job_event(self, kind, info):
        self.events.append((kind, info))
        if self.fail:
            raise RuntimeError("observer bug")


def test_resynth_lines_carry_the_voice_and_observers_hear_every_moment(systemd, tmp_path):
    heard, broken = Heard(), Heard(fail=True)
    with capture_logs() as logs:
        r, *_ = make(systemd, observers=[broken, heard], engine="resynth", outbox=tmp_path / "out",
                     failed_dir=tmp_path / "failed")
        rep = r.job(J("j1", "baya/talk.wav", voice="baya"))
        rep.queued()
        rep.started()
        rep.progress("chunk", 12.5, chunks_done=3, chunks_total=8)
        rep.done("baya/talk.wav", 2.0, {"audio_seconds": 4.0, "chunks": 8, "worker_pids": [7]})
        r.job(J("j2", "bad.wav")).failed("bad.wav", "decode", "The input is empty.")
    lines = [e for e in logs if e["event"].startswith("job.")]
    assert [e["voice"] for e in lines] == ["baya", "baya", "baya", "kseniya"]  # the folder's, then the default
    assert [k for k, _ in heard.events] == ["queued", "started", "progress", "done", "failed"]
    progress, done, failed = (info for _, info in heard.events[2:])
    assert (progress["chunks_done"], progress["chunks_total"], progress["audio_seconds_done"]) == (3, 8, 12.5)
    assert done["output"] == str(tmp_path / "out" / "baya" / "talk.wav") and done["voice"] == "baya"
    assert (done["audio_seconds"], done["wall_seconds"], done["reason"]) == (4.0, 2.0, None)
    assert failed["reason"] == "The input is empty." and failed["failed"] == str(tmp_path / "failed" / "bad.wav")
    assert failed["error_report"].endswith("bad.wav.error.json")
    # the observer that raised was logged once per moment, and the others still heard everything
    assert len([e for e in logs if e["event"] == "observer.error"]) == 5
