"""Only the command line turns errors into exit codes: what a handler raises becomes one line and a code.

Run as a real process: ``cli.main`` configures logging for the whole interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from daemon.bench import MODES

ROOT = Path(__file__).resolve().parents[2]


def vd(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)


def test_bench_unknown_mode_is_a_usage_error():
    proc = vd("bench", "--modes", "sequential,warp")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"voice-daemon bench: unknown mode(s) warp; choose from {', '.join(MODES)}"]


def test_bench_without_recordings_is_a_usage_error(tmp_path):
    missing = tmp_path / "nowhere"
    proc = vd("bench", "--speech-dir", str(missing))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"voice-daemon bench: no recordings at {missing}; pass --speech-dir DIR")


def test_bench_looks_for_recordings_only_where_told():
    proc = vd("bench", "--quick")
    assert proc.returncode == 2
    assert proc.stderr.startswith("voice-daemon bench: no recordings given: pass --speech-dir DIR")
