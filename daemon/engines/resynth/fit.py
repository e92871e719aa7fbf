"""Fit synthesised phrases into the source's timeline.

Rules (times in seconds, relative to the chunk):
- a phrase starts at its source start;
- it is time-stretched (pitch kept, Praat PSOLA) towards its slot's length, the
  factor (output length / synthesised length) kept within [MIN_STRETCH, MAX_STRETCH];
- if even MIN_STRETCH leaves it longer than its slot, it borrows the silence after
  the slot, up to ``GAP`` before the next phrase (or the chunk's end);
- if it still does not fit, it is cut there with a short fade-out (``truncated``).
  Phrases never overlap, and the output keeps the input's length exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.engines.pitch import MAX_PITCH, MIN_PITCH

#: Silence always kept before the next phrase when a phrase borrows the pause after it.
GAP = 0.05
#: ...and up to this much of a longer source pause (``KEEP_SHARE`` of it at most), so the pause stays
#: a pause: 200 ms is still heard (and found by VAD) as a break between phrases.
KEEP_PAUSE = 0.2
KEEP_SHARE = 0.6
FADE = 0.03


@dataclass(frozen=True)
class Fit:
    factor: float     # output length / synthesised length
    length: float     # seconds placed (after any truncation)
    truncated: bool


def room(starts: list[float], i: int, total: float, ends: list[float] | None = None) -> float:
    """Seconds phrase ``i`` may occupy: up to the next phrase less the pause kept before it
    (``GAP``; with the source ``ends``, ``KEEP_SHARE`` of the source pause up to ``KEEP_PAUSE``), or the
    chunk's end."""
    if i + 1 < len(starts):
        keep = GAP
        if ends is not None:
            keep = max(GAP, min(KEEP_PAUSE, (starts[i + 1] - ends[i]) * KEEP_SHARE))
        end = starts[i + 1] - keep
    else:
        end = total
    return max(0.0, min(end, total) - starts[i])


def plan_fit(synth_len: float, slot: float, space: float, min_stretch: float, max_stretch: float) -> Fit:
    """Stretch factor and placed length for a phrase of ``synth_len`` seconds.

    ``slot``: the source phrase's length; ``space``: the most it may occupy
    (slot plus the following silence).
    """
    if synth_len <= 0:
        return Fit(1.0, 0.0, False)
    slot = max(0.0, min(slot, space))
    factor = min(max(slot / synth_len, min_stretch), max_stretch)
    length = synth_len * factor
    if length > space + 1e-9:
        return Fit(factor, space, True)
    return Fit(factor, length, False)


def trim_silence(audio: np.ndarray, rate: int, *, floor_db: float = -40.0, pad: float = 0.01) -> np.ndarray:
    """Drop leading and trailing silence (below ``floor_db`` of the peak, in 10 ms frames)."""
    if not len(audio):
        return audio
    frame = max(1, rate // 100)
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1))
    peak = float(energy.max())
    if peak <= 0:
        return audio[:0]
    loud = np.nonzero(energy > peak * 10 ** (floor_db / 20))[0]
    a = max(0, loud[0] * frame - int(pad * rate))
    b = min(len(audio), (loud[-1] + 1) * frame + int(pad * rate))
    return audio[a:b]


def stretch(audio: np.ndarray, rate: int, factor: float, pitch=None) -> np.ndarray:
    """Time-stretch by ``factor`` keeping pitch (Praat overlap-add on a Manipulation).

    ``pitch``: optional ``(times, hertz)`` in the input's time to replace the
    pitch contour (see ``prosody.py``).
    """
    if abs(factor - 1.0) < 1e-3 and pitch is None:
        return audio.astype(np.float32, copy=True)
    if len(audio) < rate * 0.05:  # too short for a pitch analysis: plain resampling of time
        n = max(1, int(round(len(audio) * factor)))
        return np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio).astype(np.float32)
    import parselmouth
    from parselmouth.praat import call

    snd = parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=rate)
    manip = call(snd, "To Manipulation", 0.01, MIN_PITCH, MAX_PITCH)
    dur = call(manip, "Extract duration tier")
    call(dur, "Add point", 0.0, float(factor))
    call([manip, dur], "Replace duration tier")
    if pitch is not None and len(pitch[0]):
        tier = call("Create PitchTier", "pitch", 0.0, snd.get_total_duration())
        for t, hz in zip(*pitch):
            call(tier, "Add point", float(t), float(hz))
        call([manip, tier], "Replace pitch tier")
    # Overlap-add draws random numbers for unvoiced stretches: a fixed seed per phrase makes the
    # result independent of what the worker ran before (as the shift engine does per chunk).
    parselmouth.praat.run("random_initializeWithSeedUnsafelyButPredictably (1)")
    out = call(manip, "Get resynthesis (overlap-add)")
    return np.asarray(out.values[0], dtype=np.float32)


def place(out: np.ndarray, segment: np.ndarray, start: int, limit: int, fade: int) -> int:
    """Write ``segment`` into ``out[start:limit]``, cut with a fade-out if longer; return samples written."""
    start = max(0, min(start, len(out)))
    limit = max(start, min(limit, len(out)))
    n = min(len(segment), limit - start)
    if n <= 0:
        return 0
    seg = segment[:n].astype(np.float32, copy=True)
    if n < len(segment) and fade > 0:
        f = min(fade, n)
        seg[n - f:] *= np.linspace(1.0, 0.0, f, dtype=np.float32)
    out[start:start + n] = seg
    return n
