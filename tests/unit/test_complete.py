"""Header versus length (daemon/audio/complete.py) on real encoded speech: every whole file of a
checked format says yes, every cut copy says no, and formats it cannot check say no."""

from __future__ import annotations

import pytest
import soundfile as sf

from daemon.audio.complete import looks_complete
from helpers import media


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, speech_dir):
    """The same 10 s of real speech in each format the daemon reads, written by libsndfile and FFmpeg."""
    out = tmp_path_factory.mktemp("enc")
    audio, rate = sf.read(str(speech_dir / "silero_vad_en.wav"), frames=160000, dtype="float32")
    files = {}
    for ext, fmt, subtype in (("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"),
                              ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III")):
        path = out / f"sndfile.{ext}"
        sf.write(str(path), audio, rate, format=fmt, subtype=subtype)
        files[f"sndfile.{ext}"] = path
    wav = files["sndfile.wav"]
    for ext, opts in (("wav", ()), ("flac", ()), ("ogg", ("-c:a", "libvorbis")), ("opus", ("-c:a", "libopus")),
                      ("mp3", ("-c:a", "libmp3lame")), ("m4a", ("-c:a", "aac"))):
        files[f"ffmpeg.{ext}"] = media.transcode(wav, out / f"ffmpeg.{ext}", *opts)
    media.ffmpeg("-i", str(wav), "-rf64", "always", str(out / "rf64.wav"))
    files["rf64.wav"] = out / "rf64.wav"
    return files


CHECKED = ["sndfile.wav", "sndfile.flac", "sndfile.ogg", "sndfile.opus", "ffmpeg.wav", "ffmpeg.flac",
           "ffmpeg.ogg", "ffmpeg.opus", "ffmpeg.mp3", "rf64.wav"]


@pytest.mark.parametrize("name", CHECKED)
def test_a_whole_file_is_complete_and_every_cut_copy_is_not(encoded, name, tmp_path):
    path = encoded[name]
    assert looks_complete(path), name
    data = path.read_bytes()
    # What a copy in progress looks like: the header first, the rest still to come.
    for keep in (len(data) // 4, len(data) // 2, len(data) - 4096, len(data) - 1):
        cut = tmp_path / f"cut-{keep}{path.suffix}"
        cut.write_bytes(data[:keep])
        assert not looks_complete(cut), f"{name} cut at {keep} of {len(data)} bytes"


def test_formats_it_cannot_check_wait_the_full_settle(encoded, tmp_path):
    assert not looks_complete(encoded["ffmpeg.m4a"])
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + b"\xff" * 100)
    assert not looks_complete(junk)
    assert not looks_complete(tmp_path / "missing.wav")
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    assert not looks_complete(empty)


def test_a_wav_whose_header_the_writer_fills_in_last_is_not_complete(encoded, tmp_path):
    """A recorder that writes sizes of 0 (or 0xFFFFFFFF) first and the real ones at the end."""
    data = bytearray(encoded["sndfile.wav"].read_bytes())
    for placeholder in (b"\0\0\0\0", b"\xff\xff\xff\xff"):
        data[4:8] = placeholder
        f = tmp_path / "rec.wav"
        f.write_bytes(bytes(data))
        assert not looks_complete(f)
