"""`voice-daemon retry`: failed inputs go back through the inbox, their error reports go away, and a
name that is not a failed input is a clear error.  The real command on a real spool's folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_spool import drop, make_settings

from daemon.engines import capabilities
from daemon.spool import Spool, collect_status

ROOT = Path(__file__).resolve().parents[2]


def failed_spool(tmp_path: Path, *rels: str) -> Spool:
    s = make_settings(tmp_path)
    sp = Spool(s, capabilities=capabilities(s))
    sp.ensure_dirs()
    for rel in rels:
        sp.fail(sp.claim(drop(sp, rel)), "could not decode", "decode")
    return sp


def retry(sp: Spool, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update(PYTHONPATH=str(ROOT), VOICE_DAEMON_INBOX=str(sp.inbox), VOICE_DAEMON_OUTBOX=str(sp.outbox),
               VOICE_DAEMON_FAILED_DIR=str(sp.failed_dir), VOICE_DAEMON_STATE_DIR=str(sp.state))
    return subprocess.run([sys.executable, "-m", "daemon", "retry", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def test_a_failed_input_goes_back_to_its_place_in_the_inbox(tmp_path):
    sp = failed_spool(tmp_path, "aidar/a.wav", "b.wav")
    assert (sp.failed_dir / "aidar" / "a.wav.error.json").is_file()
    proc = retry(sp, str(sp.failed_dir / "aidar" / "a.wav"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (sp.inbox / "aidar" / "a.wav").read_bytes() == b"RIFF-fake-audio"
    assert not (sp.failed_dir / "aidar" / "a.wav").exists()
    assert not (sp.failed_dir / "aidar" / "a.wav.error.json").exists()
    assert f"-> {sp.inbox / 'aidar' / 'a.wav'}" in proc.stdout
    st = collect_status(sp.s)
    assert st["failed"] == 1 and [f["input"] for f in st["latest_failed"]] == ["b.wav"]
    assert st["inbox_waiting"] == 1  # the watcher takes it again


def test_names_as_status_lists_them_and_the_error_report_itself(tmp_path):
    sp = failed_spool(tmp_path, "x.wav", "y.wav")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = retry(sp, "x.wav", str(sp.failed_dir / "y.wav.error.json"), cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in sp.inbox.iterdir()) == ["x.wav", "y.wav"]
    assert list(sp.failed_dir.iterdir()) == []


def test_wrong_names_are_clear_errors_and_the_others_are_still_retried(tmp_path):
    sp = failed_spool(tmp_path, "ok.wav")
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"x")
    proc = retry(sp, "nope.wav", str(outside), "ok.wav", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == f"voice-daemon retry: nope.wav: no such file in the failed folder {sp.failed_dir} " \
                       "(`voice-daemon status` lists them)"
    assert lines[1] == f"voice-daemon retry: {outside}: not a file in the failed folder {sp.failed_dir}"
    assert outside.exists() and (sp.inbox / "ok.wav").exists()
    assert retry(sp, cwd=tmp_path).returncode == 2  # nothing named: a usage error


def test_all_and_a_name_taken_in_the_inbox(tmp_path):
    sp = failed_spool(tmp_path, "a.wav", "sub/b.wav")
    drop(sp, "a.wav", b"a newer a.wav waiting")
    proc = retry(sp, "--all", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (sp.inbox / "a.wav").read_bytes() == b"a newer a.wav waiting"  # never overwritten
    assert (sp.inbox / "a (1).wav").read_bytes() == b"RIFF-fake-audio"
    assert (sp.inbox / "sub" / "b.wav").exists()
    assert collect_status(sp.s)["failed"] == 0
