"""Chunk planning (pure) and streaming stitch."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from daemon.audio.plan import plan_chunks, silences
from daemon.audio.stitch import stitch

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


@pytest.mark.parametrize("overlap", [0, 37])
def test_stitch_of_identity_chunks_is_the_original(tmp_path, overlap):
    rng = np.random.default_rng(1)
    total = 10_000
    x = rng.uniform(-0.5, 0.5, total).astype(np.float32)
    quiet = [] if overlap else [(3000, 3100), (6500, 6600)]
    chunks = plan_chunks(total, 4000, quiet, overlap)
    outs = []
    for c in chunks:
        p = tmp_path / f"{c.index}.wav"
        sf.write(p, x[c.start:c.end], RATE, subtype="FLOAT")
        outs.append(str(p))
    out = tmp_path / "out.wav"
    assert stitch(chunks, outs, total, RATE, str(out)) == total
    y, _ = sf.read(out, dtype="float32")
    np.testing.assert_allclose(y, x, atol=1e-6)
