"""The audio layer under issue 11's faults: names that are not UTF-8 (fault 4) and a full disk
(fault 7), with real recordings, real encoders and a real small tmpfs."""

from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from daemon.audio import io as aio
from daemon.audio.decode import decode_stream
from daemon.errors import OutputError
from helpers.disks import fill, tmpfs

ODD = os.fsdecode(b"caf\xe9-\xff")  # Latin-1 bytes: legal on Linux, not UTF-8


def decode_to_wav(info: aio.AudioInfo, wav: str, rate: int) -> int:
    """Our decoder's working audio (raw float32), as the WAV the encoders read."""
    frames = decode_stream(info, wav + ".f32", rate)
    sf.write(wav, np.fromfile(wav + ".f32", dtype=np.float32), rate, subtype="FLOAT")
    return frames


def test_names_that_are_not_utf8_are_read_and_written(speech_dir, tmp_path):
    src = tmp_path / (ODD + ".flac")
    shutil.copyfile(speech_dir / "fw_jfk.flac", src)
    info = aio.probe(src)  # was: "not readable audio (UnicodeEncodeError)"
    assert info.reader == "sndfile" and abs(info.duration - 11.0) < 0.1
    frames = decode_to_wav(info, str(tmp_path / "work.wav"), 16000)
    for ext in ("wav", "mp3", "m4a"):
        out = tmp_path / f".{ODD}.part.{ext}"
        aio.encode(str(tmp_path / "work.wav"), str(out), 16000)
        assert out.stat().st_size > 1000
    assert sf.info(os.fsencode(tmp_path / f".{ODD}.part.wav")).frames == frames


@pytest.mark.parametrize("ext", ["wav", "flac", "m4a"])
def test_a_full_disk_is_an_os_error_with_its_errno_not_a_bad_output(speech_dir, tmp_path, ext):
    """libsndfile says only "System error."; the errno behind it (and ffmpeg's) is kept."""
    decode_to_wav(aio.probe(speech_dir / "silero_vad_en.wav"), str(tmp_path / "work.wav"), 48000)
    with tmpfs(tmp_path / "out", "1m") as out:
        fill(out)
        with pytest.raises(OSError) as exc:
            aio.encode(str(tmp_path / "work.wav"), str(out / f"o.{ext}"), 48000)
    assert not isinstance(exc.value, OutputError)
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(out / f"o.{ext}")
