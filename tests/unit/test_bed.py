"""The bed stage's arithmetic (daemon/audio/bed.py) with the real Silero VAD.

The separator here is an oracle that returns the true voice of the test's own mix: what is under
test is the gate, the mix, the duck and auto's rule, which must hold for any separator.  The real
separator runs in tests/integration/test_bed_goals.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.audio import bed
from daemon.audio.resample import resample
from helpers import beds

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT.parent / "shared" / "data" / "speech"
RATE = 48000


@pytest.fixture(scope="module")
def vad():
    from daemon.audio.vad import SplitVad

    return SplitVad()


@pytest.fixture(scope="module")
def speech():
    x, r = sf.read(SPEECH / "silero_vad_en.wav", dtype="float32")
    return resample(x, r, RATE)[: 12 * RATE]


class Oracle:
    """Returns the voice it was given for the mix it was given (and counts its calls)."""

    def __init__(self, mix=None, voice=None):
        self.mix, self.voice, self.calls = mix, voice, 0

    def vocals(self, audio, rate):
        self.calls += 1
        assert self.mix is not None and np.array_equal(audio, self.mix), "asked to separate an unexpected signal"
        return self.voice

    def models(self):
        return [{"name": "oracle"}]


def _gate(vad, mix, stem):
    """The stage's mask: speech where the VAD hears it in the mix or in the voice stem."""
    probs = np.maximum(*(bed.vad_probabilities(vad, bed.at_vad_rate(x, RATE)) for x in (mix, stem)))
    return bed.speech_mask(probs, len(mix), RATE)


def doubled(samples):
    return 2 * samples, {"engine": "x2"}


def test_mask_is_zero_between_phrases_and_one_over_speech():
    probs = np.zeros(100, np.float32)
    probs[40:60] = 0.9
    window = bed.WINDOW * RATE // bed.VAD_RATE
    mask = bed.speech_mask(probs, 100 * window, RATE)
    assert mask.dtype == np.float32 and len(mask) == 100 * window
    assert mask.min() == 0.0 and mask.max() == 1.0
    assert np.all(mask[45 * window:55 * window] == 1.0)
    hang = int(np.ceil(bed.HANG_S / (bed.WINDOW / bed.VAD_RATE)))
    assert np.all(mask[: (40 - hang - 2) * window] == 0.0) and np.all(mask[(60 + hang + 2) * window:] == 0.0)
    assert np.all(mask[(40 - hang) * window:(60 + hang) * window] > 0)  # widened by the hang
    assert np.all(np.abs(np.diff(mask)) < 0.01)  # a ramp, not a step


def test_keep_gives_the_input_between_phrases_and_converts_the_voice_under_them(vad, speech):
    mix, voice, true_bed = beds.mix(speech, beds.make_bed(len(speech) / RATE, RATE), 9)
    stage = bed.BedStage("keep", Oracle(mix, voice), vad)
    out, info = stage.convert(mix, RATE, doubled)
    mask = _gate(vad, mix, voice)
    assert 0 < (mask == 0).sum() < len(mask)
    assert np.array_equal(out[mask == 0], mix[mask == 0])  # between phrases: the input, exactly
    np.testing.assert_allclose(out, mix + mask * voice, atol=1e-5)  # the voice converted (x2), the bed kept
    assert info["engine"] == "x2" and info["bed"]["kept"] and info["models"] == [{"name": "oracle"}]
    # An oracle leaves no voice in the bed: the estimate sees none beyond the bed's own changes.
    assert info["bed"]["residual_db"] > 10


def test_duck_lowers_the_bed_under_speech_only(vad, speech):
    mix, voice, _ = beds.mix(speech, beds.make_bed(len(speech) / RATE, RATE), 9)
    out, info = bed.BedStage("keep", Oracle(mix, voice), vad, duck_db=12).convert(mix, RATE, doubled)
    mask = _gate(vad, mix, voice)
    gated = mask * voice
    expected = 2 * gated + (mix - gated) * (1 - (1 - 10 ** (-12 / 20)) * mask)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.array_equal(out[mask == 0], mix[mask == 0])
    assert info["bed"]["duck_db"] == 12


def test_auto_on_clean_speech_is_the_engine_on_the_chunk_and_never_separates(vad, speech):
    separator = Oracle()
    out, info = bed.BedStage("auto", separator, vad).convert(speech, RATE, doubled)
    assert separator.calls == 0
    assert np.array_equal(out, 2 * speech)  # what drop gives, bit for bit
    assert info["bed"]["kept"] is False and "gap_below_speech_db" in info["bed"]


@pytest.mark.parametrize("bed_db", [6, 12])
def test_auto_keeps_a_music_bed(vad, speech, bed_db):
    mix, voice, _ = beds.mix(speech, beds.make_bed(len(speech) / RATE, RATE, seed=3), bed_db)
    separator = Oracle(mix, voice)
    _, info = bed.BedStage("auto", separator, vad).convert(mix, RATE, doubled)
    assert info["bed"]["kept"] is True and separator.calls == 1
    assert info["bed"]["gap_below_speech_db"] <= bed.KEEP_WITHIN_DB


@pytest.mark.parametrize("mode", ["auto", "keep"])
def test_music_alone_comes_out_as_it_went_in(vad, mode):
    music = beds.make_bed(8, RATE, seed=1)
    separator = Oracle(music, np.zeros_like(music))  # the stand-in hears no voice in music alone
    out, info = bed.BedStage(mode, separator, vad).convert(music, RATE, doubled)
    assert np.array_equal(out, music) and separator.calls == 1  # no speech: one look for a voice the VAD missed
    assert info["bed"]["kept"] is True


@pytest.mark.parametrize("mode", ["auto", "keep"])
def test_a_voice_the_vad_did_not_hear_is_converted_not_passed_through(vad, mode):
    sound = beds.make_bed(8, RATE, seed=1)  # the VAD hears no speech in it; the stand-in says it is mostly voice
    voice = (0.9 * sound).astype(np.float32)
    out, info = bed.BedStage(mode, Oracle(sound, voice), vad).convert(sound, RATE, doubled)
    assert np.array_equal(out, doubled(voice)[0] + (sound - voice))  # the voice converted, the rest kept
    assert info["bed"]["kept"] is True and info["bed"]["unheard_voice"] is True


def test_silence(vad):
    silence = np.zeros(5 * RATE, np.float32)
    out, info = bed.BedStage("auto", Oracle(), vad).convert(silence, RATE, doubled)
    assert not info["bed"]["kept"] and np.array_equal(out, silence)
    out, info = bed.BedStage("keep", Oracle(), vad).convert(silence, RATE, doubled)
    assert info["bed"]["kept"] and np.array_equal(out, silence)


def test_summary_for_the_sidecar():
    kept = {"mode": "auto", "kept": True, "duck_db": 0.0, "speech_seconds": 10.0, "residual_db": 20.0}
    worse = {**kept, "speech_seconds": 10.0, "residual_db": 10.0}
    skipped = {"mode": "auto", "kept": False}
    assert bed.summarize([{"bed": skipped}, {}]) is None
    assert bed.summarize([{"phrases": []}]) is None  # drop: no bed stage at all
    s = bed.summarize([{"bed": kept}, {"bed": worse}, {"bed": skipped}])
    assert s["mode"] == "auto" and s["kept_chunks"] == 2 and s["chunks"] == 3
    assert s["residual_db"]["worst"] == 10.0
    assert s["residual_db"]["mean"] == pytest.approx(-10 * np.log10((0.01 + 0.1) / 2), abs=0.05)
    assert bed.summarize([{"bed": {"mode": "keep", "kept": True}}])["kept_chunks"] == 1


def test_a_stage_for_drop_is_refused():
    with pytest.raises(ValueError):
        bed.BedStage("drop", Oracle(), None)
