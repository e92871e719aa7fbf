"""PRESERVE_PROSODY: a synthesised phrase follows the source phrase's intonation and loudness.

Intonation: the source's F0 contour (Praat pitch tracker), moved into the target
voice's range by the ratio of the two medians (so the voice keeps its own pitch
and the source's rises and falls in semitones), mapped linearly from the source
slot onto the synthesised phrase, and imposed with Praat's overlap-add together
with the time-stretch.  Loudness: the source's phrase-level envelope (150 ms
smoothing, so syllables of the synthetic voice keep their own shape) replaces the
synthetic one.
"""

from __future__ import annotations

import numpy as np

from daemon.engines.pitch import MAX_PITCH, MIN_PITCH

ENVELOPE_S = 0.15
MAX_GAIN = 4.0


def f0(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, hertz) of the voiced frames."""
    import parselmouth

    if len(audio) < rate * 0.1:
        return np.zeros(0), np.zeros(0)
    snd = parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=rate)
    p = snd.to_pitch(time_step=0.01, pitch_floor=MIN_PITCH, pitch_ceiling=MAX_PITCH)
    hz = p.selected_array["frequency"]
    t = p.xs()
    voiced = hz > 0
    return t[voiced], hz[voiced]


def contour_for(source: np.ndarray, src_rate: int, synth: np.ndarray, rate: int):
    """Pitch points in ``synth``'s time following ``source``'s contour; None if either is unvoiced."""
    ts, hs = f0(source, src_rate)
    tt, ht = f0(synth, rate)
    if len(hs) < 3 or len(ht) < 3:
        return None
    ratio = float(np.median(ht) / np.median(hs))
    scale = (len(synth) / rate) / (len(source) / src_rate)
    hz = np.clip(hs * ratio, MIN_PITCH, MAX_PITCH)
    return ts * scale, hz


def follow_envelope(out: np.ndarray, source: np.ndarray, rate: int) -> np.ndarray:
    """Give ``out`` the smoothed loudness envelope of ``source`` (both at ``rate``), same mean level."""
    if len(out) < rate * 0.1 or len(source) < rate * 0.1:
        return out
    own = _envelope(out, rate)
    src = _envelope(source, rate)
    # Map the source's envelope onto the output's time axis (the phrase was stretched into the slot).
    src = np.interp(np.linspace(0, len(src) - 1, len(own)), np.arange(len(src)), src)
    floor = 1e-4
    src_n = src / max(float(np.mean(src)), floor)
    own_n = own / max(float(np.mean(own)), floor)
    gain = np.clip(src_n / np.maximum(own_n, 0.05), 1.0 / MAX_GAIN, MAX_GAIN)
    samples = np.interp(np.arange(len(out)), (np.arange(len(gain)) + 0.5) * _hop(rate), gain)
    return (out * samples).astype(np.float32)


def _hop(rate: int) -> int:
    return max(1, rate // 100)


def _envelope(x: np.ndarray, rate: int) -> np.ndarray:
    """RMS per 10 ms frame, smoothed over ENVELOPE_S."""
    hop = _hop(rate)
    n = max(1, len(x) // hop)
    frames = np.asarray(x[: n * hop], dtype=np.float64)
    energy = np.mean(frames.reshape(n, -1) ** 2, axis=1) if len(frames) >= hop else np.array([np.mean(np.square(x))])
    win = max(1, int(ENVELOPE_S * 100))
    kernel = np.hanning(win + 2)[1:-1]
    kernel /= kernel.sum()
    return np.sqrt(np.convolve(energy, kernel, mode="same"))
