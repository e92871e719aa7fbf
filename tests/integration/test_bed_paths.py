"""Every path with the bed kept: input and output formats, 8 kHz and 192 kHz inputs, music alone,
speech alone, silence, the sidecar.  The stream runs in this process (InlineRunner) with the real
separator, VAD and the `shift` engine; the pool and Dask run the same ``convert_chunk``
(tests/e2e/test_bed_daemon.py runs them).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from daemon.audio.resample import resample
from daemon.backends.inline import InlineRunner
from daemon.convert import convert_file
from daemon.settings import load_settings
from helpers import beds, media
from helpers.resynth_models import load

RATE = 48000


@pytest.fixture(scope="module")
def runner():
    return InlineRunner(load_settings(engine="shift", sample_rate=RATE, chunk_seconds=5, workers=1,
                                      background="keep"))


@pytest.fixture(scope="module")
def mixed(speech_dir, tmp_path_factory):
    """12 s of English speech over a music bed 9 dB below it, as a float WAV at 48 kHz."""
    speech = load(speech_dir / "silero_vad_en_num.wav", RATE)
    audio, _, _ = beds.mix(speech, beds.make_bed(len(speech) / RATE, RATE, seed=4), 9)
    path = tmp_path_factory.mktemp("bed") / "mix.wav"
    sf.write(path, audio, RATE, subtype="FLOAT")
    return path


def _sidecar(out) -> dict:
    return json.loads(out.with_suffix(".json").read_text())["background"]


@pytest.mark.parametrize("name,opts", [("in.flac", ()), ("in.mp3", ("-c:a", "libmp3lame")),
                                       ("in.ogg", ("-c:a", "libvorbis")), ("in.m4a", ("-c:a", "aac")),
                                       ("rate8k.wav", ("-ar", "8000")), ("rate192k.flac", ("-ar", "192000")),
                                       ("stereo.wav", ("-ac", "2"))])
def test_every_input(runner, mixed, tmp_path, name, opts):
    src = media.transcode(mixed, tmp_path / name, *opts)
    out = tmp_path / "out.wav"
    fig = convert_file(runner.submit, src, out, tmp_path / "work")
    y, rate = sf.read(out, dtype="float32")
    assert rate == RATE and y.ndim == 1  # mono, as the whole pipeline
    slack = {".m4a": 0.05, ".mp3": 0.06, ".ogg": 0.03}.get(src.suffix, 0.0)
    assert abs(len(y) / rate - media.duration(mixed)) <= 0.010 + slack
    side = _sidecar(out)
    assert side["mode"] == "keep" and side["kept_chunks"] == side["chunks"] == fig["chunks"] >= 2
    assert side["residual_db"]["worst"] > 0


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_every_output(runner, mixed, tmp_path, ext):
    out = tmp_path / f"out.{ext}"
    fig = convert_file(runner.submit, mixed, out, tmp_path / "work")
    assert fig["check"]["peak_dbfs"] > -20  # the output check read the mixed-back output before publishing
    assert abs(media.duration(out) - media.duration(mixed)) < 0.08  # codec padding at most
    assert _sidecar(out)["kept_chunks"] >= 2


@pytest.mark.parametrize("rate", [8000, 48000, 192000])
def test_music_alone_comes_out_as_it_went_in(runner, tmp_path, rate):
    music = beds.make_bed(8, rate, seed=2)
    src = tmp_path / "music.wav"
    sf.write(src, music, rate, subtype="PCM_24")
    out = tmp_path / "out.wav"
    convert_file(runner.submit, src, out, tmp_path / "work")
    y, _ = sf.read(out, dtype="float32")
    x = resample(sf.read(src, dtype="float32")[0], rate, RATE)  # what the pipeline decodes it to
    assert len(y) == len(x)
    # Within the output's 24-bit rounding and the decode's block-wise resampling (1e-6 against
    # a 0.3 peak): not silence, not shifted.
    assert np.max(np.abs(y - x)) < 1e-4 and np.sqrt(np.mean(y ** 2)) > 0.01


def test_speech_alone(runner, speech_dir, tmp_path):
    out = tmp_path / "out.wav"
    convert_file(runner.submit, speech_dir / "silero_vad_en_num.wav", out, tmp_path / "work")
    y, _ = sf.read(out)
    assert np.sqrt(np.mean(y ** 2)) > 0.005
    side = _sidecar(out)
    assert side["kept_chunks"] == side["chunks"]


def test_silence(runner, tmp_path):
    src = media.silence(tmp_path / "quiet.wav", 7.5)
    out = tmp_path / "quiet_out.wav"
    convert_file(runner.submit, src, out, tmp_path / "work")
    y, rate = sf.read(out)
    assert abs(len(y) / rate - 7.5) <= 0.010 and np.max(np.abs(y)) < 1e-3
