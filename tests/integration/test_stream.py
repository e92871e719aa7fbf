"""One job as a stream, on real speech, through the real stage functions and a real spawn pool.

    - the segmented VAD (front end per 60 s segment, LSTM carried across) against the
      whole-file ONNX pass: probabilities within 1e-3, and the same chunk cuts;
    - the pool's output (chunks, stitching and encoding in whatever order they finish)
      byte for byte the same as one task after another in this process;
    - a worker killed while the plan is still streaming: same output;
    - a decode run again over its own working audio never shows a reader fewer frames or
      other values.
No timing is asserted: the machine is shared.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from daemon import app, pipeline
from daemon.audio import vad
from daemon.audio.decode import decode_stream, frames_ready, read_frames
from daemon.audio.io import probe
from daemon.audio.plan import StreamPlanner, plan_chunks, silences
from daemon.backends.inline import InlineRunner
from daemon.bench.timeline import Timeline
from daemon.convert import convert_file
from daemon.settings import load_settings
from daemon.tasks import Decode, OpenJob, VadFeatures, VadProbabilities
from helpers import media, wait_until

RATE = 24000
CHUNK_SECONDS = 10.0


@pytest.fixture(scope="module")
def settings():
    return load_settings(engine="shift", sample_rate=RATE, chunk_seconds=CHUNK_SECONDS, workers=2,
                         log_level="warning")


@pytest.fixture(scope="module")
def inline(settings):
    return InlineRunner(settings)


@pytest.fixture(scope="module")
def long_speech(speech_dir, tmp_path_factory):
    """Four real recordings end to end, then again: 8 minutes, four languages (8 VAD segments)."""
    d = tmp_path_factory.mktemp("speech")
    parts = [speech_dir / n for n in ("silero_vad_en.wav", "silero_vad_ru.wav", "silero_vad_de.wav",
                                      "silero_vad_es.wav")]
    lst = d / "list.txt"
    lst.write_text("".join(f"file '{p}'\n" for p in parts * 2))
    out = d / "long.wav"
    media.ffmpeg("-f", "concat", "-safe", "0", "-i", str(lst), "-c:a", "pcm_s16le", str(out))
    return out


@pytest.fixture(scope="module")
def short_speech(long_speech, tmp_path_factory):
    """150 s of it: 15 chunks, 3 VAD segments, 5 MP3/M4A segments."""
    out = tmp_path_factory.mktemp("short") / "short.wav"
    media.ffmpeg("-i", str(long_speech), "-t", "150", str(out))
    return out


def test_segmented_vad_equals_the_whole_file_pass(inline, long_speech, tmp_path):
    opened = pipeline.open_job(OpenJob(str(long_speech), str(tmp_path)))
    audio = opened.audio
    total = pipeline.decode(Decode(opened.source, audio)).frames
    segments = vad.segment_count(total, RATE)
    assert segments == 8
    state, probs = None, []
    for k in reversed(range(segments)):  # the front end runs in any order
        pipeline.vad_features(VadFeatures(audio, RATE, k, total, str(tmp_path / f"{k}.npy")))
    for k in range(segments):
        out = pipeline.vad_probabilities(VadProbabilities((str(tmp_path / f"{k}.npy"),), state))
        state = out.state
        probs += out.probs
    streamed = np.concatenate(probs)
    wav = tmp_path / "input.wav"
    sf.write(wav, read_frames(audio, 0, total), RATE, subtype="FLOAT")
    whole, window_s = vad.speech_probabilities(str(wav))  # the ONNX model, window after window
    assert len(streamed) == len(whole)
    assert np.abs(streamed - whole).max() < 1e-3  # measured: 3e-5 on 30 minutes
    for seconds in (30.0, 10.0, 5.0):
        max_frames = int(seconds * RATE)
        reference = plan_chunks(total, max_frames, silences(whole, window_s, RATE), 480)
        planner = StreamPlanner(RATE, max_frames, 480, window_s)
        got = [c for p in probs for c in planner.add(p)] + planner.finish(total)
        assert got == reference, f"{seconds} s chunks"


@pytest.fixture(scope="module")
def pool(settings):
    p = app.build_pool(settings).start()
    yield p
    p.close()


@pytest.mark.parametrize("ext", ["wav", "mp3", "m4a", "flac", "opus", "ogg"])
def test_pool_output_is_the_sequential_output_byte_for_byte(pool, inline, short_speech, tmp_path, ext):
    seq = tmp_path / f"seq.{ext}"
    par = tmp_path / f"pool.{ext}"
    fig_seq = convert_file(inline.submit, short_speech, seq, tmp_path / "w-seq", parallelism=1)
    timeline = Timeline()
    fig = convert_file(pool.submit, short_speech, par, tmp_path / "w-pool", parallelism=2, steps=timeline)
    assert fig["chunks"] == fig_seq["chunks"] >= 15
    assert len(fig["worker_pids"]) == 2
    assert par.read_bytes() == seq.read_bytes()
    assert abs(media.duration(par) - 150.0) < 0.03
    steps = timeline.steps
    assert {s["stage"] for s in steps} >= {"open", "decode", "vad", "lstm", "chunk", "stitch", "join", "publish"}
    assert (ext in ("mp3", "m4a")) == any(s["stage"] == "encode" for s in steps)
    # The stream: chunks run while the VAD still scores, encoding while chunks still convert.
    assert min(s["t0"] for s in steps if s["stage"] == "chunk") < max(s["t1"] for s in steps if s["stage"] == "lstm")
    if ext in ("mp3", "m4a"):
        assert min(s["t0"] for s in steps if s["stage"] == "encode") < max(s["t1"] for s in steps if s["stage"] == "chunk")
    leftovers = sorted(p.name for p in (tmp_path / "w-pool").rglob("*") if p.is_file())
    assert leftovers == ["input.f32"], leftovers  # chunks, features and parts go once used


def test_the_decode_tells_the_stream_of_its_progress(pool, long_speech, tmp_path, monkeypatch):
    """The VAD starts on audio the decode has told of, before the decode ends.  The stream's look
    at the file (its fallback where reports cannot reach) is put off for an hour: only the
    decode's reports through the FIFO can start the VAD early."""
    from daemon import stream
    monkeypatch.setattr(stream, "LOOK", 3600.0)
    mp3 = tmp_path / "long.mp3"  # 8 minutes of MP3: a decode long enough to follow
    media.ffmpeg("-i", str(long_speech), "-c:a", "libmp3lame", "-b:a", "64k", str(mp3))
    timeline = Timeline()
    convert_file(pool.submit, mp3, tmp_path / "out.wav", tmp_path / "w", parallelism=2, steps=timeline)
    decode = next(s for s in timeline.steps if s["stage"] == "decode")
    first_vad = min(s["t0"] for s in timeline.steps if s["stage"] == "vad")
    assert first_vad < decode["t1"], (first_vad - decode["t0"], decode["t1"] - decode["t0"])
    assert not (tmp_path / "w" / "decode.fifo").exists()


@pytest.fixture
def own_pool(settings):
    """A pool of this test's own: the worker that replaces the killed one goes with it."""
    p = app.build_pool(settings).start()
    yield p
    p.close()


def test_a_worker_killed_while_the_plan_streams(own_pool, inline, long_speech, tmp_path):
    pool = own_pool
    expected = tmp_path / "seq.wav"
    convert_file(inline.submit, long_speech, expected, tmp_path / "w-seq", parallelism=1)
    restarts = pool.stats()["restarts"]
    work = tmp_path / "w-pool"
    result: dict = {}
    timeline = Timeline()

    def job():
        try:
            result["fig"] = convert_file(pool.submit, long_speech, tmp_path / "pool.wav", work, parallelism=2,
                                    steps=timeline)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            result["error"] = exc

    t = threading.Thread(target=job)
    t.start()
    wait_until(lambda: any((work / "vad").glob("*")), 120, interval=0.005, message="no VAD segment scored")
    victim = pool.stats()["pids"][0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    t.join(600)
    assert not t.is_alive()
    assert "error" not in result, result.get("error")
    steps = timeline.steps
    assert max(s["t0"] for s in steps if s["stage"] == "lstm") > killed_at, \
        "the plan had finished before the kill: the test proved nothing"
    assert pool.stats()["restarts"] > restarts
    assert (tmp_path / "pool.wav").read_bytes() == expected.read_bytes()


def test_a_decode_run_again_never_shows_a_reader_less(speech_dir, tmp_path):
    """What a retry after the decoding worker died does: the same bytes, never a shorter file."""
    src = media.concat(speech_dir / "silero_vad_en.wav", tmp_path / "src.wav", 5)  # 5 minutes
    raw = str(tmp_path / "input.f32")
    info = probe(src)
    frames = decode_stream(info, raw, 48000)
    first = open(raw, "rb").read()
    seen, changed, stop = [], [], threading.Event()

    def watch():
        while not stop.is_set():
            n = frames_ready(raw)
            seen.append(n)
            start = (len(seen) * 7919) % max(1, n - 4096)  # somewhere else each time
            if read_frames(raw, start, start + 4096).tobytes() != first[start * 4:(start + 4096) * 4]:
                changed.append(start)

    w = threading.Thread(target=watch)
    w.start()
    try:
        assert decode_stream(info, raw, 48000) == frames
    finally:
        stop.set()
        w.join()
    assert len(seen) > 3 and min(seen) == frames and not changed
    assert open(raw, "rb").read() == first
