"""A synthesised phrase as loud as the source phrase: loudness matched, peaks limited.

Scaling to the source's level and then capping the peak (the old way) left loud sources
3–6 dB quieter: a synthetic voice's crest factor is higher than a compressed broadcast
voice's, so the cap took the level back down.  Here the gain matches loudness (ITU-R
BS.1770 integrated loudness through pyloudnorm, K-weighted and gated, for phrases of at
least one 400 ms block; the RMS of the louder half of 10 ms frames for shorter ones) and
a look-ahead limiter then holds the few peaks above ``CEILING`` without touching the rest.
"""

from __future__ import annotations

import numpy as np

#: Peaks are held below this (-1 dBFS): room for lossy encoders' overshoot.
CEILING = 10 ** (-1 / 20)
#: The limiter's look-ahead and release: short enough to act only around a peak.
ATTACK_S = 0.003
RELEASE_S = 0.03
#: BS.1770's gating block: shorter audio is measured by RMS.
BLOCK_S = 0.4
#: Sources quieter than this (dB, either measure) count as silent: the default level is used.
SILENT_DB = -60.0
MAX_GAIN_DB = 40.0
#: Gain, limit, measure again: at most this many times, until within TOLERANCE_DB.
PASSES, TOLERANCE_DB = 4, 0.25


def speech_rms(audio: np.ndarray, frame: int = 480) -> float:
    """RMS of the louder half of the frames: a level that ignores pauses inside a phrase."""
    n = len(audio) // frame
    if n < 2:
        return float(np.sqrt(np.mean(audio ** 2))) if len(audio) else 0.0
    e = np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    e = np.sort(e)[n // 2:]
    return float(np.sqrt(np.mean(e)))


def _db(x: float) -> float:
    return 20 * np.log10(x) if x > 0 else -np.inf


def level_db(audio: np.ndarray, rate: int, *, lufs: bool) -> float:
    """Integrated loudness (LUFS) or speech RMS (dBFS) of ``audio``; -inf for silence."""
    if not len(audio):
        return -np.inf
    if lufs:
        import pyloudnorm

        value = pyloudnorm.Meter(rate).integrated_loudness(np.asarray(audio, dtype=np.float64))
        return float(value) if np.isfinite(value) else -np.inf
    return _db(speech_rms(audio, max(1, rate // 100)))


def match(segment: np.ndarray, source: np.ndarray, rate: int, *, default_rms: float) -> np.ndarray:
    """``segment`` at the loudness of ``source`` (or at ``default_rms`` when the source is silent),
    peaks limited to CEILING."""
    if not len(segment):
        return segment
    lufs = min(len(segment), len(source)) >= int(BLOCK_S * rate) + 1
    want = level_db(source, rate, lufs=lufs)
    if want < SILENT_DB:
        lufs, want = False, _db(default_rms)
    have = level_db(segment, rate, lufs=lufs)
    if not np.isfinite(have):
        return segment
    out = segment
    for _ in range(PASSES):  # the limiter takes a little loudness back: measure again and make it up
        step = min(want - have, MAX_GAIN_DB)
        if abs(step) < TOLERANCE_DB:
            break
        out = limit(out * 10 ** (step / 20), rate)
        have = level_db(out, rate, lufs=lufs)
    return out


def to_rms(segment: np.ndarray, rate: int, target_rms: float) -> np.ndarray:
    """``segment`` scaled to a speech RMS of ``target_rms``, peaks limited (text read aloud)."""
    rms = speech_rms(segment, max(1, rate // 100))
    return limit(segment * (target_rms / rms), rate) if rms > 0 else segment


def limit(audio: np.ndarray, rate: int, ceiling: float = CEILING) -> np.ndarray:
    """A look-ahead peak limiter: the gain each sample needs (≤ 1), held over ATTACK_S before and
    RELEASE_S after each peak, then smoothed by a moving average that never rises above the held
    gain, so no sample ends above ``ceiling`` and quiet stretches keep gain 1."""
    x = np.asarray(audio, dtype=np.float32)
    peak = np.abs(x)
    if not len(x) or float(peak.max()) <= ceiling:
        return x.astype(np.float32, copy=False)
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-9))
    a = max(1, int(ATTACK_S * rate))
    r = max(a, int(RELEASE_S * rate))
    # Hold each dip for `a` samples before it and `r` after, then average over `a`: every window
    # of the average lies inside the hold, so the smoothed gain stays at or below what is needed.
    held = minimum_filter1d(need, size=2 * a + 1, mode="nearest")
    held = _hold_after(held, r)
    gain = uniform_filter1d(held, size=a, mode="nearest")
    return np.clip(x * gain, -ceiling, ceiling).astype(np.float32)


def _hold_after(gain: np.ndarray, n: int) -> np.ndarray:
    """Each sample's gain at most the smallest of the ``n`` samples before it (a release hold)."""
    from scipy.ndimage import minimum_filter1d

    return minimum_filter1d(gain, size=n, origin=(n - 1) // 2, mode="nearest")
