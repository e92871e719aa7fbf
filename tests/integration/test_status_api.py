"""The status page and /api/status on the real metrics HTTP server, over a real spool on disk.

/api/status says everything `voice-daemon status --json` says (the same reader) plus what only
the running daemon knows: the live board (fed the supervisor's job moments), the workers and
the metrics' figures.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from daemon.metrics import Metrics
from daemon.settings import Settings
from daemon.spool import Spool, collect_status
from daemon.web import LiveBoard, StatusPage
from daemon.web.server import serve

POOL = {"workers": 2, "alive": 2, "ready": 1, "busy": 1, "starting": 1, "restarts": 3}


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


@pytest.fixture
def served(tmp_path):
    settings = Settings(inbox=tmp_path / "in", outbox=tmp_path / "out", failed_dir=tmp_path / "failed",
                        state_dir=tmp_path / "state", engine="shift", workers=2)
    spool = Spool(settings)
    spool.ensure_dirs()
    metrics = Metrics(settings)
    live = LiveBoard()
    page = StatusPage(settings, live, metrics=metrics, pool_stats=lambda: POOL)
    server = serve(metrics, "127.0.0.1:0", routes=page.routes())
    yield settings, spool, live, metrics, server
    server.close()


def test_api_status_is_status_json_plus_what_the_daemon_knows(served):
    settings, spool, live, metrics, server = served
    (settings.inbox / "waiting.wav").write_bytes(b"RIFF")
    bad = spool.claim(_drop(settings, "bad.mp3"))
    spool.fail(bad, "The input is empty (0 bytes).", "decode")
    job = spool.claim(_drop(settings, "talk.wav"))
    spool.start(job)
    live.job_event("started", {"job_id": job.id, "input": job.rel, "voice": None, "attempts": 1})
    live.job_event("progress", {"job_id": job.id, "stage": "chunk", "chunks_done": 3, "chunks_total": 8,
                                "audio_seconds_done": 90.0, "audio_seconds_total": 240.0})
    metrics.job_done(30.0, 2.0)

    code, ctype, body = get(server.url + "/api/status")
    assert code == 200 and ctype.startswith("application/json")
    st = json.loads(body)
    on_disk = json.loads(json.dumps(collect_status(settings), default=str))
    for key, value in on_disk.items():  # the same data as `voice-daemon status --json`
        assert st[key] == value, key
    (now,) = st["live"]["converting"]
    assert (now["input"], now["chunks_done"], now["chunks_total"], now["stage"]) == ("talk.wav", 3, 8, "converting")
    assert st["workers"] == {"configured": 2, "alive": 2, "ready": 1, "busy": 1, "warming": 1, "restarts": 3}
    assert st["metrics"]["jobs"]["done"] == 1 and st["metrics"]["audio_seconds_total"] == 30.0
    (failed,) = st["latest_failed"]
    assert failed["input"] == "bad.mp3" and failed["reason"] == "The input is empty (0 bytes)."

    live.job_event("done", {"job_id": job.id, "input": job.rel, "output": "/out/talk.wav", "audio_seconds": 240.0})
    st = json.loads(get(server.url + "/api/status")[2])
    assert st["live"]["converting"] == [] and st["live"]["recent"][0]["state"] == "done"


def test_the_page_is_served_and_writes_names_as_text(served):
    *_, server = served
    code, ctype, body = get(server.url + "/")
    page = body.decode()
    assert code == 200 and ctype.startswith("text/html")
    assert 'name="viewport"' in page and "/api/status" in page
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page  # file names are never markup
    assert get(server.url + "/metrics")[0] == 200  # the scrape endpoint is still there


def test_a_failing_page_answers_500_and_the_server_stays_up(served):
    settings, _spool, _live, _metrics, server = served
    server.route("/api/status", lambda: 1 / 0)
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as exc:
        get(server.url + "/api/status")
    assert exc.value.code == 500
    assert get(server.url + "/metrics")[0] == 200  # the same server still answers


def _drop(settings, name):
    p = settings.inbox / name
    p.write_bytes(b"x")
    return p
