"""Metrics: counters move, gauges read at scrape time, health follows an injected clock."""

from __future__ import annotations

import math

import pytest
from prometheus_client import REGISTRY, generate_latest

from daemon.metrics import Metrics
from daemon.settings import Settings


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def value(m: Metrics, name: str, **labels) -> float | None:
    return m.registry.get_sample_value(name, labels or None)


def test_counters_and_gauges_move():
    m = Metrics(Settings(workers=3))
    assert value(m, "voice_daemon_jobs_total", outcome="done") == 0  # exported before the first job
    m.job_done(12.5, 3.0)
    m.job_done(7.5, 0.7)
    m.job_failed()
    m.job_retried()
    m.job_retried()
    m.set_queue(4)
    m.set_in_flight(2)
    m.worker_restarted()
    m.worker_restarted(2)
    m.worker_restarted(0)
    assert value(m, "voice_daemon_jobs_total", outcome="done") == 2
    assert value(m, "voice_daemon_jobs_total", outcome="failed") == 1
    assert value(m, "voice_daemon_jobs_total", outcome="retried") == 2
    assert value(m, "voice_daemon_audio_seconds_total") == 20.0
    assert value(m, "voice_daemon_job_duration_seconds_count") == 2
    assert value(m, "voice_daemon_job_duration_seconds_sum") == pytest.approx(3.7)
    assert value(m, "voice_daemon_job_duration_seconds_bucket", le="1.0") == 1
    assert value(m, "voice_daemon_queue_depth") == 4
    assert value(m, "voice_daemon_jobs_in_flight") == 2
    assert value(m, "voice_daemon_worker_restarts_total") == 3
    assert value(m, "voice_daemon_workers_configured") == 3


def test_own_registry_not_the_global_one():
    a, b = Metrics(), Metrics()  # two instances must not collide
    a.job_failed()
    assert value(a, "voice_daemon_jobs_total", outcome="failed") == 1
    assert value(b, "voice_daemon_jobs_total", outcome="failed") == 0
    assert REGISTRY.get_sample_value("voice_daemon_jobs_total", {"outcome": "failed"}) is None


def test_watcher_age_is_computed_at_scrape_time():
    clock = Clock()
    m = Metrics(clock=clock)
    clock.t += 7
    assert value(m, "voice_daemon_watcher_activity_age_seconds") == 7  # since start until first event
    m.watcher_seen()
    clock.t += 2.5
    assert value(m, "voice_daemon_watcher_activity_age_seconds") == 2.5
    assert math.isnan(value(m, "voice_daemon_loop_tick_age_seconds"))
    m.loop_tick()
    clock.t += 1
    assert value(m, "voice_daemon_loop_tick_age_seconds") == 1


def test_health_follows_the_loop():
    clock = Clock()
    m = Metrics(stall_seconds=30, clock=clock)
    ok, body = m.health()
    assert not ok and body["status"] == "starting"  # workers still warming up
    m.loop_tick()
    ok, body = m.health()
    assert ok and body["status"] == "ok" and body["problems"] == []
    clock.t += 30
    assert m.health()[0]  # exactly at the limit: still fine
    clock.t += 0.5
    ok, body = m.health()
    assert not ok and body["status"] == "stalled"
    assert "not run for 30 s" in body["problems"][0]
    assert value(m, "voice_daemon_healthy") == 0
    m.loop_tick()
    assert m.health()[0] and value(m, "voice_daemon_healthy") == 1


def test_health_follows_the_workers_callback():
    state = {"ok": True}
    m = Metrics(workers_ok=lambda: state["ok"])
    m.loop_tick()
    assert m.health()[0]
    state["ok"] = False
    ok, body = m.health()
    assert not ok and "the workers check failed" in body["problems"]


def test_a_raising_workers_callback_is_unhealthy_not_fatal():
    def boom():
        raise RuntimeError("pool gone")

    m = Metrics(workers_ok=boom)
    m.loop_tick()
    ok, body = m.health()
    assert not ok and any("pool gone" in p for p in body["problems"])


def test_no_ready_worker_for_too_long_is_unhealthy():
    clock = Clock()
    m = Metrics(stall_seconds=10, clock=clock)
    m.loop_tick()
    m.set_workers(alive=2, ready=2)
    m.set_workers(alive=1, ready=0)  # one respawning, the other busy-dead
    clock.t += 5
    m.loop_tick()
    assert m.health()[0]  # a short gap while a worker respawns is fine
    clock.t += 6
    m.loop_tick()
    ok, body = m.health()
    assert not ok and "no worker has been ready" in body["problems"][0]
    m.set_workers(alive=2, ready=1)
    assert m.health()[0]


def test_observe_pool_takes_figures_and_restart_deltas():
    m = Metrics()
    m.observe_pool({"workers": 2, "alive": 2, "ready": 1, "busy": 1, "restarts": 0})
    m.observe_pool({"workers": 2, "alive": 2, "ready": 2, "busy": 0, "restarts": 3})
    m.observe_pool({"workers": 2, "alive": 2, "ready": 2, "busy": 0, "restarts": 3})
    assert value(m, "voice_daemon_worker_restarts_total") == 3
    assert value(m, "voice_daemon_workers_ready") == 2
    assert value(m, "voice_daemon_workers_alive") == 2
    assert value(m, "voice_daemon_workers_configured") == 2


def test_health_body_carries_the_figures():
    m = Metrics()
    m.loop_tick()
    m.set_queue(3)
    m.set_in_flight(1)
    m.job_done(1.0, 1.0)
    _ok, body = m.health()
    assert body["queue_depth"] == 3 and body["jobs_in_flight"] == 1
    assert body["jobs"] == {"done": 1, "failed": 0, "retried": 0}


def test_exposition_has_no_created_series_and_names_the_build():
    text = generate_latest(Metrics(Settings(engine="shift")).registry).decode()
    assert "_created" not in text
    assert 'voice_daemon_build_info{engine="shift",version=' in text
    assert "process_cpu_seconds_total" in text


def test_a_full_folder_pauses_health_and_shows_in_the_disk_figures():
    """Issue 11, fault 7: a full output or state folder is a 503 (status "paused") saying which and why."""
    m = Metrics(Settings())
    m.loop_tick()
    m.observe_space({"outbox": 0, "state": 5_000_000}, {"outbox": "the outbox folder /o is full: no space left"})
    ok, body = m.health()
    assert not ok and body["status"] == "paused"
    assert body["problems"] == ["intake paused: the outbox folder /o is full: no space left"]
    assert body["disk_free_bytes"] == {"outbox": 0, "state": 5_000_000}
    assert value(m, "voice_daemon_intake_paused") == 1 and value(m, "voice_daemon_healthy") == 0
    assert value(m, "voice_daemon_disk_full", folder="outbox") == 1
    assert value(m, "voice_daemon_disk_full", folder="state") == 0
    assert value(m, "voice_daemon_disk_free_bytes", folder="state") == 5_000_000
    m.observe_space({"outbox": 9_000_000, "state": 5_000_000}, {})
    assert m.health()[0] and value(m, "voice_daemon_intake_paused") == 0
    assert value(m, "voice_daemon_disk_full", folder="outbox") == 0


def test_the_throttle_holds_back_beyond_its_burst_and_says_how_many_it_held():
    from daemon.log import Throttle

    now = [0.0]
    t = Throttle(burst=3, window=60.0, clock=lambda: now[0])
    assert [t.allow() for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    now[0] = 59.9
    assert t.allow() == (False, 0)
    now[0] = 60.0  # a new window: the first one logged carries the three held back
    assert t.allow() == (True, 3)
    assert t.allow() == (True, 0)
