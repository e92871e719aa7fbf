"""A phrase as loud as its source: loudness matched, peaks limited (issue 13: the peak cap left loud
sources 3–6 dB quieter)."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from daemon.engines.resynth.loudness import CEILING, limit, match, speech_rms, to_rms

RATE = 16000


def _clicky_voice(seconds: float, click: float) -> np.ndarray:
    """A quiet voiced tone with a short loud click every 125 ms: a synthetic voice whose peaks stand far
    above its level (plosives), which is what capped the old gain."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    y = 0.05 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    for c in range(800, n - 16, RATE // 8):
        y[c:c + 16] += click * np.hanning(16)
    return y.astype(np.float32)


def _lufs(a: np.ndarray) -> float:
    return pyloudnorm.Meter(RATE).integrated_loudness(a.astype(np.float64))


def test_a_peaky_voice_reaches_a_loud_sources_loudness():
    source = np.clip(np.random.default_rng(1).standard_normal(2 * RATE) * 0.15, -0.95, 0.95).astype(np.float32)
    synth = _clicky_voice(2.0, 0.5)
    # What the old gain did: scale to the source's level, but never above a 0.98 peak.
    gain = 10 ** ((_lufs(source) - _lufs(synth)) / 20)
    capped = synth * min(gain, 0.98 / np.abs(synth).max())
    assert _lufs(source) - _lufs(capped) > 6.0
    out = match(synth, source, RATE, default_rms=0.08)
    assert abs(_lufs(out) - _lufs(source)) < 0.5
    assert np.abs(out).max() <= CEILING + 1e-6


def test_short_phrases_match_by_rms_and_silent_sources_get_the_default_level():
    src = (0.2 * np.sin(np.arange(RATE // 5) * 0.1)).astype(np.float32)  # 0.2 s: below one 400 ms block
    syn = (0.01 * np.sin(np.arange(RATE // 4) * 0.2)).astype(np.float32)
    assert speech_rms(match(syn, src, RATE, default_rms=0.08), RATE // 100) == pytest.approx(speech_rms(src, 160),
                                                                                               rel=0.02)
    silent = match(syn, np.zeros(RATE, np.float32), RATE, default_rms=0.08)
    assert speech_rms(silent, 160) == pytest.approx(0.08, rel=0.02)


def test_the_limiter_holds_peaks_and_leaves_the_rest():
    x = (0.3 * np.sin(np.arange(RATE) * 0.05)).astype(np.float32)
    x[8000] = 1.7
    y = limit(x, RATE)
    assert np.abs(y).max() <= CEILING + 1e-6
    untouched = np.r_[0:7800, 9000:RATE]  # beyond the look-ahead and the release around the peak
    assert np.array_equal(y[untouched], x[untouched])
    quiet = (0.5 * np.sin(np.arange(RATE) * 0.05)).astype(np.float32)
    assert np.array_equal(limit(quiet, RATE), quiet)


def test_text_read_aloud_is_scaled_to_a_level_with_limited_peaks():
    out = to_rms(_clicky_voice(1.0, 0.5), RATE, 0.2)
    assert np.abs(out).max() <= CEILING + 1e-6 and speech_rms(out, 160) > 0.1
