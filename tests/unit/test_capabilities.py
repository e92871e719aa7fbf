"""The engine's capabilities: what the parent side asks instead of the engine's name."""

from __future__ import annotations

import pytest

from daemon.capabilities import Capabilities
from daemon.engines import capabilities, voice_folders
from daemon.settings import Settings


def test_shift_reads_no_words_and_has_no_voices():
    caps = capabilities(Settings(engine="shift", voice="alice"))
    assert caps.engine == "shift"
    assert not (caps.recognises_speech or caps.reads_transcripts or caps.reads_text or caps.has_voices)
    assert caps.voice_folders == voice_folders(Settings(voice="alice")) and "alice" in caps.voice_folders


def test_resynth_recognises_reads_transcripts_and_text_and_has_voices():
    caps = capabilities(Settings(engine="resynth", voice="baya"))
    assert (caps.recognises_speech, caps.reads_transcripts, caps.reads_text, caps.has_voices) == (True,) * 4


@pytest.mark.parametrize("name, same, flac", [("a.wav", "wav", "flac"), ("b.MP3", "mp3", "flac"),
                                              ("c.aac", "m4a", "flac"), ("d.mp4", "m4a", "flac"),
                                              ("e.oga", "ogg", "flac"), ("notes.txt", "wav", "flac")])
def test_the_output_format_for_each_input(name, same, flac):
    assert capabilities(Settings(output_format="same")).output_ext(name) == same
    assert capabilities(Settings(output_format="flac")).output_ext(name) == flac


def test_the_voice_an_inbox_folder_names():
    caps = capabilities(Settings(voice="kseniya"), voices={"alice"})
    assert caps.voice_folders == {"alice"}
    assert caps.voice_of_folder("alice/x.wav") == "alice"
    assert caps.voice_of_folder("alice/deeper/x.wav") == "alice"
    assert caps.voice_of_folder("alice") is None  # a file, not a folder
    assert caps.voice_of_folder("kseniya/x.wav") is None  # not offered here


def test_capabilities_are_a_frozen_value():
    caps = Capabilities("shift")
    with pytest.raises(AttributeError):
        caps.reads_text = True  # type: ignore[misc]
    assert caps.output_ext("x.flac") == "wav"  # by default every output is WAV
