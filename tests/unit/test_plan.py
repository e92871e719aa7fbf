"""Chunk planning (pure) and streaming stitch."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from daemon.audio.plan import StreamPlanner, plan_chunks, silences
from daemon.audio.stitch import Seams, finish_file, own_range, start_file, stitch, write_frames

RATE = 1000


def covers(chunks, total):
    """Chunks tile [0, total) with overlaps only where declared."""
    assert chunks[0].start == 0 and chunks[-1].end == total
    for a, b in zip(chunks, chunks[1:]):
        assert a.end - b.start == a.overlap_after == b.overlap_before
    return True


def test_short_file_is_one_chunk():
    chunks = plan_chunks(5000, 10_000, [], 20)
    assert [(c.start, c.end) for c in chunks] == [(0, 5000)]


def test_cuts_fall_in_silences_and_respect_the_limit():
    quiet = [(4000, 4600), (9000, 9400), (15_000, 16_000), (23_000, 23_500)]
    chunks = plan_chunks(30_000, 10_000, quiet, 20)
    assert covers(chunks, 30_000)
    assert all(c.frames <= 10_000 for c in chunks)
    for c in chunks[:-1]:
        assert any(s <= c.end <= e for s, e in quiet), f"cut at {c.end} is not in a silence"
        assert c.overlap_after == 0
    # the longest silence in the second half of the span wins, cut at its middle
    assert chunks[0].end == 9200


def test_forced_cut_without_silence_crossfades():
    chunks = plan_chunks(25_000, 10_000, [], 40)
    assert covers(chunks, 25_000)
    assert all(c.frames <= 10_000 for c in chunks)
    assert chunks[0].overlap_after == 40 and chunks[1].overlap_before == 40


def test_silences_from_probabilities():
    probs = np.array([0.9] * 10 + [0.1] * 20 + [0.9] * 5 + [0.2] * 3 + [0.8] * 2)
    out = silences(probs, 0.032, 16000, threshold=0.5, min_silence_s=0.25, pad_s=0.0)
    # 20 quiet windows (0.64 s) qualify; 3 (0.096 s) do not
    assert out == [(int(10 * 0.032 * 16000), int(30 * 0.032 * 16000))]


def _identity_chunks(tmp_path, x, chunks) -> list[str]:
    """Each chunk's "converted" file: its own input samples."""
    paths = []
    for c in chunks:
        p = tmp_path / f"{c.index}.wav"
        sf.write(p, x[c.start:c.end], RATE, subtype="FLOAT")
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("overlap", [0, 37])
def test_stitch_of_identity_chunks_is_the_original(tmp_path, overlap):
    rng = np.random.default_rng(1)
    total = 10_000
    x = rng.uniform(-0.5, 0.5, total).astype(np.float32)
    quiet = [] if overlap else [(3000, 3100), (6500, 6600)]
    chunks = plan_chunks(total, 4000, quiet, overlap)
    outs = _identity_chunks(tmp_path, x, chunks)
    out = tmp_path / "out.wav"
    assert stitch(chunks, outs, total, RATE, str(out)) == total
    y, _ = sf.read(out, dtype="float32")
    np.testing.assert_allclose(y, x, atol=1e-6)


# --- the plan as a stream --------------------------------------------------------------------------
def _reference_silences(probs, window_s, rate, threshold=0.5, min_silence_s=0.25, pad_s=0.05):
    """The loop the vectorised ``silences`` replaced, kept as its specification."""
    quiet = np.asarray(probs) < threshold
    out, win, pad = [], window_s * rate, int(pad_s * rate)
    i, n = 0, len(quiet)
    while i < n:
        if not quiet[i]:
            i += 1
            continue
        j = i
        while j < n and quiet[j]:
            j += 1
        if (j - i) * window_s >= min_silence_s:
            s, e = int(i * win) + (pad if i else 0), int(j * win) - (pad if j < n else 0)
            if e > s:
                out.append((s, e))
        i = j
    return out


def _speechlike(rng, windows: int) -> np.ndarray:
    """Runs of speech and of pauses of varied lengths, probabilities near and far from 0.5."""
    out, speaking = [], True
    while sum(map(len, out)) < windows:
        n = int(rng.integers(1, 120 if speaking else 40))
        lo, hi = (0.45, 1.0) if speaking else (0.0, 0.55)
        out.append(rng.uniform(lo, hi, n))
        speaking = not speaking
    return np.concatenate(out)[:windows].astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_silences_equal_the_loop(seed):
    probs = _speechlike(np.random.default_rng(seed), 5000)
    for rate in (8000, 16000, 44100):
        assert silences(probs, 0.032, rate) == _reference_silences(probs, 0.032, rate)


@pytest.mark.parametrize("seed", range(8))
def test_stream_planner_fed_in_pieces_equals_the_whole_file_plan(seed):
    rng = np.random.default_rng(100 + seed)
    rate, window_s = 16000, 0.032
    probs = _speechlike(rng, int(rng.integers(2000, 9000)))
    if seed % 2:  # 40 s without a pause: a forced cut, with its crossfade
        probs = np.concatenate([probs[:1000], np.full(1250, 0.9, np.float32), probs[1000:]])
    total = int(len(probs) * window_s * rate) - int(rng.integers(0, 400))
    max_frames = int(rng.choice([5, 12, 30])) * rate
    whole = plan_chunks(total, max_frames, silences(probs, window_s, rate), 320)
    planner = StreamPlanner(rate, max_frames, 320, window_s)
    streamed, pos = [], 0
    while pos < len(probs):
        n = int(rng.integers(1, 2000))
        early = planner.add(probs[pos:pos + n])
        pos += n
        # a chunk handed out early only ever covers audio whose probabilities are known
        assert all(c.end <= pos * window_s * rate for c in early)
        streamed += early
    streamed += planner.finish(total)
    assert streamed == whole
    assert len(whole) > 3 and (any(c.overlap_after for c in whole) or not seed % 2)


@pytest.mark.parametrize("kind", ["f32", "wav16"])
def test_chunks_written_in_place_in_any_order_equal_the_one_pass_stitch(tmp_path, kind):
    rng = np.random.default_rng(7)
    total = 20_000
    x = rng.uniform(-1.2, 1.2, total).astype(np.float32)  # some beyond full scale: clipped in the WAV
    chunks = plan_chunks(total, 3000, [(4000, 4100), (9000, 9050)], 37)  # cut in silences and forced
    assert any(c.overlap_after for c in chunks) and any(not c.overlap_after for c in chunks[:-1])
    expected = tmp_path / "one-pass.wav"
    stitch(chunks, _identity_chunks(tmp_path, x, chunks), total, RATE, str(expected))
    out = str(tmp_path / f"stitched.{kind}")
    start_file(out, kind, RATE)
    seams, ready = Seams(out, kind), []
    for i in rng.permutation(len(chunks)):  # what chunk tasks do, finishing in any order
        c = chunks[i]
        y = x[c.start:c.end]
        lo, hi = own_range(c)
        write_frames(out, kind, lo, y[lo - c.start:hi - c.start])
        seams.add(c, y[:c.overlap_before], y[len(y) - c.overlap_after:])
        ready.append(seams.ready)
        assert seams.ready == (own_range(chunks[seams.next - 1])[1] if seams.next else 0)
    assert ready == sorted(ready) and ready[-1] == total
    seams.close(total)
    finish_file(out, kind, RATE, total)
    want, _ = sf.read(expected, dtype="float32")
    if kind == "f32":
        np.testing.assert_array_equal(np.fromfile(out, np.float32), want)
    else:  # the WAV output itself: what libsndfile makes of the same samples as PCM_16
        sf.write(tmp_path / "ref16.wav", np.clip(want, -1, 1), RATE, subtype="PCM_16")
        got, rate = sf.read(out, dtype="int16")
        assert rate == RATE and sf.info(out).frames == total
        np.testing.assert_array_equal(got, sf.read(tmp_path / "ref16.wav", dtype="int16")[0])
