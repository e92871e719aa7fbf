"""The generated bed the separation and bed tests measure against: deterministic, and made of the
parts it claims (chords, bass, drums, a noise floor), and the measures behave as they say."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.beds import BAR, BEAT, bars, chroma, chroma_corr, chroma_less, make_bed, mix, profiles_corr, si_sdr

RATE = 16000


def _level_at(x: np.ndarray, rate: int, freq: float) -> float:
    """Power (dB) of the strongest bin within 1.5 % of ``freq`` (bins of 0.5 Hz)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=2 * rate)) ** 2
    f = np.fft.rfftfreq(2 * rate, 1.0 / rate)
    near = np.abs(f - freq) <= 0.015 * freq
    return float(10 * np.log10(spec[near].max() + 1e-30))


def test_the_same_seed_gives_the_same_bed_and_another_seed_another():
    a = make_bed(4.0, RATE, seed=3)
    assert a.dtype == np.float32 and len(a) == 4 * RATE
    assert np.array_equal(a, make_bed(4.0, RATE, seed=3))
    assert not np.allclose(a, make_bed(4.0, RATE, seed=4))


def test_the_bed_has_its_chord_its_bass_and_drums_over_a_noise_floor():
    bed = make_bed(2 * BAR, RATE, seed=1).astype(np.float64)
    first = bars(2 * BAR, seed=1)[0]
    bar = bed[: int(BAR * RATE)]
    spec = np.abs(np.fft.rfft(bar * np.hanning(len(bar)), n=2 * RATE)) ** 2
    median = float(10 * np.log10(np.median(spec)))
    for note in (*first.chord, first.bass):
        assert _level_at(bar, RATE, note) > median + 30, f"no energy at {note:.1f} Hz"
    # The kick on beat 3: the level jumps where it starts.
    onset = int(2 * BEAT * RATE)
    assert np.sqrt(np.mean(bed[onset:onset + 800] ** 2)) > 2 * np.sqrt(np.mean(bed[onset - 800:onset] ** 2))
    # The hi-hat: energy above 5 kHz, where no note of the chords or the bass reaches.
    hf = np.fft.rfftfreq(2 * RATE, 1.0 / RATE) > 5000
    assert spec[hf].sum() > 1e-4 * spec.sum()
    # The room: no sample of silence anywhere (a floor under everything).
    frames = bed[: len(bed) // 160 * 160].reshape(-1, 160)
    assert np.sqrt(np.mean(frames**2, axis=1)).min() > 1e-5


@pytest.mark.parametrize("rate", [8000, 192000])
def test_odd_rates_stay_below_nyquist(rate):
    bed = make_bed(1.0, rate, seed=0)
    assert len(bed) == rate and np.isfinite(bed).all() and np.abs(bed).max() == pytest.approx(0.5)


def test_mix_sets_the_bed_below_the_voice_and_the_measures_agree():
    rng = np.random.default_rng(0)
    voice = (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32)
    bed = make_bed(3.0, RATE, seed=0)
    mixed, v, scaled = mix(voice, bed, 10.0)
    assert len(mixed) == len(voice) and np.array_equal(v, voice)
    assert 10 * np.log10(np.mean(voice.astype(float) ** 2) / np.mean(scaled.astype(float) ** 2)) == pytest.approx(10, abs=0.1)
    assert np.allclose(mixed, voice + scaled)
    assert si_sdr(mixed, voice) == pytest.approx(10, abs=0.3)
    assert si_sdr(3 * voice, voice) > 100
    with pytest.raises(ValueError):
        mix(voice, bed[:100], 10.0)


def test_chroma_corr_is_high_for_the_bed_and_low_for_a_shifted_one():
    import soxr

    bed = make_bed(8.0, RATE, seed=2)
    up_a_third = soxr.resample(bed, RATE, int(RATE / 2 ** (4 / 12)))[: len(bed)]
    assert chroma_corr(bed, bed, RATE) > 0.99
    assert chroma_corr(up_a_third, bed, RATE) < 0.3


def test_chroma_less_takes_away_a_sound_whatever_its_phase():
    """Two renderings of one voice that do not line up sample for sample: their waveform difference
    is a loud sound of its own, their difference in power is nothing, and what else there is stays."""
    bed = make_bed(8.0, RATE, seed=2)
    t = np.arange(len(bed)) / RATE
    tone = sum(np.sin(2 * np.pi * f * t) for f in (233.1, 466.2, 699.3))  # a B flat voice, 6 dB over the bed
    voice = (tone * 2 * np.std(bed) / np.std(tone)).astype(np.float32)
    late = np.roll(voice, 7)  # the same voice, 7 samples later
    mixed = bed + voice
    assert chroma_corr(mixed - late, bed, RATE) < 0.2                               # measured -0.10
    assert profiles_corr(chroma_less(mixed, late, RATE), chroma(bed, RATE)) > 0.85  # measured 0.91
    assert profiles_corr(chroma_less(voice, late, RATE), chroma(bed, RATE)) < 0.2   # nothing of the bed: -0.14
