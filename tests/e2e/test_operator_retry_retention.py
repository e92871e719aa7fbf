"""An operator's day with the real daemon: a file too long for the configured limit fails, is sent
back with `voice-daemon retry` once the limit is raised, and comes out; archived inputs in
STATE_DIR/done/ are deleted once older than VOICE_DAEMON_DONE_RETENTION_DAYS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from test_daemon import ROOT, Daemon

from helpers import wait_until

pytestmark = pytest.mark.slow
RETENTION_DAYS = 3 / 86400  # three seconds: looked at every second


def clip(speech_dir: Path, dst: Path, seconds: float) -> Path:
    data, rate = sf.read(speech_dir / "fw_jfk.flac", dtype="float32")
    sf.write(dst, data[: int(rate * seconds)], rate)
    return dst


def test_retry_after_raising_a_limit_and_done_retention(tmp_path, speech_dir):
    d = Daemon(tmp_path / "d", workers=1, max_input_seconds=4, done_retention_days=RETENTION_DAYS)
    try:
        d.start()
        clip(speech_dir, tmp_path / "short.wav", 2.0)
        clip(speech_dir, tmp_path / "long.wav", 6.0)
        os.rename(tmp_path / "short.wav", d.inbox / "short.wav")
        os.rename(tmp_path / "long.wav", d.inbox / "long.wav")
        wait_until(lambda: d.settled(2) and not any((d.state / "work").iterdir()), 180,
                   message=f"outcomes {d.outputs()} {d.quarantined()}")
        d.assert_exactly_once(["short.wav"], ["long.wav"])
        # the archived input of short.wav goes once older than the retention
        wait_until(lambda: d.has("spool.done_pruned"), 60, message=d.text()[-2000:])
        assert list((d.state / "done").iterdir()) == []
        assert d.stop() == 0
    finally:
        d.close()

    env = dict(d.env)
    proc = subprocess.run([sys.executable, "-m", "daemon", "retry", "long.wav"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (d.inbox / "long.wav").is_file() and not (d.failed / "long.wav.error.json").exists()

    again = Daemon(tmp_path / "d", workers=1)  # the default limit: four hours
    try:
        again.start()
        wait_until(lambda: "long.wav" in again.outputs() and not any((d.state / "work").iterdir()), 180,
                   message=again.text()[-2000:])
        again.assert_exactly_once(["short.wav", "long.wav"], [])
        assert again.stop() == 0
    finally:
        again.close()
