"""Text splitting for the TTS per-call limit: sentence and phrase boundaries, never inside a word."""

from __future__ import annotations

import pytest

from daemon.engines.resynth.text import has_cyrillic, sentences, split_text, strip_stress, words

RU = ("Старинный з+амок возвышался над рекой. На двери висел навесной зам+ок! "
      "Мы долго шли по лесу, потом по полю, а затем по берегу реки; наконец пришли домой. Всё?")


def _check(pieces: list[str], text: str, limit: int) -> None:
    assert all(len(p) <= limit for p in pieces), [len(p) for p in pieces]
    # Every word survives whole and in order: nothing was cut inside a word.
    assert " ".join(pieces).split() == text.split()


def test_short_text_is_one_piece():
    assert split_text("Hello there. How are you?", 100) == ["Hello there. How are you?"]


def test_sentences_are_packed_up_to_the_limit():
    text = "One two three. Four five six. Seven eight nine."
    pieces = split_text(text, 30)
    _check(pieces, text, 30)
    assert pieces == ["One two three. Four five six.", "Seven eight nine."]


def test_long_sentence_is_cut_at_phrase_punctuation_first():
    text = "We walked through the forest, then across the field, and finally along the river bank."
    pieces = split_text(text, 40)
    _check(pieces, text, 40)
    assert pieces[0].endswith("forest,") and pieces[1].endswith("field,")


def test_sentence_without_punctuation_is_cut_between_words():
    text = " ".join(["слово"] * 100)
    pieces = split_text(text, 37)
    _check(pieces, text, 37)
    assert len(pieces) > 10


@pytest.mark.parametrize("limit", [20, 45, 80, 500])
def test_russian_with_stress_marks_respects_limit(limit):
    pieces = split_text(RU, limit)
    _check(pieces, RU, limit)
    assert any("з+амок" in p for p in pieces)  # a stress mark is never a cut point


def test_a_word_longer_than_the_limit_is_left_whole():
    long = "Donaudampfschifffahrtsgesellschaftskapitän"
    assert split_text(f"ein {long} fährt", 10) == ["ein", long, "fährt"]


def test_whitespace_and_control_characters_are_cleaned():
    assert split_text("  a\tb\n\nc\x00d  ", 100) == ["a b c d"]
    assert split_text("   ", 10) == []


def test_sentences_keep_punctuation_and_quotes():
    assert sentences('He said "stop." Then left! Why? «Да.» Нет') == [
        'He said "stop."', "Then left!", "Why?", "«Да.»", "Нет"]


def test_limit_must_be_positive():
    with pytest.raises(ValueError):
        split_text("x", 0)


def test_stress_helpers():
    assert strip_stress("з+амок и зам+ок, 2+2") == "замок и замок, 2+2"
    assert words("Всё, з+амок! Don't") == ["все", "замок", "don't"]
    assert has_cyrillic("abc д") and not has_cyrillic("abc")
