"""The check of every output before it is published (daemon/audio/verify.py), on real encoded files.

Outputs are made from the shared real recordings by the daemon's own encoder, then damaged the
way a failing disk or encoder would: cut short, filled with NaN, silenced.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from daemon import pipeline
from daemon.audio import io as aio
from daemon.audio.verify import check_output
from daemon.errors import OutputCheckError

RATE = 16000


@pytest.fixture(scope="module")
def speech(speech_dir, tmp_path_factory):
    """11 s of real speech (JFK) as the float32 working WAV the pipeline stitches."""
    import soxr

    audio, rate = sf.read(speech_dir / "fw_jfk.flac", dtype="float32", always_2d=True)
    audio = soxr.resample(audio.mean(axis=1), rate, RATE).astype(np.float32)
    wav = tmp_path_factory.mktemp("speech") / "stitched.wav"
    sf.write(wav, audio, RATE, subtype="FLOAT")
    return wav, len(audio)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "opus", "mp3", "m4a"])
def test_a_good_output_passes_in_every_format(speech, tmp_path, ext):
    wav, frames = speech
    out = tmp_path / f"out.{ext}"
    aio.encode(str(wav), str(out), RATE)
    fig = check_output(out, frames=frames, sample_rate=RATE, speech_seconds=8.0)
    assert abs(fig["difference_ms"]) <= fig["allowed_ms"]
    assert fig["non_finite"] == 0 and -20 < fig["peak_dbfs"] <= 0.0
    assert fig["decoded_seconds"] == pytest.approx(frames / RATE, abs=fig["allowed_ms"] / 1000)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_an_output_cut_short_fails(speech, tmp_path, ext):
    wav, frames = speech
    out = tmp_path / f"out.{ext}"
    aio.encode(str(wav), str(out), RATE)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    with pytest.raises(OutputCheckError) as err:
        check_output(out, frames=frames, sample_rate=RATE, speech_seconds=8.0, name="talk." + ext)
    assert err.value.path == "talk." + ext and err.value.retryable
    assert any(w in err.value.cause for w in ("decodes to", "truncated", "cannot be decoded", "not a readable"))


def test_an_output_of_the_wrong_length_fails_and_says_both_lengths(speech, tmp_path):
    wav, frames = speech
    out = tmp_path / "out.flac"
    aio.encode(str(wav), str(out), RATE)
    with pytest.raises(OutputCheckError, match=r"decodes to 11\.000 s, not the input's 11\.100 s"):
        check_output(out, frames=frames + int(0.1 * RATE), sample_rate=RATE)
    check_output(out, frames=frames + int(0.009 * RATE), sample_rate=RATE)  # within ±10 ms
    with pytest.raises(OutputCheckError, match="not the 22050 Hz"):
        check_output(out, frames=frames, sample_rate=22050)


def test_samples_that_are_not_finite_fail(speech, tmp_path):
    wav, frames = speech
    audio, _ = sf.read(wav, dtype="float32")
    audio[RATE:RATE + 10] = np.nan
    audio[2 * RATE] = np.inf
    out = tmp_path / "float.wav"  # a float WAV keeps what the encoder was given
    sf.write(out, audio, RATE, subtype="FLOAT")
    with pytest.raises(OutputCheckError, match="11 of its samples are not finite"):
        check_output(out, frames=frames, sample_rate=RATE)


def test_silence_fails_only_where_the_input_had_speech(tmp_path):
    out = tmp_path / "quiet.ogg"
    wav = tmp_path / "zeros.wav"
    sf.write(wav, np.zeros(5 * RATE, dtype=np.float32), RATE, subtype="FLOAT")
    aio.encode(str(wav), str(out), RATE)
    with pytest.raises(OutputCheckError, match=r"silent .* though the input has 4\.2 s of speech"):
        check_output(out, frames=5 * RATE, sample_rate=RATE, speech_seconds=4.2)
    fig = check_output(out, frames=5 * RATE, sample_rate=RATE, speech_seconds=0.0)  # silence in, silence out
    assert fig["peak_dbfs"] is None or fig["peak_dbfs"] < -60


def test_publish_checks_before_the_rename_and_leaves_nothing_when_the_check_fails(speech, tmp_path):
    wav, frames = speech
    out = tmp_path / "out" / "talk.mp3"
    out.parent.mkdir()
    path, fig = pipeline.publish(str(wav), out, RATE, frames=frames, speech_seconds=8.0)
    assert path == out and out.is_file() and fig["difference_ms"] == 0.0
    out.unlink()
    with pytest.raises(OutputCheckError, match="talk.mp3: the output failed its check"):
        pipeline.publish(str(wav), out, RATE, frames=2 * frames, speech_seconds=8.0)
    assert list(out.parent.iterdir()) == []  # neither the output nor its temporary file


def test_the_check_streams_a_long_output_in_bounded_memory(speech_dir, tmp_path):
    """20 minutes at 16 kHz would be 77 MB as float32 samples: the check holds one block."""
    audio, rate = sf.read(speech_dir / "silero_vad_en.wav", dtype="float32")
    assert audio.ndim == 1
    out = tmp_path / "long.flac"
    with sf.SoundFile(out, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(20):
            f.write(audio[: 60 * rate])
    tracemalloc.start()
    try:
        fig = check_output(out, frames=20 * 60 * rate, sample_rate=rate, speech_seconds=600.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fig["decoded_seconds"] == 1200.0
    assert peak < 8 * 2**20, f"the check held {peak / 2**20:.1f} MB"
