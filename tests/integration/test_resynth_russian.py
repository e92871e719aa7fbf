"""Russian in, Russian out, offline (issue 13): Whisper base (joined from its two packages) → numbers as
words → Festival's Russian voice → fitted to the source's timeline.  All real models, no network.

Goals measured here: silero_vad_ru.wav re-recognised by the same base model has WER ≤ 0.22 against the
base model's transcript of the source, phrase onsets within 0.25 s, duration exact; in
silero_vad_ru_num.wav the numbers come back as the same numbers.  One full-minute run; the rest use
the 6.7 s recording.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from helpers.resynth_models import chunk_events, engine, load, to16k
from helpers.speech_metrics import number_words, onset_errors, onsets, spoken_onsets, transcribe, wer

RATE = 48000
FESTIVAL = dict(tts="festival", language="ru")
NUM_TEXT = ("Маша четыреста девяносто шесть, Ира четыреста семьдесят один, "
            "Олег четыреста восемьдесят два и Марина шестьсот четырнадцать.")


@pytest.fixture(scope="module")
def eng():
    return engine(**FESTIVAL)


def _stage_rtf(chunk: dict) -> dict:
    return {stage: round(chunk[f"{stage}_seconds"] / chunk["audio_seconds"], 4)
            for stage in ("vad", "asr", "stress", "tts", "fit")}


def test_the_default_recogniser_for_russian_is_the_joined_base_model(eng):
    from daemon.models import joined

    assert eng.asr.model.model.is_multilingual
    assert eng.asr.ref.path.endswith(joined.FOLDER) and joined.is_good(Path(eng.asr.ref.path))
    assert eng.tts.name == "festival" and eng.stresser is None  # Festival has its own lexicon


@pytest.mark.slow
def test_a_minute_of_russian_meets_the_goals(eng, speech_dir):
    src = load(speech_dir / "silero_vad_ru.wav", RATE)
    with chunk_events() as chunks:
        out, info = eng.process(src, RATE, voice="kseniya")
    assert len(out) == len(src) and out.dtype == np.float32 and np.isfinite(out).all()
    model = eng.asr.model  # the same base model judges
    src16, out16 = to16k(src, RATE), to16k(out, RATE)
    reference, hyp = transcribe(model, src16, "ru"), transcribe(model, out16, "ru")
    rate = wer(reference, hyp)
    errors = onset_errors(spoken_onsets(src16, model, "ru"), onsets(out16, 100))
    print(f"\nWER {rate:.3f}, onset errors {[round(e, 2) for e in errors]}\n  ref: {reference}\n  out: {hyp}")
    print("stage RTF (1 thread):", _stage_rtf(chunks[0]))
    # 0.195 in each of 3 runs (two on a quiet machine, one with both cores kept busy): spread 0.000, the
    # output is byte-identical whatever the load.  The margin is for another CPU's int8 kernels.
    assert rate <= 0.22, hyp
    assert max(errors) <= 0.25, errors
    assert len(info["phrases"]) >= 10
    said = [p for p in info["phrases"] if "normalized" in p]
    assert said and all(not any(c.isdigit() for c in p["normalized"]) for p in said)  # «минус 35» in words


def test_numbers_come_back_as_the_same_numbers(eng, speech_dir):
    src = load(speech_dir / "silero_vad_ru_num.wav", RATE)
    out, info = eng.process(src, RATE, voice="kseniya")
    reference = transcribe(eng.asr.model, to16k(src, RATE), "ru")
    hyp = transcribe(eng.asr.model, to16k(out, RATE), "ru")
    print(f"\n  ref: {reference}\n  out: {hyp}\n  spoken: {[p.get('normalized') for p in info['phrases']]}")
    assert len(number_words(reference)) >= 8  # four three-word numbers: 496, 471, 482, 614
    # Every number comes back, in order. The judge (Whisper base, beam search only) hears Festival's
    # «Олег» as «0», deterministically: a word it adds, not a number the engine spoke, so the reference's
    # numbers must be a subsequence of what it hears, and the engine must have spoken exactly them.
    heard = iter(number_words(hyp))
    assert all(word in heard for word in number_words(reference))
    spoken = " ".join(p["normalized"] for p in info["phrases"])
    assert number_words(spoken) == number_words(reference)
    assert "шестьсот четырнадцать" in info["phrases"][-1]["normalized"]


def test_an_untimed_transcript_is_spoken_to_its_last_word(eng, speech_dir):
    """Issue 13: «…и Марина шестьсот четырнадцать.» was spoken as «…и Марина шестьсот»."""
    src = load(speech_dir / "silero_vad_ru_num.wav", RATE)
    hints = {"phrases": [{"start": None, "end": None, "text": NUM_TEXT}]}
    _, info = eng.process(src, RATE, voice="kseniya", hints=hints)
    spoken = " ".join(p["text"] for p in info["phrases"])
    assert spoken == NUM_TEXT and info["phrases"][-1]["recognised"]


def test_a_transcript_that_does_not_match_is_reported(eng, speech_dir):
    """Issue 13: a .txt that is not what the audio says was dropped without a word."""
    src = load(speech_dir / "silero_vad_ru_num.wav", RATE)
    hints = {"phrases": [{"start": None, "end": None, "text": "Совсем другой текст про погоду в горах."}]}
    with capture_logs() as logs:
        _, info = eng.process(src, RATE, voice="kseniya", hints=hints)
    warned = [e for e in logs if e["event"] == "resynth.transcript_mismatch"]
    assert warned and warned[0]["log_level"] == "warning" and warned[0]["matched_words"] == 0
    assert all(p["words_from"].startswith("recognition") for p in info["phrases"])
    assert "Марина" in " ".join(p["text"] for p in info["phrases"])


def test_a_chunk_without_cues_of_a_timed_transcript_is_silent(eng, speech_dir):
    """Issue 13: an .srt's chunk without a cue was recognised instead (4 cues gave 5 phrases)."""
    src = load(speech_dir / "silero_vad_ru_num.wav", RATE)
    out, info = eng.process(src, RATE, voice="kseniya", hints={"phrases": [], "timed": True})
    assert info["phrases"] == [] and not out.any()


def test_russian_text_read_aloud_with_numbers_in_words(eng):
    from daemon.engines.resynth import synthesize_text

    text = "В 2026 году было 5 % снега. Это всё."
    audio, info = synthesize_text(text, eng.bundle)
    assert info["phrases"][0]["normalized"] == "В две тысячи двадцать шестом году было пять процентов снега."
    hyp = transcribe(eng.asr.model, to16k(audio, RATE), "ru")
    assert number_words(hyp) == number_words(text) and "снег" in hyp, hyp
