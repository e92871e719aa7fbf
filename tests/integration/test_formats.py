"""decode → plan → shift → stitch → encode on every listed input and output format.

Real speech from shared/data/speech, re-encoded by ffmpeg.  Runs the stages in
this process (InlineRunner); the pool runs the same functions in children.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from daemon.backends.inline import InlineRunner
from daemon.convert import convert_file
from daemon.errors import InputError
from daemon.settings import load_settings
from helpers import media

INPUTS = {
    "pcm_u8.wav": ("-ar", "16000", "-c:a", "pcm_u8"),
    "pcm16.wav": ("-c:a", "pcm_s16le"),
    "pcm24.wav": ("-c:a", "pcm_s24le"),
    "pcm32.wav": ("-c:a", "pcm_s32le"),
    "float.wav": ("-c:a", "pcm_f32le"),
    "in.flac": (),
    "in.ogg": ("-c:a", "libvorbis"),
    "in.opus": ("-c:a", "libopus"),
    "in.mp3": ("-c:a", "libmp3lame"),
    "in.m4a": ("-c:a", "aac"),
    "in.aac": ("-c:a", "aac", "-f", "adts"),
    "rate8k.wav": ("-ar", "8000"),
    "rate192k.flac": ("-ar", "192000"),
    "ch8.wav": ("-af", "pan=7.1|c0=c0|c1=0.8*c0|c2=0.6*c0|c3=0.5*c0|c4=0.9*c0|c5=c0|c6=0.7*c0|c7=c0"),
    "ch3.flac": ("-af", "pan=3.0|c0=c0|c1=0.5*c0|c2=c0"),
}


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    s = load_settings(engine="shift", sample_rate=48000, chunk_seconds=5, workers=1)
    return InlineRunner(s)


@pytest.fixture(scope="module")
def clip(speech_dir, tmp_path_factory, tools):
    """12 s of real English speech (the numbers recording)."""
    return speech_dir / "silero_vad_en_num.wav"


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_input_format(runner, clip, tmp_path, name):
    src = media.transcode(clip, tmp_path / name, *INPUTS[name])
    want = media.duration(clip)
    out = tmp_path / "out.wav"
    fig = convert_file(runner.submit, src, out, tmp_path / "work")
    info = sf.info(str(out))
    assert info.samplerate == 48000 and info.channels == 1
    # Lossy codecs add encoder delay/padding the container does not always declare
    # (raw ADTS AAC: a 1024-sample priming frame plus padding to a whole frame).
    slack = {".aac": 0.15, ".m4a": 0.05, ".mp3": 0.06, ".opus": 0.03, ".ogg": 0.03}.get(src.suffix, 0.0)
    assert abs(info.duration - want) <= 0.010 + slack
    assert fig["chunks"] >= 2  # 12 s with 5 s chunks
    y, _ = sf.read(out)
    assert np.sqrt(np.mean(y ** 2)) > 0.005  # speech, not silence


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "opus", "mp3", "m4a"])
def test_every_output_format(runner, clip, tmp_path, ext):
    out = tmp_path / f"out.{ext}"
    convert_file(runner.submit, clip, out, tmp_path / "work")
    assert abs(media.duration(out) - media.duration(clip)) < 0.08  # codec padding at most
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name], "temporary output left behind"


def test_long_input_exact_duration_and_bounded_chunks(runner, speech_dir, tmp_path):
    src = media.concat(speech_dir / "silero_vad_en.wav", tmp_path / "long.wav", 3)  # 180 s
    out = tmp_path / "long_out.flac"
    fig = convert_file(runner.submit, src, out, tmp_path / "work")
    assert abs(sf.info(str(out)).duration - 180.0) <= 0.010
    assert fig["chunks"] >= 36  # 5 s chunks


def test_silence_only_converts_to_silence_of_the_same_length(runner, tmp_path):
    src = media.silence(tmp_path / "quiet.wav", 7.5)
    out = tmp_path / "quiet_out.wav"
    convert_file(runner.submit, src, out, tmp_path / "work")
    y, rate = sf.read(out)
    assert abs(len(y) / rate - 7.5) <= 0.010 and np.max(np.abs(y)) < 1e-3


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


@pytest.mark.parametrize("make,cause", [
    (lambda d: _write(d / "empty.wav", b""), "empty"),
    (lambda d: _write(d / "text.mp3", b"this is not audio\n" * 50), "not a readable audio file"),
    (lambda d: d / "missing.wav", "no such file"),
    (lambda d: _mkdir(d / "folder.wav"), "not a regular file"),
])
def test_bad_input_raises_input_error(runner, tmp_path, make, cause):
    src = make(tmp_path)
    with pytest.raises(InputError, match=cause):
        convert_file(runner.submit, src, tmp_path / "o.wav", tmp_path / "work")
    assert not (tmp_path / "o.wav").exists()


def test_truncated_mp3_is_refused(runner, speech_dir, tmp_path):
    mp3 = media.transcode(speech_dir / "silero_vad_en.wav", tmp_path / "full.mp3", "-c:a", "libmp3lame")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 3])
    with pytest.raises(InputError, match="truncated"):
        convert_file(runner.submit, cut, tmp_path / "o.wav", tmp_path / "work")
