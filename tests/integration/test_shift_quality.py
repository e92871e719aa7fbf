"""The `shift` engine on real speech: F0 moves by the asked ratio, duration is kept,
the words stay intelligible (checked with a real recogniser)."""

from __future__ import annotations

import pytest
import soundfile as sf

from daemon.backends.inline import InlineRunner
from daemon.convert import convert_file
from daemon.engines.shift import median_f0
from daemon.settings import load_settings
from helpers.asr import transcribe, wer

JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def _convert(tmp_path, src, semitones, formant):
    runner = InlineRunner(load_settings(engine="shift", shift_semitones=semitones, shift_formant=formant,
                                        sample_rate=16000, chunk_seconds=10))
    out = tmp_path / f"out_{semitones}_{formant}.wav"
    convert_file(runner.submit, src, out, tmp_path / f"work_{semitones}_{formant}")
    return out


def _f0(path):
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    return median_f0(x.mean(axis=1), rate), len(x) / rate


@pytest.mark.parametrize("name", ["silero_vad_en.wav", "silero_vad_ru.wav", "fw_jfk.flac"])
@pytest.mark.parametrize("semitones,formant", [(4.0, 1.15), (-5.0, 0.9), (7.0, 1.0)])
def test_median_f0_moves_by_the_asked_ratio(tmp_path, speech_dir, name, semitones, formant):
    src = speech_dir / name
    out = _convert(tmp_path, src, semitones, formant)
    f0_in, dur_in = _f0(src)
    f0_out, dur_out = _f0(out)
    ratio, want = f0_out / f0_in, 2 ** (semitones / 12)
    assert abs(ratio / want - 1) <= 0.05, f"F0 {f0_in:.1f} -> {f0_out:.1f} Hz: ratio {ratio:.3f}, wanted {want:.3f}"
    assert abs(dur_out - dur_in) <= 0.010


def test_words_stay_intelligible(tmp_path, speech_dir):
    out = _convert(tmp_path, speech_dir / "fw_jfk.flac", 4.0, 1.15)
    heard = transcribe(out)
    assert wer(JFK, heard) <= 0.25, heard
