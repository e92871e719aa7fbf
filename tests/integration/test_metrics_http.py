"""The real metrics HTTP server on an ephemeral local port, scraped with urllib."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest

from daemon.metrics import Metrics
from daemon.web.server import MetricsError, serve
from helpers import wait_until


class Clock:
    def __init__(self, t: float = 500.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


@pytest.fixture
def served():
    clock = Clock()
    m = Metrics(stall_seconds=30, clock=clock)
    server = serve(m, "127.0.0.1:0")
    yield m, server, clock
    server.close()
    assert not server.thread.is_alive(), "close() must join the server thread"


def test_scrape_sees_counters_move(served):
    m, server, _clock = served
    code, ctype, text = get(server.url + "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    assert sample(text, 'voice_daemon_jobs_total{outcome="done"}') == 0
    m.job_done(30.0, 4.0)
    m.job_retried()
    m.set_queue(5)
    m.worker_restarted()
    _code, _ctype, text = get(server.url + "/metrics")
    assert sample(text, 'voice_daemon_jobs_total{outcome="done"}') == 1
    assert sample(text, 'voice_daemon_jobs_total{outcome="retried"}') == 1
    assert sample(text, "voice_daemon_audio_seconds_total") == 30
    assert sample(text, "voice_daemon_job_duration_seconds_count") == 1
    assert sample(text, "voice_daemon_queue_depth") == 5
    assert sample(text, "voice_daemon_worker_restarts_total") == 1


def test_openmetrics_on_request(served):
    _m, server, _clock = served
    req = urllib.request.Request(server.url + "/metrics",
                                 headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert r.read().decode().rstrip().endswith("# EOF")


def test_healthz_goes_503_when_the_loop_stops_ticking(served):
    m, server, clock = served
    code, ctype, body = get(server.url + "/healthz")
    assert code == 503 and json.loads(body)["status"] == "starting"
    m.loop_tick()
    code, ctype, body = get(server.url + "/healthz")
    assert code == 200 and ctype == "application/json"
    assert json.loads(body)["status"] == "ok"
    clock.t += 31  # the loop hangs: no tick for longer than stall_seconds
    code, _ctype, body = get(server.url + "/healthz")
    health = json.loads(body)
    assert code == 503 and health["status"] == "stalled" and health["loop_tick_age_seconds"] == 31
    _code, _ctype, text = get(server.url + "/metrics")
    assert sample(text, "voice_daemon_healthy") == 0
    m.loop_tick()
    assert get(server.url + "/healthz")[0] == 200


def test_healthz_goes_503_when_workers_are_stuck():
    state = {"ok": True}
    m = Metrics(workers_ok=lambda: state["ok"])
    server = serve(m, "127.0.0.1:0")
    try:
        m.loop_tick()
        assert get(server.url + "/healthz")[0] == 200
        state["ok"] = False
        code, _ctype, body = get(server.url + "/healthz")
        assert code == 503 and "the workers check failed" in json.loads(body)["problems"]
    finally:
        server.close()


def test_unknown_path_is_404(served):
    _m, server, _clock = served
    assert get(server.url + "/nope")[0] == 404
    assert get(server.url + "/")[0] == 200


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.fail("no IPv6 in this Python")
    m = Metrics()
    try:
        server = serve(m, "[::1]:0")
    except MetricsError as exc:
        pytest.skip(f"IPv6 loopback not configured here: {exc}")
    try:
        assert server.url.startswith("http://[::1]:")
        assert get(server.url + "/metrics")[0] == 200
    finally:
        server.close()


def test_address_in_use_is_a_clear_error():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(MetricsError, match=f"127.0.0.1:{port}: cannot listen"):
            serve(Metrics(), f"127.0.0.1:{port}")
    finally:
        holder.close()


def test_close_stops_serving_and_leaves_no_thread():
    before = {t.ident for t in threading.enumerate()}
    m = Metrics()
    server = serve(m, "127.0.0.1:0")
    url = server.url
    assert get(url + "/metrics")[0] == 200
    server.close()
    assert {t.ident for t in threading.enumerate() if t.is_alive()} <= before
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/metrics", timeout=2)


def test_parallel_scrapes_while_the_loop_updates(served):
    m, server, _clock = served
    errors = []

    def scrape():
        for _ in range(20):
            code = get(server.url + "/metrics")[0]
            if code != 200:
                errors.append(code)

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(500):
        m.job_done(1.0, 0.1)
        m.loop_tick()
    for t in threads:
        t.join()
    assert errors == []
    _code, _ctype, text = get(server.url + "/metrics")
    assert sample(text, 'voice_daemon_jobs_total{outcome="done"}') == 500


def test_idle_connections_are_closed_and_their_threads_end():
    """20 clients that connect and say nothing used to hold 20 threads for good."""
    from daemon.web.server import IDLE_TIMEOUT_SECONDS

    assert 1 <= IDLE_TIMEOUT_SECONDS <= 60
    m = Metrics(stall_seconds=30)
    server = serve(m, "127.0.0.1:0", idle_timeout=1.0)
    base = threading.active_count()
    clients = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(20)]
    try:
        for c in clients:
            assert c.recv(1) == b""  # the server closed it (without the timeout: TimeoutError after 30 s)
        wait_until(lambda: threading.active_count() <= base, 30, message="the connections' threads to end")
        assert get(server.url + "/healthz")[0] in (200, 503)  # still serving
    finally:
        for c in clients:
            c.close()
        server.close()
