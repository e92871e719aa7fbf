"""SRT / WebVTT / TXT transcripts beside an input."""

from __future__ import annotations

import pytest

from daemon.engines.resynth.transcript import is_timed, load_transcript, parse_srt, parse_time, parse_txt, parse_vtt
from daemon.errors import InputError

SRT = """1
00:00:00,320 --> 00:00:02,270
And so, <i>my fellow</i>
Americans,

2
00:00:03,266 --> 00:00:04,446
ask not

3
00:00:05,378 --> 00:00:07,678 X1:100 X2:200
{\\an8}what your country &amp; can do for you
"""

VTT = """WEBVTT
Kind: captions

NOTE this is a comment
spanning lines

STYLE
::cue { color: red }

intro
00:00.320 --> 00:02.270 align:start position:10%
<v Kennedy>And so, my fellow Americans,</v>

00:01:03.266 --> 00:01:04.446
<c.yellow>ask</c> <00:01:03.900>not
"""


def test_parse_time_variants():
    assert parse_time("00:00:02,270") == pytest.approx(2.27)
    assert parse_time("01:02:03.5") == pytest.approx(3723.5)
    assert parse_time("02:03.045") == pytest.approx(123.045)
    with pytest.raises(ValueError):
        parse_time("2.5s")


def test_srt_cues_tags_and_multiline_text():
    phrases = parse_srt(SRT)
    assert [p["text"] for p in phrases] == [
        "And so, my fellow Americans,", "ask not", "what your country & can do for you"]
    assert phrases[0]["start"] == pytest.approx(0.32) and phrases[0]["end"] == pytest.approx(2.27)
    assert phrases[2]["start"] == pytest.approx(5.378)
    assert is_timed(phrases)


def test_srt_with_crlf_and_unordered_cues_comes_back_sorted():
    text = "2\r\n00:00:05,000 --> 00:00:06,000\r\nsecond\r\n\r\n1\r\n00:00:01,000 --> 00:00:02,000\r\nfirst\r\n"
    assert [p["text"] for p in parse_srt(text)] == ["first", "second"]


def test_srt_errors():
    with pytest.raises(ValueError, match="timing"):
        parse_srt("just some text\nwithout cues\n")
    with pytest.raises(ValueError, match="ends before"):
        parse_srt("1\n00:00:05,000 --> 00:00:01,000\nx\n")


def test_vtt_header_notes_styles_ids_and_inline_tags():
    phrases = parse_vtt(VTT)
    assert [p["text"] for p in phrases] == ["And so, my fellow Americans,", "ask not"]
    assert phrases[1]["start"] == pytest.approx(63.266)
    with pytest.raises(ValueError, match="WEBVTT"):
        parse_vtt(SRT)


def test_txt_is_untimed_sentences():
    phrases = parse_txt("Ask not what your country can do for you.\nAsk what you can do!\n\nThe end")
    assert [p["text"] for p in phrases] == [
        "Ask not what your country can do for you.", "Ask what you can do!", "The end"]
    assert all(p["start"] is None for p in phrases) and not is_timed(phrases)


def test_load_transcript_by_extension_and_encoding(tmp_path):
    (tmp_path / "a.srt").write_bytes(b"\xef\xbb\xbf" + SRT.encode())  # UTF-8 with BOM
    assert len(load_transcript(tmp_path / "a.srt")) == 3
    (tmp_path / "b.vtt").write_text(VTT, encoding="utf-8")
    assert len(load_transcript(tmp_path / "b.vtt")) == 2
    ru = "1\n00:00:01,000 --> 00:00:02,000\nНавесной замок\n"
    (tmp_path / "c.srt").write_bytes(ru.encode("cp1251"))  # common for Russian subtitles
    assert load_transcript(tmp_path / "c.srt")[0]["text"] == "Навесной замок"
    (tmp_path / "d.txt").write_bytes("Привет. Мир!".encode("utf-16"))
    assert [p["text"] for p in load_transcript(tmp_path / "d.txt")] == ["Привет.", "Мир!"]


def test_load_transcript_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_transcript(tmp_path / "missing.srt")
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(InputError, match="no text"):
        load_transcript(tmp_path / "empty.txt")
    (tmp_path / "bad.vtt").write_text("00:01.000 --> 00:02.000\nx\n", encoding="utf-8")
    with pytest.raises(InputError, match="WEBVTT") as exc:
        load_transcript(tmp_path / "bad.vtt")
    assert exc.value.stage == "transcript"
    with pytest.raises(InputError, match="not a transcript"):
        load_transcript(tmp_path / "x.doc")


def test_every_chunk_of_a_timed_transcript_is_told_so_even_without_a_cue():
    """Issue 13: a 4-cue SRT gave 5 phrases, the 5th recognised in a chunk that had no cue."""
    from daemon.stream import chunk_hints

    cues = parse_srt(SRT)  # cues at 0.32, 3.27 and 5.38 s
    first = chunk_hints(cues, 0.0, 4.0)
    assert [p["text"] for p in first["phrases"]] == ["And so, my fellow Americans,", "ask not"] and first["timed"]
    assert chunk_hints(cues, 10.0, 20.0) == {"phrases": [], "timed": True}
    untimed = parse_txt("One. Two.")
    assert chunk_hints(untimed, 10.0, 20.0) == {"phrases": untimed}  # a .txt goes whole to every chunk
