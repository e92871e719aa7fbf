"""Generated music beds, mixes of speech over them, and the measures the bed tests use.

``make_bed`` writes a bed the tests know exactly (chords, a bass line, kick and hi-hat, a room-noise
floor), so the separation and the mix back can be judged against the true bed: ``si_sdr`` for
waveforms, ``chroma_corr`` for harmony (a pitch-shifted bed keeps its level but loses its chroma).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BPM = 120.0
BEAT = 60.0 / BPM
BAR = 4 * BEAT
# Triads as semitones above A2 (110 Hz): the progressions the seed picks from.
_CHORDS = {"Am": (0, 3, 7), "C": (3, 7, 10), "F": (-4, 0, 3), "G": (-2, 2, 5), "Dm": (5, 8, 12), "E": (7, 11, 14)}
_PROGRESSIONS = (("Am", "F", "C", "G"), ("C", "G", "Am", "F"), ("Dm", "G", "C", "Am"), ("Am", "Dm", "E", "Am"))


@dataclass(frozen=True)
class Bar:
    """One bar of the bed: its span in seconds, its chord's note frequencies and the bass note."""

    start: float
    end: float
    chord: tuple[float, ...]
    bass: float


def _hz(semitones_above_a2: float) -> float:
    return 110.0 * 2.0 ** (semitones_above_a2 / 12.0)


def bars(seconds: float, seed: int = 0) -> list[Bar]:
    """The chord plan ``make_bed`` plays for ``seconds`` with ``seed``: one chord per bar."""
    rng = np.random.default_rng(seed)
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    transpose = int(rng.integers(-2, 3))
    plan, start, i = [], 0.0, 0
    while start < seconds:
        notes = [n + transpose for n in _CHORDS[progression[i % len(progression)]]]
        # Chords an octave above the triad's root register, bass an octave below the root.
        plan.append(Bar(start, min(start + BAR, seconds), tuple(_hz(n + 12) for n in notes), _hz(notes[0] - 12)))
        start, i = start + BAR, i + 1
    return plan


def _tone(freq: float, n: int, rate: int, partials: int, decay_s: float) -> np.ndarray:
    """A plucked-ish tone: harmonics with 1/k amplitudes (those below 0.45 × rate) and an exp decay."""
    t = np.arange(n) / rate
    out = np.zeros(n)
    for k in range(1, partials + 1):
        if k * freq < 0.45 * rate:
            out += np.sin(2 * np.pi * k * freq * t) / k
    return out * np.exp(-t / decay_s)


def _kick(n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    freq = 50.0 + 100.0 * np.exp(-t / 0.03)            # a pitch sweep 150 -> 50 Hz
    return np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / 0.12)


def _hihat(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    cutoff = min(7000.0, 0.6 * rate / 2)                # stays below Nyquist at 8 kHz
    sos = butter(4, cutoff, btype="highpass", fs=rate, output="sos")
    t = np.arange(n) / rate
    return sosfilt(sos, rng.standard_normal(n)) * np.exp(-t / 0.025)


def _place(out: np.ndarray, sound: np.ndarray, at: int) -> None:
    end = min(len(out), at + len(sound))
    if at < end:
        out[at:end] += sound[: end - at]


def _room(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Pink-ish noise (1/f power), the steady floor of a room."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    spec /= np.sqrt(np.maximum(f, 20.0))
    noise = np.fft.irfft(spec, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def make_bed(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A music bed: chords (one per bar, 120 bpm), a bass line on the beats, kick on beats 1 and 3,
    hi-hat on eighths, and a room-noise floor 40 dB below the music. Deterministic for a seed;
    float32, peak 0.5."""
    n = int(round(seconds * rate))
    rng = np.random.default_rng(seed)
    chords, bass, drums = np.zeros(n), np.zeros(n), np.zeros(n)
    for bar in bars(seconds, seed):
        at, length = int(bar.start * rate), int(BAR * rate)
        for f in bar.chord:
            _place(chords, _tone(f, length, rate, 6, 1.5), at)
        for beat in range(4):
            _place(bass, _tone(bar.bass, int(BEAT * rate), rate, 3, 0.25), at + int(beat * BEAT * rate))
            if beat in (0, 2):
                _place(drums, _kick(int(0.4 * rate), rate), at + int(beat * BEAT * rate))
        for eighth in range(8):
            _place(drums, 0.25 * _hihat(int(0.1 * rate), rate, rng), at + int(eighth * BEAT / 2 * rate))
    music = 0.5 * chords / 3 + 0.6 * bass + 0.8 * drums
    music_rms = np.sqrt(np.mean(music**2)) if n else 0.0
    bed = music + _room(n, rate, rng) * music_rms * 10 ** (-40 / 20) if n else music
    peak = np.max(np.abs(bed)) if n else 0.0
    return (bed * (0.5 / peak) if peak > 0 else bed).astype(np.float32)


def active_level(x: np.ndarray, rate: int | None = None, frame: int = 800) -> float:
    """RMS over the active frames (within 30 dB of the loud ones): a speech level that pauses do not
    lower. ``frame`` is in samples (800: 50 ms at 16 kHz); ``rate`` sets it to 50 ms when given."""
    if rate:
        frame = max(1, rate // 20)
    x = np.asarray(x, dtype=np.float64)
    frames = x[: len(x) // frame * frame].reshape(-1, frame) if len(x) >= frame else x.reshape(1, -1)
    power = np.mean(frames**2, axis=1)
    if not np.any(power > 0):
        return 0.0
    loud = np.percentile(power[power > 0], 95)
    return float(np.sqrt(np.mean(power[power >= loud * 1e-3])))


def mix(voice: np.ndarray, bed: np.ndarray, bed_db: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``voice`` over ``bed`` scaled to ``bed_db`` dB below the voice's active level (the bed's level
    is its RMS). The bed is cut to the voice's length. Returns (mix, voice, scaled bed), float32."""
    voice = np.asarray(voice, dtype=np.float32)
    if len(bed) < len(voice):
        raise ValueError(f"the bed ({len(bed)} samples) is shorter than the voice ({len(voice)})")
    bed = np.asarray(bed[: len(voice)], dtype=np.float64)
    bed_rms = np.sqrt(np.mean(bed**2))
    if bed_rms == 0:
        raise ValueError("the bed is silent")
    scaled = (bed * (active_level(voice) * 10 ** (-bed_db / 20) / bed_rms)).astype(np.float32)
    return voice + scaled, voice, scaled


def si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio (dB) of ``est`` against ``ref`` (both zero-meaned)."""
    est = np.asarray(est, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    n = min(len(est), len(ref))
    est, ref = est[:n] - np.mean(est[:n]), ref[:n] - np.mean(ref[:n])
    target = ref * (np.dot(est, ref) / (np.dot(ref, ref) + 1e-20))
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + 1e-20) / (np.dot(noise, noise) + 1e-20)))


def _power(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin frequencies, bins × frames power) of a 100 ms Hann STFT, hop 50 ms."""
    from scipy.signal import stft

    n_fft = 1 << int(np.ceil(np.log2(0.1 * rate)))
    freqs, _, spec = stft(np.asarray(x, dtype=np.float64), fs=rate, window="hann", nperseg=n_fft,
                          noverlap=n_fft // 2, boundary=None, padded=False)
    return freqs, np.abs(spec) ** 2


def _classes(freqs: np.ndarray, power: np.ndarray, rate: int, fmin: float, fmax: float) -> np.ndarray:
    keep = (freqs >= fmin) & (freqs <= min(fmax, rate / 2))
    classes = np.round(12 * np.log2(freqs[keep] / 440.0)).astype(int) % 12
    out = np.zeros((power.shape[1], 12))
    for c in range(12):
        out[:, c] = power[keep][classes == c].sum(axis=0)
    return out


def chroma(x: np.ndarray, rate: int, fmin: float = 55.0, fmax: float = 2000.0) -> np.ndarray:
    """Frames × 12 pitch-class power (A = 0) from a 100 ms STFT, hop 50 ms, over fmin..fmax."""
    freqs, power = _power(x, rate)
    return _classes(freqs, power, rate, fmin, fmax)


def chroma_less(x: np.ndarray, y: np.ndarray, rate: int, fmin: float = 55.0, fmax: float = 2000.0) -> np.ndarray:
    """``chroma`` of ``x`` less ``y`` taken in power, bin by bin (what is left never below 0): what
    ``x`` carries beyond ``y`` whatever their phases, where ``x - y`` counts every difference of
    phase between two renderings of one sound as a sound of its own."""
    freqs, px = _power(x, rate)
    _, py = _power(y, rate)
    n = min(px.shape[1], py.shape[1])
    return _classes(freqs, np.maximum(px[:, :n] - py[:, :n], 0.0), rate, fmin, fmax)


def chroma_corr(a: np.ndarray, b: np.ndarray, rate: int) -> float:
    """How well ``a`` carries ``b``'s harmony: the mean, over the frames where ``b`` sounds, of the
    correlation between the two frames' pitch-class profiles (1: same chords, near 0: unrelated, a
    bed shifted by a third scores low)."""
    return profiles_corr(chroma(a, rate), chroma(b, rate))


def profiles_corr(ca: np.ndarray, cb: np.ndarray) -> float:
    """``chroma_corr`` of two frames × 12 profiles (``cb`` the reference)."""
    n = min(len(ca), len(cb))
    ca, cb = ca[:n], cb[:n]
    energy = cb.sum(axis=1)
    sounding = energy > 1e-3 * (energy.max() if n else 0.0)
    ca, cb, energy = ca[sounding], cb[sounding], energy[sounding]
    if not len(ca):
        return 0.0
    ca = ca - ca.mean(axis=1, keepdims=True)
    cb = cb - cb.mean(axis=1, keepdims=True)
    cos = np.sum(ca * cb, axis=1) / (np.linalg.norm(ca, axis=1) * np.linalg.norm(cb, axis=1) + 1e-20)
    return float(np.mean(cos))
