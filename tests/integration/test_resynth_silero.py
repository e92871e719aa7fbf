"""resynth with Silero TTS and real silero-stress.

The Silero TTS weights (``v4_ru.pt``) cannot be downloaded here, so these tests
load a small stand-in built by ``tests/helpers/fake_silero.py``: a real
``torch.package`` file with Silero's interface (``speakers``,
``apply_tts(text=, speaker=, sample_rate=)``), loaded through exactly the code
path a real ``v4_ru.pt`` takes.  silero-stress, Silero VAD and faster-whisper are
the real models that ship in their packages.
"""

from __future__ import annotations

import numpy as np
import pytest

from daemon.errors import InputError, ModelError
from helpers.fake_silero import build_fake_silero
from helpers.resynth_models import engine, load, settings

RATE = 48000
HOMOGRAPHS = "Старинный замок возвышался над рекой, а на двери висел навесной замок."


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return build_fake_silero(tmp_path_factory.mktemp("silero") / "v4_ru.pt")


@pytest.fixture(scope="module")
def eng(model_file):
    # Russian with Silero: STRESS=auto puts silero-stress in front of the TTS.  No ASR
    # (tiny.en knows English only): Russian input comes with a timed transcript here.
    return engine(tts="silero", tts_model=str(model_file), language="ru", asr_model="none")


def test_stress_marks_resolve_russian_homographs(eng):
    stress = eng.stresser
    assert stress is not None
    assert stress(HOMOGRAPHS).split()[1] == "з+амок"       # castle
    assert stress(HOMOGRAPHS).split()[-1] == "зам+ок."     # padlock
    flour_torment = stress("Мы испекли пирог из муки, а ожидание было для нас мукой.")
    assert "мук+и" in flour_torment and "м+укой" in flour_torment
    assert "+органе" not in stress("Органист играл на органе.") and "орг+ане" in stress("Органист играл на органе.")
    assert "вс+ё" in stress("Все уже пришли, и все было готово.")
    assert stress("English text stays as it is.") == "English text stays as it is."


def test_russian_chunk_with_transcript_is_spoken_in_the_slots(eng, speech_dir):
    src = load(speech_dir / "silero_vad_ru.wav", RATE)[: 12 * RATE]
    hints = {"phrases": [{"start": 0.5, "end": 4.0, "text": HOMOGRAPHS},
                         {"start": 6.0, "end": 9.0, "text": "Мы испекли пирог из муки."}]}
    out, info = eng.process(src, RATE, voice="kseniya", hints=hints)
    assert len(out) == len(src) and out.dtype == np.float32
    first, second = info["phrases"]
    assert "з+амок" in first["stressed"] and "зам+ок" in first["stressed"]
    assert first["text"] == HOMOGRAPHS and 0.5 <= first["stretch"] <= 2.0
    assert not out[: int(0.49 * RATE)].any() and np.abs(out[int(0.5 * RATE): int(0.8 * RATE)]).max() > 0.01
    assert not out[int((first["start"] + first["spoken"]) * RATE) + 1: int(6.0 * RATE)].any()
    assert np.abs(out[int(6.0 * RATE): int(6.3 * RATE)]).max() > 0.01
    assert not out[int(9.0 * RATE) + 1:].any()
    names = {m["name"] for m in info["models"]}
    assert names == {"tts", "stress"} and all(len(m["sha256"]) == 64 for m in info["models"])


def test_the_stand_in_is_loaded_like_a_real_silero_package(eng, model_file):
    model = eng.tts.model
    assert type(model).__module__.startswith("<torch_package_")  # its code came from the .pt file
    assert eng.voices() == ["aidar", "baya", "kseniya", "xenia", "eugene", "random"]
    assert eng.tts.rate == RATE  # 48 kHz is native: no resampling


def test_bad_speaker_lists_the_valid_ones(eng):
    with pytest.raises(ModelError) as exc:
        eng.process(np.zeros(RATE, np.float32), RATE, voice="alice")
    assert "VOICE_DAEMON_VOICE=alice" in str(exc.value) and "aidar, baya, kseniya, xenia, eugene" in str(exc.value)


def test_long_text_goes_to_the_model_in_pieces_below_its_limit(eng):
    sentence = "Мы долго шли по лесу, потом по полю, а затем по берегу широкой реки. "
    text = sentence * 30  # ~2,100 characters; the stand-in's xenia accepts at most 500 per call
    eng.tts.model.history.clear()
    audio = eng.tts.synthesize(eng.stresser(text), "xenia")
    calls = eng.tts.model.history
    assert len(calls) >= 5 and all(len(c) <= 500 for c in calls)
    spoken = " ".join(calls).replace("+", "").split()
    assert spoken == text.split()  # every word once, whole, in order
    assert len(audio) / RATE > 30


def test_text_read_aloud_in_russian(eng, model_file):
    from daemon.engines.resynth import synthesize_text

    audio, info = synthesize_text("Привет. Как дела?\n\nВсе хорошо!", eng.bundle, voice="baya")
    assert [p["stressed"] for p in info["phrases"]][2].startswith("Вс+ё")
    assert info["phrases"][1]["start"] - info["phrases"][0]["end"] == pytest.approx(0.4, abs=0.01)
    assert len(audio) / RATE == pytest.approx(info["phrases"][-1]["end"] + 0.2, abs=0.01)


def test_without_asr_speech_needs_a_transcript(eng, speech_dir):
    src = load(speech_dir / "silero_vad_ru.wav", RATE)[: 5 * RATE]
    with pytest.raises(InputError, match="ASR_MODEL=none"):
        eng.process(src, RATE, voice="kseniya")
    out, info = eng.process(np.zeros(RATE, np.float32), RATE, voice="kseniya")
    assert not out.any() and info["phrases"] == []


def test_other_native_rate_and_a_resampled_one(model_file):
    from daemon.engines.resynth import ResynthModels, synthesize_text

    models = ResynthModels.load(settings(tts="silero", tts_model=str(model_file), sample_rate=24000,
                                         language="ru", asr_model="none"))
    audio, _ = synthesize_text("Да.", models, voice="aidar")
    assert len(audio) > 0.4 * 24000
    # Piper at 22.05 kHz, resampled to an arbitrary processing rate:
    models = ResynthModels.load(settings(tts="piper", sample_rate=44100, language="en", asr_model="none"))
    audio, _ = synthesize_text("Yes.", models, voice="x")
    assert len(audio) > 0.4 * 44100


def test_sha256_is_checked_before_loading(model_file, tmp_path):
    from daemon.models.loaders import load_silero_tts

    bad = "0" * 64
    with pytest.raises(ModelError, match="SHA-256") as exc:
        load_silero_tts(settings(tts_model=str(model_file), tts_model_sha256=bad))
    assert "VOICE_DAEMON_TTS_MODEL_SHA256" in str(exc.value)
    from daemon.models.registry import sha256_file

    model, _ = load_silero_tts(settings(tts_model=str(model_file), tts_model_sha256=sha256_file(model_file)))
    assert "kseniya" in model.speakers


def test_missing_or_broken_model_is_one_clear_error(tmp_path):
    from daemon.engines.resynth import ResynthEngine

    # An id that no server has: here (no network) and in CI (HTTP 404) alike, nothing is fetched.
    with pytest.raises(ModelError) as exc:
        ResynthEngine(settings(tts="silero", tts_model="v0_xx", model_dir=tmp_path, language="ru", asr_model="none"))
    msg = str(exc.value)
    assert "VOICE_DAEMON_TTS_MODEL" in msg and str(tmp_path / "v0_xx.pt") in msg
    assert not (tmp_path / "v0_xx.pt").exists() and not list(tmp_path.glob("*.part"))  # nothing half-downloaded
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch package")
    with pytest.raises(ModelError, match="not a Silero TTS torch.package"):
        ResynthEngine(settings(tts_model=str(junk), language="ru", asr_model="none"))


def test_english_only_asr_refuses_russian_at_start(model_file):
    from daemon.engines.resynth import ResynthEngine

    with pytest.raises(ModelError) as exc:
        ResynthEngine(settings(tts_model=str(model_file), language="ru", asr_model="tiny.en"))
    assert "VOICE_DAEMON_LANGUAGE=ru" in str(exc.value) and "VOICE_DAEMON_ASR_MODEL=base" in str(exc.value)
