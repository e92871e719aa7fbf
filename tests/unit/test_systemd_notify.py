"""The sd_notify protocol against a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from structlog.testing import capture_logs

from daemon.systemd import Notifier


@pytest.fixture
def listener(tmp_path):
    """A bound AF_UNIX datagram socket, as systemd binds NOTIFY_SOCKET; yields (address, recv)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), lambda: sock.recv(4096).decode()
    sock.close()


def test_messages_arrive_as_systemd_expects(listener):
    address, recv = listener
    n = Notifier({"NOTIFY_SOCKET": address})
    assert n.enabled
    assert n.ready()
    assert recv() == "READY=1"
    assert n.status("2 queued, 1 converting")
    assert recv() == "STATUS=2 queued, 1 converting"
    assert n.watchdog()
    assert recv() == "WATCHDOG=1"
    assert n.stopping("stopping: 1 job finishing")
    assert recv() == "STOPPING=1\nSTATUS=stopping: 1 job finishing"
    assert n.extend_timeout(12.5)
    assert recv() == "EXTEND_TIMEOUT_USEC=12500000"
    assert n.ready(status="ready: 2 workers")
    assert recv() == "READY=1\nSTATUS=ready: 2 workers"
    n.close()


def test_status_stays_one_line(listener):
    address, recv = listener
    n = Notifier({"NOTIFY_SOCKET": address})
    n.status("first\nREADY=1\tsecond")
    # a newline in the text must not smuggle in a second field
    assert recv() == "STATUS=first READY=1 second"
    n.close()


def test_reads_the_environment_at_construction(listener, monkeypatch):
    address, recv = listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = Notifier()
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert n.enabled and n.watchdog_interval() == 10.0
    assert n.ready()
    assert recv() == "READY=1"
    n.close()


def test_abstract_socket():
    name = f"voice-daemon-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)  # abstract namespace: no file anywhere
    sock.settimeout(5)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready() and n.watchdog()
        assert sock.recv(4096) == b"READY=1"
        assert sock.recv(4096) == b"WATCHDOG=1"
        n.close()
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_quiet_no_op():
    n = Notifier({})
    assert not n.enabled
    with capture_logs() as logs:
        assert n.ready() is False
        assert n.status("x") is False
        assert n.watchdog() is False
        assert n.heartbeat() is False
        assert n.stopping() is False
        assert n.extend_timeout(5) is False
    assert n.watchdog_interval() is None
    assert logs == []
    n.close()


def test_a_dead_socket_is_logged_once_and_never_raises(tmp_path):
    path = tmp_path / "gone.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()  # the file stays, nobody listens: ECONNREFUSED
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    with capture_logs() as logs:
        assert n.ready() is False
        assert n.watchdog() is False
        assert n.status("still fine") is False
    failures = [e for e in logs if e["event"] == "systemd.notify_failed"]
    assert len(failures) == 1
    assert failures[0]["socket"] == str(path) and "ConnectionRefused" in failures[0]["error"]
    n.close()


def test_missing_socket_path_is_not_fatal(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "never-there.sock")})
    assert n.enabled
    with capture_logs():
        assert n.ready() is False


def test_unsupported_address_disables_notify():
    with capture_logs() as logs:
        n = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled and n.ready() is False
    assert [e["event"] for e in logs] == ["systemd.notify_unsupported"]


@pytest.mark.parametrize("env, expected", [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval_is_half_of_watchdog_usec(env, expected):
    n = Notifier({"NOTIFY_SOCKET": "/run/systemd/notify", **env})
    assert n.watchdog_interval() == expected


def test_watchdog_needs_a_socket_to_matter():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None


def test_heartbeat_sends_only_when_due(listener):
    address, recv = listener
    now = [100.0]
    n = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"}, clock=lambda: now[0])
    assert n.heartbeat() is True  # the first one goes at once
    assert recv() == "WATCHDOG=1"
    now[0] += 1.9
    assert n.heartbeat() is False  # interval is 2 s
    now[0] += 0.1
    assert n.heartbeat() is True
    assert recv() == "WATCHDOG=1"
    n.close()


def test_heartbeat_without_watchdog_sends_nothing(listener):
    address, _recv = listener
    n = Notifier({"NOTIFY_SOCKET": address})
    assert n.heartbeat() is False
    n.close()


def test_reloading_carries_the_monotonic_time_systemd_asks_for(listener):
    import time

    address, recv = listener
    n = Notifier({"NOTIFY_SOCKET": address})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading("reloading: new workers loading")
    lines = recv().split("\n")
    assert lines[0] == "RELOADING=1" and lines[2] == "STATUS=reloading: new workers loading"
    assert lines[1].startswith("MONOTONIC_USEC=") and int(lines[1].split("=")[1]) >= before
