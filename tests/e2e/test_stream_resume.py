"""The daemon killed (-9) while a long file's MP3 is being encoded, then started again: the output
it publishes is byte for byte what `voice-daemon convert --sequential` writes.

Real `voice-daemon run` and `convert` processes, real recordings, the `shift` engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon import ROOT, Daemon

from helpers import media, wait_until

ENV = {"sample_rate": 48000, "chunk_seconds": 10, "output_format": "mp3"}


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path / "d", **ENV)
    yield d
    d.close()


def _encoding(state: Path) -> bool:
    """A job of the spool is past its first encode segments and not done."""
    return any((state / "work").glob("*/tmp/enc-*"))


@pytest.mark.slow
def test_killed_mid_encode_resumes_to_the_same_output(daemon, speech_dir, tmp_path):
    src = tmp_path / "talk.wav"
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"file '{speech_dir / n}'\n" for n in ("silero_vad_en.wav", "silero_vad_ru.wav",
                                                                     "silero_vad_de.wav", "silero_vad_es.wav")))
    media.ffmpeg("-f", "concat", "-safe", "0", "-i", str(lst), "-c:a", "pcm_s16le", str(src))  # 4 minutes
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update({f"VOICE_DAEMON_{k.upper()}": str(v) for k, v in ENV.items()})
    env.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_LOG_LEVEL": "warning"})
    expected = tmp_path / "expected.mp3"
    proc = subprocess.run([sys.executable, "-m", "daemon", "convert", str(src), str(expected), "--sequential"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr

    daemon.start()
    (daemon.inbox / "talk.wav").write_bytes(src.read_bytes())
    wait_until(lambda: _encoding(daemon.state), 300, interval=0.02, message="no encode segment was written")
    daemon.kill9()
    assert daemon.outputs() == [], "the job finished before the kill: the test proved nothing"
    assert _encoding(daemon.state)

    daemon.start()
    wait_until(lambda: daemon.settled(1), 300, interval=0.2, message=daemon.text()[-2000:])
    assert daemon.stop() == 0
    daemon.assert_exactly_once(["talk.mp3"], [])
    assert (daemon.outbox / "talk.mp3").read_bytes() == expected.read_bytes()
