"""Inputs that used to convert wrongly or fail with a misleading reason, through `voice-daemon convert`.

Real files made from the shared recordings (ffmpeg), a real process each time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import media

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534


def convert(src: Path, out: Path, *, as_user: int | None = None, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    full.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_WORKERS": "1",
                 "VOICE_DAEMON_SAMPLE_RATE": "16000", **env})
    become = [] if as_user is None else ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups"]
    return subprocess.run([*become, sys.executable, "-m", "daemon", "convert", str(src), str(out)], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=300)


def test_a_chained_ogg_converts_every_link(tmp_path, speech_dir, tools):
    """3 s + 5 s, the second link at another rate and in stereo (FFmpeg refuses that one)."""
    first = media.transcode(speech_dir / "silero_vad_en.wav", tmp_path / "a.ogg", "-t", "3", "-c:a", "libvorbis")
    second = media.transcode(speech_dir / "silero_vad_ru.wav", tmp_path / "b.ogg", "-ss", "10", "-t", "5",
                             "-ar", "48000", "-ac", "2", "-c:a", "libvorbis")
    chained = tmp_path / "chained.ogg"
    chained.write_bytes(first.read_bytes() + second.read_bytes())
    assert sf.info(chained).duration == 3.0  # what libsndfile alone sees
    out = tmp_path / "out.wav"
    proc = convert(chained, out)
    assert proc.returncode == 0, proc.stderr
    y, rate = sf.read(out)
    assert abs(len(y) / rate - 8.0) <= 0.010
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    assert rms(y[int(3.2 * rate):]) > 0.01, "the second link came out silent"


def test_a_chained_opus_converts_every_link(tmp_path, speech_dir, tools):
    parts = [media.transcode(speech_dir / "silero_vad_en.wav", tmp_path / f"{i}.opus", "-ss", str(4 * i), "-t", "2",
                             "-c:a", "libopus") for i in range(3)]
    chained = tmp_path / "chained.opus"
    chained.write_bytes(b"".join(p.read_bytes() for p in parts))
    out = tmp_path / "out.flac"
    proc = convert(chained, out)
    assert proc.returncode == 0, proc.stderr
    assert abs(sf.info(out).duration - 6.0) <= 0.010


def test_a_wav_that_holds_less_than_its_header_declares_is_refused(tmp_path, speech_dir, tools):
    whole = media.transcode(speech_dir / "silero_vad_en.wav", tmp_path / "whole.wav", "-t", "10")
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: (len(data) + 44) // 2])  # header intact: it still says 10 s
    out = tmp_path / "out.wav"
    proc = convert(cut, out)
    assert proc.returncode == 65, proc.stderr
    assert "cut.wav: is truncated or damaged: it holds 5.00 s of the 10.00 s its header declares" in proc.stderr
    assert not out.exists()
    # A streaming writer's "length unknown" header (ffmpeg writing to a pipe) is not a truncation.
    streamed = tmp_path / "streamed.wav"
    with open(streamed, "wb") as f:
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(whole), "-f", "wav", "-"], stdout=f,
                       check=True)
    assert b"data\xff\xff\xff\xff" in streamed.read_bytes()[:100]
    proc = convert(streamed, tmp_path / "streamed-out.wav")
    assert proc.returncode == 0, proc.stderr


def test_random_bytes_named_flac_are_not_a_readable_audio_file(tmp_path):
    junk = tmp_path / "junk.flac"
    junk.write_bytes(np.random.default_rng(7).bytes(100_000))
    proc = convert(junk, tmp_path / "out.wav")
    assert proc.returncode == 65, proc.stderr
    assert "junk.flac: is not a readable audio file" in proc.stderr and "channels" not in proc.stderr


@pytest.fixture
def shared_dir():
    """A folder an unprivileged user may write in (pytest's own tmp folders are the owner's only)."""
    path = Path(tempfile.mkdtemp(prefix="vd-perm-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def test_an_unreadable_file_says_permission_denied(shared_dir, speech_dir):
    src = shared_dir / "private.flac"
    shutil.copyfile(speech_dir / "fw_jfk.flac", src)
    src.chmod(0)
    # As root the mode does not stop us: run as nobody, as the service would run.
    user = NOBODY if os.geteuid() == 0 else None
    proc = convert(src, shared_dir / "out.wav", as_user=user)
    assert proc.returncode == 65, proc.stderr
    assert "private.flac: cannot be read: permission denied" in proc.stderr, proc.stderr
