"""What containers say about themselves (daemon/audio/containers.py), on files made by ffmpeg."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from daemon.audio import containers
from daemon.audio.io import CHAINED_OGG, probe
from helpers import media


def test_links_of_a_chained_ogg_and_of_a_plain_one(speech_dir, tmp_path, tools):
    a = media.transcode(speech_dir / "silero_vad_en.wav", tmp_path / "a.ogg", "-t", "3", "-c:a", "libvorbis")
    b = media.transcode(speech_dir / "silero_vad_ru.wav", tmp_path / "b.ogg", "-t", "5", "-ar", "48000",
                        "-c:a", "libvorbis")
    assert containers.ogg_links(a) == []  # one link: libsndfile reads it as always
    chained = tmp_path / "ab.ogg"
    chained.write_bytes(a.read_bytes() + b.read_bytes())
    links = containers.ogg_links(chained)
    assert [(link.sample_rate, link.frames) for link in links] == [(16000, 48000), (48000, 240000)]
    assert links[0].start == 0 and links[0].end == links[1].start == a.stat().st_size
    assert containers.chain_frames(links) == 128000  # 8 s at the first link's rate
    info = probe(chained)
    assert info.reader == CHAINED_OGG and info.duration == 8.0
    blocks = list(containers.read_links(str(chained), links, 4096))
    assert abs(sum(len(x) for x in blocks) - 128000) <= 16  # the resampler's rounding


def test_bytes_that_only_look_like_an_ogg_page_start_no_link(speech_dir, tmp_path, tools):
    a = media.transcode(speech_dir / "silero_vad_en.wav", tmp_path / "a.ogg", "-t", "3", "-c:a", "libvorbis")
    junk = a.read_bytes() + b"OggS\x00\x02" + np.random.default_rng(3).bytes(4000)  # a bad checksum
    (tmp_path / "junk.ogg").write_bytes(junk)
    assert containers.ogg_links(tmp_path / "junk.ogg") == []
    assert probe(tmp_path / "junk.ogg").reader == "sndfile"


def test_wav_shortfall(speech_dir, tmp_path):
    audio, rate = sf.read(speech_dir / "silero_vad_en.wav", dtype="int16", frames=16000 * 4)
    whole = tmp_path / "whole.wav"
    sf.write(whole, audio, rate, subtype="PCM_16")
    assert containers.wav_shortfall(whole) is None
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + 2 * 16000])  # the header of libsndfile's WAV is 44 bytes
    assert containers.wav_shortfall(cut) == (64000, 16000)
    assert containers.wav_shortfall(speech_dir / "fw_jfk.flac") is None  # not a WAV
