"""Job hooks with real commands (/bin/sh) and a real HTTP receiver on 127.0.0.1.

A hook that succeeds gets the job's JSON on stdin (or as a POST); one that fails, one
that hangs past its timeout and a webhook nobody answers are each logged, and none of
them holds up the caller (the supervisor's loop) or the hooks after it.
"""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from daemon.hooks import Hooks, payload
from daemon.settings import Settings
from helpers import wait_until
from helpers.webhook import Receiver

DONE = {"job_id": "20260101T000000-abcd", "input": "talk.wav", "output": "/srv/out/talk.wav",
        "sidecar": None, "engine": "resynth", "voice": "aidar", "audio_seconds": 12.5, "wall_seconds": 1.25,
        "rtf": 0.1, "chunks": 1, "attempts": 1, "reason": None}
FAILED = {"job_id": "20260101T000001-beef", "input": "bad.mp3", "output": None, "failed": "/srv/failed/bad.mp3",
          "error_report": "/srv/failed/bad.mp3.error.json", "engine": "shift", "voice": None, "attempts": 1,
          "stage": "decode", "reason": "The input is empty (0 bytes)."}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def events(logs, name):
    return [e for e in logs if e["event"] == name]


def test_the_commands_get_the_jobs_json_and_the_webhook_its_post(tmp_path, receiver):
    seen = tmp_path / "seen"
    hooks = Hooks(on_done=f"cat > {seen}.done", on_failed=f"cat > {seen}.failed", webhook_url=receiver.url,
                  timeout=20).start()
    try:
        hooks.job_event("started", DONE)  # only outcomes call hooks
        hooks.job_event("done", DONE)
        hooks.job_event("failed", FAILED)
        wait_until(lambda: len(receiver.bodies) == 2 and (tmp_path / "seen.failed").exists()
                   and (tmp_path / "seen.done").exists(), 30)
    finally:
        hooks.close()
    done = json.loads((tmp_path / "seen.done").read_text())
    assert done["event"] == "done" and done["output"] == "/srv/out/talk.wav" and done["voice"] == "aidar"
    assert (done["audio_seconds"], done["wall_seconds"], done["input"]) == (12.5, 1.25, "talk.wav")
    failed = json.loads((tmp_path / "seen.failed").read_text())
    assert failed["reason"] == "The input is empty (0 bytes)." and failed["failed"] == "/srv/failed/bad.mp3"
    assert sorted(b["event"] for b in receiver.bodies) == ["done", "failed"]
    assert receiver.headers[0]["Content-Type"] == "application/json"


def test_a_failing_and_a_hanging_hook_are_logged_and_hold_nothing_up(tmp_path, receiver):
    marker = tmp_path / "hung-finished"
    with capture_logs() as logs:
        hooks = Hooks(on_done=f"sleep 60; touch {marker}", on_failed="echo 'no such printer' >&2; exit 3",
                      webhook_url=receiver.url, timeout=3.0, threads=2).start()
        try:
            hooks.job_event("done", DONE)
            hooks.job_event("done", DONE)  # a second hanging command, queued behind the first
            hooks.job_event("failed", FAILED)
            # Had job_event waited for a command, the hung one would have been killed (and logged)
            # by now, 3 s later; it only queued the calls.
            assert not [e for e in events(logs, "hook.failed") if e["hook"] == "on_done"]
            # The webhook calls arrive while a command hangs: the other thread goes on.
            wait_until(lambda: len(receiver.bodies) == 3, 30)
            wait_until(lambda: len(events(logs, "hook.failed")) == 3, 60, message=str(logs))
        finally:
            hooks.close(grace=0)
    failures = events(logs, "hook.failed")
    hung = [e for e in failures if e["hook"] == "on_done"]
    assert len(hung) == 2 and all("still running after 3 s: killed" in e["error"] for e in hung)
    (bad,) = [e for e in failures if e["hook"] == "on_failed"]
    assert bad["error"] == "exit status 3" and "no such printer" in bad["output"]
    assert not marker.exists(), "the hung hook's shell and its sleep were both killed"


def test_a_webhook_nobody_answers_is_logged(tmp_path):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with capture_logs() as logs:
        hooks = Hooks(webhook_url=f"http://127.0.0.1:{port}/x", timeout=5).start()
        try:
            hooks.job_event("done", DONE)
            wait_until(lambda: events(logs, "hook.failed"), 30)
        finally:
            hooks.close()
    (e,) = events(logs, "hook.failed")
    assert e["hook"] == "webhook" and "refused" in e["error"].lower()


def test_close_kills_what_still_runs(tmp_path):
    hooks = Hooks(on_done=f"sleep 60; touch {tmp_path / 'late'}", timeout=60).start()
    hooks.job_event("done", DONE)
    wait_until(lambda: hooks._running, 20)
    hooks.close(grace=0.5)
    assert not hooks._running and not (tmp_path / "late").exists()


def test_only_configured_hooks_are_built_and_the_payload_names_every_field():
    assert Hooks.from_settings(Settings()) is None
    body = payload("done", DONE)
    for key in ("event", "job_id", "input", "output", "sidecar", "voice", "audio_seconds", "wall_seconds",
                "reason", "finished_at"):
        assert key in body
    assert "failed" not in body  # only the fields the outcome has, besides output and reason
