"""Issue 11's faults where the supervisor decides: a commit that cannot succeed, a blocked output
path, a full state disk, jobs in flight at an unclean stop.  A real supervisor loop, real spool on
real folders (a real small tmpfs for the full disk), a real watcher and a real spawn pool; only the
job's orchestration is scripted, as in test_watcher_supervisor.py."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
from test_watcher_supervisor import Running, drop, scripted_run_job

from daemon.settings import Settings
from daemon.spool import Spool
from helpers import wait_until
from helpers.disks import fill, need_root, tmpfs


@pytest.fixture
def settings(tmp_path):
    return Settings(inbox=tmp_path / "inbox", outbox=tmp_path / "outbox", failed_dir=tmp_path / "failed",
                    state_dir=tmp_path / "state", settle_seconds=0.2, rescan_seconds=5, max_attempts=2,
                    retry_backoff_seconds=0.1, shutdown_grace_seconds=0.3, workers=2)


def error(settings, rel: str) -> dict:
    return json.loads((Path(settings.failed_dir) / (rel + ".error.json")).read_text())


def jobs_in(settings, folder: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in (Path(settings.state_dir) / folder).glob("*/job.json")]


def test_a_commit_that_cannot_succeed_fails_the_job_with_its_reason(settings, speech_dir):
    """Fault 5: a commit that failed in `committing` left the job there for good (and every restart
    tried again).  Here the outbox folder turns immutable between the write and the publish."""
    need_root()
    locked = Path(settings.outbox) / "locked"

    def run_job(submit, input, output, work_dir, **kw):
        fig = scripted_run_job(submit, input, output, work_dir, **kw)
        subprocess.run(["chattr", "+i", str(Path(output).parent)], check=True)  # even root cannot link now
        return fig

    run = Running(settings, run_job=run_job)
    try:
        drop(speech_dir, settings, "locked/x.wav")
        wait_until(lambda: (Path(settings.failed_dir) / "locked" / "x.wav.error.json").exists(), 60)
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=False)
        assert run.stop() == 0
    report = error(settings, "locked/x.wav")
    assert report["stage"] == "commit" and report["attempts"] == 1
    assert "could not be published as 'locked/x.wav'" in report["cause"] and "not permitted" in report["cause"]
    assert list((Path(settings.state_dir) / "work").iterdir()) == []
    assert list(locked.iterdir()) == []  # nothing reached the outbox: the output is moved in only by the commit
    Spool(settings).recover()
    assert list(locked.iterdir()) == []


def test_a_blocked_output_path_fails_at_once_naming_the_file(settings, speech_dir):
    """Fault 6: outbox/z.wav is a file, inbox/z.wav/inner.wav arrives: it retried for ever with
    attempts 0, because the attempt was counted after the mkdir."""
    (Path(settings.outbox)).mkdir(parents=True, exist_ok=True)
    (Path(settings.outbox) / "z.wav").write_bytes(b"an earlier output")
    run = Running(settings)
    try:
        drop(speech_dir, settings, "z.wav/inner.wav")
        wait_until(lambda: (Path(settings.failed_dir) / "z.wav" / "inner.wav.error.json").exists(), 60)
    finally:
        assert run.stop() == 0
    report = error(settings, "z.wav/inner.wav")
    assert report["attempts"] == 1 and report["stage"] == "output" and report["history"] == []
    assert f"{Path(settings.outbox) / 'z.wav'} is a file" in report["cause"]
    assert (Path(settings.outbox) / "z.wav").read_bytes() == b"an earlier output"


def test_a_full_state_disk_holds_the_files_that_do_not_fit_and_takes_them_once_there_is_room(settings, speech_dir):
    """Fault 7 (the state folder): files whose work files do not fit what the state folder has free
    stay in the inbox, /healthz says which waits for how much in which folder, and they are taken
    once space returns; nothing fails."""
    state = Path(settings.state_dir)
    with tmpfs(state, "4m"):
        (state / "marks").mkdir()
        run = Running(settings)
        try:
            filler = fill(state)
            for name in ("a.wav", "b.wav"):
                drop(speech_dir, settings, name)
            wait_until(lambda: sorted(w.input for w in run.sup.room.waits.values()) == ["a.wav", "b.wav"], 60)
            metrics = run.sup.report.metrics
            wait_until(lambda: "2 waiting for space" in run.sup.report._last_status, 30)
            ok, health = metrics.health()
            assert not ok and health["status"] == "waiting_for_space"
            waits = {w["input"]: w for w in health["waiting_for_space"]}
            assert waits["a.wav"]["folder"] == "state" and waits["a.wav"]["path"] == str(state)
            assert waits["a.wav"]["needs_bytes"] > waits["a.wav"]["free_bytes"] == 0
            assert any(p.startswith("a.wav waits for space: its work files need about") for p in health["problems"])
            assert json.loads((state / "space.json").read_text())["waiting_for_space"][0]["folder"] == "state"
            assert sorted(p.name for p in Path(settings.inbox).iterdir()) == ["a.wav", "b.wav"]  # not taken
            filler.unlink()
            wait_until(lambda: sorted(p.name for p in Path(settings.outbox).iterdir()) == ["a.wav", "b.wav"], 90)
            wait_until(lambda: metrics.health()[0], 30)
            assert not run.sup.room.waits
        finally:
            assert run.stop() == 0
        assert list(Path(settings.failed_dir).iterdir()) == [] and list((state / "work").iterdir()) == []
        assert sorted(j["attempts"] for j in jobs_in(settings, "done")) == [1, 1]


def test_jobs_in_flight_at_an_unclean_stop_run_one_at_a_time_uncharged(settings, speech_dir):
    """Fault 3: after a kill -9 with three jobs in flight none is charged, and they run alone (so the
    next death names the culprit); then new files run side by side again."""
    sp = Spool(settings)
    sp.ensure_dirs()
    for name in ("s1.wav", "s2.wav", "s3.wav"):
        drop(speech_dir, settings, name)
        job = sp.claim(Path(settings.inbox) / name)
        sp.start(job).write_bytes(b"half")  # the daemon died here, three attempts in flight
    lock, now, most = threading.Lock(), [0], [0]

    def run_job(submit, input, output, work_dir, **kw):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        try:
            if Path(input).name.startswith("n"):  # the new files wait for each other: two at once
                wait_until(lambda: now[0] >= 2 or most[0] >= 2, 30)
            return scripted_run_job(submit, input, output, work_dir, **kw)
        finally:
            with lock:
                now[0] -= 1

    run = Running(settings, resume=True, run_job=run_job)
    try:
        wait_until(lambda: len(list(Path(settings.outbox).iterdir())) == 3, 60)
        assert most[0] == 1  # the suspects ran alone
        for name in ("n1.wav", "n2.wav"):
            drop(speech_dir, settings, name)
        wait_until(lambda: len(list(Path(settings.outbox).iterdir())) == 5, 60)
    finally:
        assert run.stop() == 0
    assert most[0] == 2
    done = {j["rel"]: j for j in jobs_in(settings, "done")}
    for name in ("s1.wav", "s2.wav", "s3.wav"):
        assert done[name]["attempts"] == 1 and done[name]["suspect"]
        (stop,) = done[name]["history"]
        assert stop["stage"] == "interrupted" and stop["charged"] is False
    assert not done["n1.wav"]["suspect"] and done["n1.wav"]["history"] == []
