"""Outputs written in segments (MP3, M4A) against one encoder run, and which MP3 decoder to trust.

Real speech from shared/data/speech; real LAME, FFmpeg AAC, libsndfile and FFmpeg decoders.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from daemon.audio import aac, mp3, outputs
from daemon.audio.decode import decode_stream, read_frames
from daemon.audio.io import probe
from daemon.audio.stitch import write_frames

RATE = 48000


@pytest.fixture(scope="module")
def speech(speech_dir) -> np.ndarray:
    """70 s of real speech at 48 kHz (two recordings end to end), an odd length."""
    parts = []
    for name in ("silero_vad_en.wav", "fw_jfk.flac"):
        x, r = sf.read(speech_dir / name, dtype="float32", always_2d=True)
        parts.append(soxr.resample(x.mean(axis=1), r, RATE).astype(np.float32))
    return np.concatenate(parts)[: 70 * RATE - 777]


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])]).astype(np.float32)


def _segmented(tmp_path: Path, ext: str, x: np.ndarray) -> Path:
    """What a job does: stitched audio in, segments handed out and encoded one by one, joined."""
    out = outputs.open_output(tmp_path, ext, RATE)
    segments = []
    for i in range(0, len(x), 100_000):  # stitched in pieces, as chunks arrive
        piece = x[i:i + 100_000]
        write_frames(out.stitched, out.kind, i, piece)  # what a chunk task does, in place
        out.advance(i + len(piece))                     # the stitched file is final up to here
        segments += out.segments(None)
    segments += out.segments(len(x))
    assert out.all_segments_out and len(segments) == 3  # 30 s segments
    for seg in segments:
        frames, extradata = outputs.encode_frames(ext, read_frames(out.raw, seg.lo, seg.hi), RATE, seg.skip, seg.keep)
        part = tmp_path / f"part-{seg.index}"
        outputs.write_part(str(part), frames)
        out.add_part(seg, str(part), extradata)
    return out.finish(len(x))


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))


@pytest.mark.parametrize("ext", ["mp3", "m4a"])
def test_segments_join_without_a_gap_or_a_click(tmp_path, speech, ext):
    joined = _segmented(tmp_path, ext, speech)
    if ext == "mp3":
        single = tmp_path / "single.mp3"
        frames = mp3.frames(mp3.encode(speech, RATE))
        single.write_bytes(mp3.info_frame(frames[0], len(frames), sum(map(len, frames)), len(speech)) + b"".join(frames))
    else:
        single = tmp_path / "single.m4a"
        packets, _ = aac.encode_segment(speech, RATE, 0, None)
        aac.mux(packets, str(single), RATE, len(speech))
    y, ys = _decode(joined), _decode(single)
    if ext == "mp3":  # the Info tag's delay and padding: both decoders give exactly the input's length
        assert len(y) == len(speech) == sf.info(str(joined)).frames == len(sf.read(str(joined))[0])
    else:  # AAC in MP4 ends on a whole frame, as FFmpeg's own encoder writes it
        assert len(speech) <= len(y) < len(speech) + aac.FRAME
    n = len(speech)
    err, err_single = speech - y[:n], speech - ys[:n]
    seam = np.zeros(n, bool)
    for s in (30 * RATE // 1152 * 1152, 60 * RATE // 1152 * 1152) if ext == "mp3" else \
             (30 * RATE // 1024 * 1024, 60 * RATE // 1024 * 1024):
        seam[s - RATE // 20:s + RATE // 20] = True  # 50 ms either side of each seam
    # No gap: a misaligned seam would leave an error at the signal's own level.
    assert _rms(err) < 0.1 * _rms(speech)
    assert _rms(err) <= 1.05 * _rms(err_single)
    if ext == "mp3":  # a seam is as good as a single run (frames hold their own bits)
        assert _rms(err[seam]) <= 1.5 * _rms(err_single[seam]) + 1e-4
        assert np.abs(err[seam]).max() <= 1.5 * np.abs(err_single[seam]).max() + 1e-3
    else:  # the AAC encoder's rate control differs at a seam for a few frames: codec noise, no click
        assert _rms(err[seam]) <= 3 * _rms(err_single[seam])
        assert _rms(err[seam]) < 0.02 * _rms(speech[seam])  # 34 dB under the speech there


def test_mp3_is_decoded_by_ffmpeg_block_by_block(tmp_path, speech, capfd):
    """libsndfile's MP3 decoder read block by block returns other samples than read in one go on a
    LAME VBR file; FFmpeg's decode equals the one-shot read and is what the working audio holds."""
    src = tmp_path / "vbr.mp3"
    sf.write(src, speech, RATE, format="MP3", subtype="MPEG_LAYER_III")  # LAME through libsndfile, VBR
    once, _ = sf.read(src, dtype="float32")
    ffmpeg = np.frombuffer(subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-f", "f32le", "-ac", "1", "-"],
                                          capture_output=True, check=True).stdout, np.float32)
    raw = tmp_path / "input.f32"
    frames = decode_stream(probe(src), str(raw), RATE)
    ours = read_frames(str(raw), 0, frames)
    assert frames == len(speech) == len(ffmpeg) == len(once)
    assert np.abs(ours - ffmpeg).max() < 1e-6
    assert np.abs(ours - once).max() < 1e-4
    assert _rms(speech - ours) < 0.1 * _rms(speech)
    captured = capfd.readouterr()
    assert "part2_3_length" not in captured.err and "mpg123" not in captured.err
