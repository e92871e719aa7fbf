"""Fitting synthesised phrases into their slots: stretch limits, borrowing silence, truncation."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.engines.resynth.fit import (
    GAP,
    KEEP_PAUSE,
    KEEP_SHARE,
    place,
    plan_fit,
    room,
    stretch,
    trim_silence,
)
from daemon.engines.shift import median_f0

RATE = 16000


def test_phrase_shorter_than_its_slot_is_slowed_to_fill_it():
    f = plan_fit(synth_len=1.0, slot=1.5, space=3.0, min_stretch=0.5, max_stretch=2.0)
    assert f.factor == pytest.approx(1.5) and f.length == pytest.approx(1.5) and not f.truncated


def test_slowing_is_capped_at_max_stretch():
    f = plan_fit(1.0, slot=4.0, space=5.0, min_stretch=0.5, max_stretch=2.0)
    assert f.factor == 2.0 and f.length == pytest.approx(2.0) and not f.truncated


def test_long_phrase_is_compressed_into_its_slot():
    f = plan_fit(2.0, slot=1.5, space=1.5, min_stretch=0.5, max_stretch=2.0)
    assert f.factor == pytest.approx(0.75) and f.length == pytest.approx(1.5)


def test_too_long_phrase_borrows_the_following_silence():
    # Even at MIN_STRETCH it needs 2.0 s for a 1.5 s slot; 2.5 s are free before the next phrase.
    f = plan_fit(4.0, slot=1.5, space=2.5, min_stretch=0.5, max_stretch=2.0)
    assert f.factor == 0.5 and f.length == pytest.approx(2.0) and not f.truncated


def test_phrase_that_cannot_fit_even_borrowing_is_truncated():
    f = plan_fit(6.0, slot=1.5, space=2.0, min_stretch=0.5, max_stretch=2.0)
    assert f.factor == 0.5 and f.length == pytest.approx(2.0) and f.truncated


def test_slot_overlapping_the_next_phrase_is_clipped_to_the_space():
    f = plan_fit(1.0, slot=3.0, space=1.2, min_stretch=0.5, max_stretch=2.0)
    assert f.length == pytest.approx(1.2) and not f.truncated


def test_empty_synthesis():
    assert plan_fit(0.0, 1.0, 1.0, 0.5, 2.0).length == 0.0


def test_room_stops_a_gap_before_the_next_phrase_or_at_the_chunk_end():
    starts = [0.5, 2.0, 4.0]
    assert room(starts, 0, 10.0) == pytest.approx(1.5 - GAP)
    assert room(starts, 2, 10.0) == pytest.approx(6.0)
    assert room([9.9], 0, 10.0) == pytest.approx(0.1)


def test_room_keeps_part_of_a_longer_source_pause():
    starts, ends = [0.5, 2.0, 3.0, 3.7], [1.4, 2.95, 3.4, 4.0]
    assert room(starts, 0, 10.0, ends) == pytest.approx(1.5 - KEEP_PAUSE)  # 0.6 s pause: keep 0.2 s
    assert room(starts, 1, 10.0, ends) == pytest.approx(1.0 - GAP)  # 0.05 s pause: keep the minimum
    assert room(starts, 2, 10.0, ends) == pytest.approx(0.7 - 0.3 * KEEP_SHARE)  # 0.3 s pause: keep 0.18 s


def test_place_never_writes_past_its_limit_and_fades_a_cut():
    out = np.zeros(100, np.float32)
    seg = np.ones(50, np.float32)
    assert place(out, seg, 10, 40, fade=10) == 30
    assert out[:10].sum() == 0 and out[40:].sum() == 0
    assert out[10] == 1.0 and out[39] == 0.0 and 0 < out[35] < 1  # faded tail
    out2 = np.zeros(100, np.float32)
    assert place(out2, seg, 90, 200, fade=5) == 10  # the chunk's end is a limit too
    assert place(out2, seg, 100, 200, fade=5) == 0


def _voice(seconds: float, f0: float = 150.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))).astype(np.float32)


def test_trim_silence_keeps_only_the_sound_with_a_little_padding():
    a = np.concatenate([np.zeros(RATE // 2), _voice(1.0), np.zeros(RATE)]).astype(np.float32)
    t = trim_silence(a, RATE)
    assert abs(len(t) / RATE - 1.02) < 0.02
    assert len(trim_silence(np.zeros(RATE, np.float32), RATE)) == 0


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.6, 2.0])
def test_stretch_changes_duration_but_not_pitch(factor):
    a = _voice(1.0, 150.0)
    out = stretch(a, RATE, factor)
    assert len(out) / RATE == pytest.approx(factor, abs=0.02)
    assert median_f0(out, RATE) == pytest.approx(150.0, rel=0.05)


def test_stretch_follows_a_given_pitch_contour():
    a = _voice(1.0, 150.0)
    out = stretch(a, RATE, 1.0, pitch=(np.array([0.1, 0.9]), np.array([200.0, 200.0])))
    assert median_f0(out, RATE) == pytest.approx(200.0, rel=0.05)
