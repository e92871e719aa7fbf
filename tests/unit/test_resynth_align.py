"""Recognised words → phrases (VAD slots), and a plain-text transcript's words put in their place."""

from __future__ import annotations

from daemon.engines.resynth.align import replace_words
from daemon.engines.resynth.asr import Word, group_phrases


def test_words_go_to_the_region_they_overlap_most():
    regions = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7)]
    words = [Word(0.0, 0.76, "And"), Word(0.76, 1.08, "so,"), Word(1.78, 2.26, "Americans"),
             Word(2.26, 3.88, "ask"),   # Whisper stretched it over the pause: mostly in region 2
             Word(3.88, 4.54, "not"), Word(5.5, 5.7, "what")]
    phrases = group_phrases(words, regions)
    assert [p["text"] for p in phrases] == ["And so, Americans", "ask not", "what"]
    assert [(p["start"], p["end"]) for p in phrases] == regions


def test_regions_without_words_are_dropped_and_far_words_ignored():
    regions = [(1.0, 2.0), (5.0, 6.0)]
    words = [Word(1.2, 1.5, "hello"), Word(9.0, 9.5, "hallucinated")]
    assert [p["text"] for p in group_phrases(words, regions)] == ["hello"]
    assert group_phrases(words, []) == []


def test_word_order_is_kept_even_with_bad_times():
    regions = [(0.0, 1.0), (2.0, 3.0)]
    words = [Word(2.1, 2.2, "b"), Word(0.1, 0.2, "c")]  # a later word timed earlier
    assert [p["text"] for p in group_phrases(words, regions)] == ["b c"]


def _phrases(*texts):
    return [{"start": float(i), "end": i + 0.5, "text": t} for i, t in enumerate(texts)]


def test_transcript_words_replace_misrecognised_ones():
    recognised = _phrases("And so my fellow Americans", "ask nah", "what your country can do for you")
    transcript = "And so, my fellow Americans, ask not what your country can do for you."
    out, matched = replace_words(recognised, transcript)
    assert [p["text"] for p in out] == ["And so, my fellow Americans,", "ask not",
                                       "what your country can do for you."]
    assert out[1]["recognised"] == "ask nah" and matched >= 12
    assert [p["start"] for p in out] == [0.0, 1.0, 2.0]  # slots unchanged


def test_a_chunk_finds_its_own_part_of_a_long_transcript():
    transcript = ("First part of the story goes here. " * 5 + "ask not what your country can do for you. "
                  + "Later part of the story goes on and on. " * 5)
    out, _ = replace_words(_phrases("ask knot what your", "country can do for you"), transcript)
    assert [p["text"] for p in out] == ["ask not what your", "country can do for you."]


def test_unrelated_transcript_leaves_the_recognised_text():
    rec = _phrases("hello world")
    out, matched = replace_words(rec, "Совсем другой текст.")
    assert out == rec and matched == 0


def test_a_transcript_with_numbers_in_words_keeps_its_last_words():
    """Issue 13: Whisper writes «614» where the .txt says «шестьсот четырнадцать»; the phrase used to end
    «…и Марина шестьсот»."""
    recognised = _phrases("Маша 496 -Ира 471 Олег 482 и Марина 614.")
    transcript = ("Маша четыреста девяносто шесть, Ира четыреста семьдесят один, "
                  "Олег четыреста восемьдесят два и Марина шестьсот четырнадцать.")
    out, matched = replace_words(recognised, transcript)
    assert out[0]["text"] == transcript and matched >= 14


def test_the_last_phrase_runs_on_to_its_sentence_end():
    # The recogniser heard the sentence shorter; the words left in it are few: they are spoken too.
    out, _ = replace_words(_phrases("ask not what your country"),
                           "Ask not what your country can do. And then more text follows here.")
    assert out[0]["text"] == "Ask not what your country can do."
    # …but not when most of the sentence would be added (those words belong to a later chunk).
    out, _ = replace_words(_phrases("ask not"), "Ask not what your country can do for you and more.")
    assert out[0]["text"] == "Ask not"


def test_words_whisper_put_just_outside_speech_stay_with_it():
    """Issue 13: «не зимой», which Whisper timed at 27.7–29.98 s, just past the speech VAD found, came
    out as silence; words go to the nearest speech region, and a word with no pause before it stays
    in its neighbour's phrase."""
    regions = [(25.0, 27.5), (31.0, 33.0)]
    words = [Word(25.1, 25.6, "Ну,"), Word(25.6, 27.4, "давайте"), Word(27.7, 28.8, "не"),
             Word(28.8, 29.98, "зимой."), Word(31.1, 32.9, "Нет.")]
    assert [p["text"] for p in group_phrases(words, regions)] == ["Ну, давайте не зимой.", "Нет."]
    # Nothing else near: the nearest region still takes them.
    lone = [Word(27.7, 28.8, "не"), Word(28.8, 29.98, "зимой")]
    assert [p["text"] for p in group_phrases(lone, [(25.0, 27.2)])] == ["не зимой"]
