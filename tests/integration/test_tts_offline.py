"""The offline synthesisers from Debian packages (issue 13): Festival's Russian voice through one
long-lived process, and espeak-ng for any language.  Real programs, real voices."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from daemon.errors import ModelError
from helpers import alive, wait_until
from helpers.resynth_models import settings

SENTENCE = "Старинный замок возвышался над рекой, а на двери висел навесной замок."


@pytest.fixture(scope="module")
def festival():
    from daemon.engines.resynth.festival import FestivalTTS

    tts = FestivalTTS(settings(tts="festival", language="ru"))
    yield tts
    tts.close()



def test_festival_speaks_russian_at_16k_from_one_process(festival):
    pid = festival.process.pid
    first = festival.synthesize(SENTENCE, festival.check_voice("kseniya"))
    second = festival.synthesize("Привет.", "kseniya")
    assert festival.rate == 16000 and first.dtype == np.float32
    assert 3.0 < len(first) / 16000 < 12.0 and np.abs(first).max() > 0.05
    assert 0.2 < len(second) / 16000 < len(first) / 16000
    assert festival.process.pid == pid and alive(pid)  # kept alive between phrases, not one per call


def test_festival_takes_stress_marks_quotes_and_odd_text(festival):
    plain = festival.synthesize(SENTENCE, "kseniya")
    marked = festival.synthesize("Стар+инный з+амок возвыш+ался над рек+ой, а на дв+ери вис+ел нав+есной зам+ок.",
                                 "kseniya")
    assert abs(len(marked) - len(plain)) / len(plain) < 0.05  # the marks are not read out
    quoted = festival.synthesize('Он сказал: "да" \\ и ушёл (сразу).', "kseniya")
    assert len(quoted) > 16000 // 2
    assert len(festival.synthesize("   ", "kseniya")) == 0


def test_a_festival_that_dies_is_restarted_for_the_phrase():
    from daemon.engines.resynth.festival import FestivalTTS

    festival = FestivalTTS(settings(tts="festival"))
    try:
        old = festival.process.pid
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: not alive(old), 60)
        audio = festival.synthesize("Ещё раз.", "kseniya")
        assert len(audio) > 0 and festival.process.pid != old and alive(festival.process.pid)
    finally:
        festival.close()


def test_festival_voices_and_a_clear_error_for_an_unknown_one():
    from daemon.engines.resynth.festival import FestivalTTS

    with pytest.raises(ModelError, match="VOICE_DAEMON_VOICE=nobody: not an installed Festival voice; valid: "
                                         "msu_ru_nsh_clunits"):
        FestivalTTS(settings(tts="festival", voice="nobody"))


def test_closing_ends_the_festival_process():
    from daemon.engines.resynth.festival import FestivalTTS

    tts = FestivalTTS(settings(tts="festival"))
    pid, folder = tts.process.pid, tts._dir
    assert alive(pid) and os.path.isdir(folder)
    tts.close()
    assert not alive(pid) and not os.path.exists(folder)


def test_espeak_speaks_the_language_and_its_rate_follows_length():
    from daemon.engines.resynth.espeak import EspeakTTS

    tts = EspeakTTS(settings(tts="espeak", language="ru"))
    try:
        voice = tts.check_voice("kseniya")  # a Silero name: the language decides
        ru = tts.synthesize("Привет, как дела?", voice)
        slow = tts.synthesize("Привет, как дела?", voice, length=1.5)
        assert tts.rate == 22050 and len(ru) > 22050 // 2
        assert 1.3 < len(slow) / len(ru) < 1.7
        en = tts.synthesize("Hello there.", tts.check_voice("en-us"))
        assert len(en) > 22050 // 3
        # LANGUAGE=auto: the recognised language picks the voice
        assert tts.voice_for("", "Hallo", "de") == "ru"  # LANGUAGE=ru wins over what was recognised
        # A female Silero name (the default kseniya) gets espeak-ng's female variant; a male one does not.
        assert voice == "+f3" and tts.check_voice("aidar") == "" and tts.voice_for(voice, "Привет", None) == "ru+f3"
        male = tts.synthesize("Привет, как дела? Сегодня хорошая погода.", "")
        female = tts.synthesize("Привет, как дела? Сегодня хорошая погода.", voice)
        assert _median_f0(female, tts.rate) > 1.3 * _median_f0(male, tts.rate)
    finally:
        tts.close()
    auto = EspeakTTS(settings(tts="espeak", language="auto"))
    try:
        assert auto.voice_for("", "Hallo", "de") == "de" and auto.voice_for("", "Привет", None) == "ru"
    finally:
        auto.close()
    with pytest.raises(ModelError, match="VOICE_DAEMON_VOICE=elvish: not an espeak-ng voice"):
        EspeakTTS(settings(tts="espeak", voice="elvish"))


def _median_f0(audio, rate: int) -> float:
    import numpy as np
    import parselmouth

    f0 = parselmouth.Sound(audio.astype(np.float64), rate).to_pitch(pitch_floor=75, pitch_ceiling=500)
    f0 = f0.selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))
