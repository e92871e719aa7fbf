"""Measures for resynthesised speech: word error rate and phrase onsets.

Used by the resynth integration and end-to-end tests (and the README figures).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

JFK_TEXT = ("And so, my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")


def norm_words(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text).lower().replace("ё", "е").replace("+", "")
    return re.findall(r"[\w']+", text)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words."""
    r, h = norm_words(reference), norm_words(hypothesis)
    if not r:
        return 0.0 if not h else 1.0
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d[0] = d.copy(), i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return float(d[len(h)]) / len(r)


def onset_errors(source: list[float], output: list[float]) -> list[float]:
    """For each source onset, the distance (s) to the nearest output onset."""
    if not output:
        return [float("inf")] * len(source)
    out = np.asarray(output)
    return [float(np.min(np.abs(out - s))) for s in source]


def transcribe(model, audio16k: np.ndarray, language: str = "en") -> str:
    segments, _ = model.transcribe(audio16k, language=language, beam_size=5, condition_on_previous_text=False,
                                   temperature=0.0)  # no sampling fallback: the same audio, the same words
    return " ".join(s.text.strip() for s in segments)


def onsets(audio16k: np.ndarray, min_pause_ms: int) -> list[float]:
    """Starts (s) of the speech regions Silero VAD finds, split at pauses of ``min_pause_ms``."""
    from daemon.engines.resynth.asr import speech_regions

    return [start for start, _ in speech_regions(audio16k, min_pause_ms=min_pause_ms)]


def check_onsets_and_words(src16k: np.ndarray, out16k: np.ndarray, reference: str, model, label: str = "") -> dict:
    """Issue 4's goals: every source phrase (VAD regions split at 300 ms pauses) begins a phrase
    in the output within 0.25 s, and the output recognised again has WER <= 0.2."""
    errors = onset_errors(onsets(src16k, 300), onsets(out16k, 100))
    hyp = transcribe(model, out16k)
    rate = wer(reference, hyp)
    print(f"\n{label}onset errors {[round(e, 3) for e in errors]}, WER {rate:.3f}\n  ref: {reference}\n  out: {hyp}")
    assert max(errors) <= 0.25, errors
    assert rate <= 0.2, hyp
    return {"wer": rate, "onsets": errors}


def spoken_onsets(audio16k: np.ndarray, model, language: str, min_pause_ms: int = 300) -> list[float]:
    """Starts of the source's phrases: VAD regions (split at ``min_pause_ms``) in which ``model`` hears
    at least one word.  A region without words (a breath, a click) is not a phrase anyone can re-voice."""
    from daemon.engines.resynth.asr import speech_regions

    segments, _ = model.transcribe(audio16k, language=language, beam_size=5, word_timestamps=True,
                                   condition_on_previous_text=False, temperature=0.0)
    words = [(w.start, w.end) for s in segments for w in (s.words or [])]
    return [a for a, b in speech_regions(audio16k, min_pause_ms=min_pause_ms)
            if any(min(b, we) - max(a, ws) > -0.3 for ws, we in words)]


_NUMERALS: set[str] = set()


def number_words(text: str) -> list[str]:
    """The Russian number words of ``text`` (digits written out first), in order, in the nominative
    stem: «шестьсот четырнадцать» and «614» both give ['шестьсот', 'четырнадцать']."""
    from num2words import num2words

    from daemon.engines.resynth.normalize import normalize

    if not _NUMERALS:
        for n in list(range(0, 21)) + list(range(30, 100, 10)) + list(range(100, 1001, 100)):
            _NUMERALS.update(num2words(n, lang="ru").replace("ё", "е").split())
    return [w for w in norm_words(normalize(text, "ru")) if w in _NUMERALS]
