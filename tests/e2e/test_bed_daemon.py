"""The bed through the real processes: `voice-daemon run` with its default VOICE_DAEMON_BACKGROUND
(auto) gives a file with music back with its music; the daemon killed (-9) mid-file with `keep`
resumes to the same bytes as `convert --sequential`; `convert` on a local Dask cluster with the
samples travelling gives the same samples as one process.

Real recordings mixed with a generated music bed (tests/helpers/beds.py), the real separator,
Silero VAD and the `shift` engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from test_daemon import ROOT, Daemon
from test_stream_resume import _encoding

from daemon.audio import bed
from helpers import beds, cluster, wait_until
from helpers.resynth_models import load

RATE = 48000


def _mix(speech_dir, names, rate, seconds=None, bed_db=9):
    speech = np.concatenate([load(speech_dir / n, rate) for n in names])[: int((seconds or 1e9) * rate)]
    return beds.mix(speech, beds.make_bed(len(speech) / rate, rate, seed=5), bed_db)


def _env(**settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update({f"VOICE_DAEMON_{k.upper()}": str(v) for k, v in settings.items()})
    return {**env, "VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_LOG_LEVEL": "warning"}


def _convert(src, out, env, *flags) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "daemon", "convert", str(src), str(out), "--no-progress", *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_a_file_with_music_comes_out_with_its_music(speech_dir, tmp_path):
    audio, voice, music = _mix(speech_dir, ["silero_vad_en.wav"], RATE, seconds=30)
    d = Daemon(tmp_path / "d", sample_rate=RATE, chunk_seconds=15)  # VOICE_DAEMON_BACKGROUND: its default
    try:
        d.start()
        src = tmp_path / "mix.wav"
        sf.write(src, audio, RATE, subtype="FLOAT")
        os.replace(src, d.inbox / "mix.wav")
        wait_until(lambda: d.settled(2), 400, interval=0.2, message="the file was not converted")  # and its sidecar
        assert d.stop() == 0
    finally:
        d.close()
    d.assert_exactly_once(["mix.wav", "mix.json"], [])
    out, rate = sf.read(d.outbox / "mix.wav", dtype="float32")
    assert rate == RATE and len(out) == len(audio)
    from daemon.audio.vad import SplitVad

    mask = bed.speech_mask(bed.vad_probabilities(SplitVad(), bed.at_vad_rate(voice, RATE)), len(voice), RATE)
    between = mask == 0
    assert between.sum() > RATE  # the recording has pauses
    assert beds.si_sdr(out[between], audio[between]) >= 20  # the input itself between phrases
    assert beds.chroma_corr(out[between], music[between], RATE) >= 0.9  # the bed's harmony, unshifted
    side = json.loads((d.outbox / "mix.json").read_text())["background"]
    assert side["mode"] == "auto" and side["kept_chunks"] == side["chunks"] >= 2
    assert side["residual_db"]["worst"] >= 10


@pytest.mark.slow
def test_killed_mid_file_resumes_to_the_same_output(speech_dir, tmp_path):
    settings = {"sample_rate": RATE, "chunk_seconds": 10, "output_format": "mp3", "background": "keep"}
    audio, _, _ = _mix(speech_dir, ["silero_vad_en.wav", "silero_vad_de.wav"], RATE)  # 2 minutes
    src = tmp_path / "talk.wav"
    sf.write(src, audio, RATE, subtype="PCM_24")
    expected = tmp_path / "expected.mp3"
    _convert(src, expected, _env(**settings), "--sequential")

    d = Daemon(tmp_path / "d", **settings)
    try:
        d.start()
        (d.inbox / "talk.wav").write_bytes(src.read_bytes())
        wait_until(lambda: _encoding(d.state), 400, interval=0.02, message="no encode segment was written")
        d.kill9()
        assert d.outputs() == [], "the job finished before the kill: the test proved nothing"
        d.start()
        wait_until(lambda: d.settled(2), 400, interval=0.2, message=d.text()[-2000:])  # and its sidecar
        assert d.stop() == 0
    finally:
        d.close()
    d.assert_exactly_once(["talk.mp3", "talk.json"], [])
    assert (d.outbox / "talk.mp3").read_bytes() == expected.read_bytes()
    assert json.loads((d.outbox / "talk.json").read_text())["background"]["mode"] == "keep"


def test_dask_with_samples_travelling_equals_one_process(speech_dir, tmp_path):
    audio, _, _ = _mix(speech_dir, ["silero_vad_en.wav"], 16000, seconds=16)
    src = tmp_path / "in.wav"
    sf.write(src, audio, 16000, subtype="FLOAT")
    env = cluster.base_env(VOICE_DAEMON_SAMPLE_RATE="16000", VOICE_DAEMON_CHUNK_SECONDS="5",
                           VOICE_DAEMON_WORKERS="2", VOICE_DAEMON_BACKGROUND="keep")
    _convert(src, tmp_path / "one.wav", env, "--sequential")
    proc = _convert(src, tmp_path / "dask.wav", {**env, "VOICE_DAEMON_BACKEND": "dask",
                                                  "VOICE_DAEMON_SHARED_STORAGE": "false"})
    one, dask = (sf.read(tmp_path / n, dtype="float32")[0] for n in ("one.wav", "dask.wav"))
    assert np.array_equal(one, dask)
    done = json.loads(next(line for line in proc.stderr.splitlines() if '"convert.done"' in line))
    assert done["chunks"] >= 3
    side = json.loads((tmp_path / "dask.json").read_text())["background"]
    assert side["kept_chunks"] == side["chunks"] == done["chunks"]
