"""Speakers through the real processes: `voice-daemon convert` on a local Dask cluster (samples
travelling: a chunk's turns go with its samples) and `voice-daemon run` killed (-9) mid-job and
started again; each time the output, its sidecar's speakers and the RTTM are those of
`convert --sequential`.  A conversation of two people from the shared recordings, `shift`, one
shift per speaker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_daemon import ROOT, Daemon

from helpers import cluster, wait_until

sys.path.insert(0, str(ROOT / "tools"))
import conversation  # noqa: E402

pytestmark = pytest.mark.slow
SPEAKERS = {"VOICE_DAEMON_SPEAKERS": "on", "VOICE_DAEMON_RTTM": "true", "VOICE_DAEMON_SAMPLE_RATE": "16000",
            "VOICE_DAEMON_CHUNK_SECONDS": "10", "VOICE_DAEMON_WORKERS": "2"}


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> Path:
    wav = tmp_path_factory.mktemp("talk") / "talk.wav"
    conversation.make(wav, 60.0, seed=3, people=("silero_vad_en.wav", "silero_vad_ru.wav"))
    return wav


def _convert(src: Path, out: Path, env: dict, *flags: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "daemon", "convert", str(src), str(out), "--no-progress", *flags],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(next(line for line in proc.stderr.splitlines() if '"convert.done"' in line))


@pytest.fixture(scope="module")
def sequential(talk, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seq") / "talk.wav"
    fig = _convert(talk, out, cluster.base_env(**SPEAKERS), "--sequential")
    assert fig["speakers"] == 2
    return out


def _same(out: Path, expected: Path) -> None:
    assert np.array_equal(sf.read(out, dtype="float32")[0], sf.read(expected, dtype="float32")[0])
    assert out.with_suffix(".rttm").read_text() == expected.with_suffix(".rttm").read_text()
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["speakers"] == json.loads(expected.with_suffix(".json").read_text())["speakers"]
    assert [s["voice"] for s in side["speakers"]] == ["+4/1.15", "-4/0.87"]


def test_dask_with_samples_travelling_finds_the_same_speakers(talk, sequential, tmp_path):
    out = tmp_path / "talk.wav"
    fig = _convert(talk, out, cluster.base_env(**SPEAKERS, VOICE_DAEMON_BACKEND="dask",
                                               VOICE_DAEMON_SHARED_STORAGE="false"))
    assert fig["chunks"] >= 5 and fig["speakers"] == 2
    _same(out, sequential)


def test_killed_mid_job_resumes_to_the_same_speakers(talk, sequential, tmp_path):
    d = Daemon(tmp_path / "d", **{k.removeprefix("VOICE_DAEMON_").lower(): v for k, v in SPEAKERS.items()})
    try:
        d.start()
        (d.inbox / "talk.wav").write_bytes(talk.read_bytes())
        # Killed once a worker has loaded the speaker model for the job's first speakers task.
        wait_until(lambda: '"kind": "campplus"' in d.text(), 300, interval=0.02, message="no speakers task ran")
        d.kill9()
        assert d.outputs() == [], "the job finished before the kill: the test proved nothing"
        d.start()
        wait_until(lambda: d.settled(1), 300, interval=0.2, message=d.text()[-2000:])
        assert d.stop() == 0
        d.assert_exactly_once(["talk.json", "talk.rttm", "talk.wav"], [])
        _same(d.outbox / "talk.wav", sequential)
    finally:
        d.close()
