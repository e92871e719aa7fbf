"""`voice-daemon convert` in Russian, offline, as a user runs it (issue 13): the real process, two warm
workers each with its own Festival process, Whisper base joined from its packages, numbers read as words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from daemon.models import joined
from helpers import alive, wait_until
from helpers.resynth_models import MODEL_DIR, load
from helpers.speech_metrics import number_words, transcribe

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    # The resynth engine: `shift` loads only the VAD (models and voices say so).
    full.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_MODEL_DIR": str(MODEL_DIR),
                 "VOICE_DAEMON_ENGINE": "resynth", **env})
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True, timeout=600,
                          env=full, cwd=ROOT)


def _events(stderr: str, name: str) -> list[dict]:
    out = []
    for line in stderr.splitlines():
        if f'"{name}"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out



def test_russian_with_numbers_through_the_warm_pool(tmp_path, speech_dir):
    src = speech_dir / "silero_vad_ru_num.wav"
    out = tmp_path / "числа.wav"
    proc = _run("convert", str(src), str(out), "--no-progress", VOICE_DAEMON_ENGINE="resynth",
                VOICE_DAEMON_TTS="festival", VOICE_DAEMON_WORKERS="2")  # LANGUAGE=ru, the default
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert abs(sf.info(str(out)).duration - sf.info(str(src)).duration) <= 0.010
    festivals = [e for e in _events(proc.stderr, "model.loaded") if e.get("kind") == "festival"]
    assert len(festivals) == 2 and len({e["festival_pid"] for e in festivals}) == 2  # one per worker
    assert len({e["pid"] for e in festivals}) == 2
    wait_until(lambda: not any(alive(e["festival_pid"]) for e in festivals), 60,  # gone with their workers
               message="a Festival process outlived its worker")
    side = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert side["output"] == out.name
    models = {m["name"]: m for m in side["models"]}
    assert models["asr"]["sha256"] == joined.SHA256 and models["tts"]["path"].endswith("msu_ru_nsh_clunits")
    spoken = " ".join(p.get("normalized", p["text"]) for p in side["phrases"])
    assert "шестьсот четырнадцать" in spoken and not any(c.isdigit() for c in spoken)
    from helpers.resynth_models import base_whisper

    heard = transcribe(base_whisper(), load(out, 16000), "ru")
    assert number_words(heard) == number_words(transcribe(base_whisper(), load(src, 16000), "ru")), heard


def test_models_shows_the_joined_base_model(tmp_path):
    models = tmp_path / "models"
    proc = _run("models", VOICE_DAEMON_MODEL_DIR=str(models), VOICE_DAEMON_TTS="silero")  # LANGUAGE=ru: no .pt here
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert rows["asr"][2] == "yes" and rows["asr"][5] == joined.SHA256
    assert rows["asr"][6] == str(models / "whisper-base")
    assert proc.returncode == 78 and "VOICE_DAEMON_TTS=festival" in proc.stderr  # the way out, offline
    proc = _run("models", VOICE_DAEMON_MODEL_DIR=str(models), VOICE_DAEMON_TTS="festival")
    assert proc.returncode == 0, proc.stderr
    assert "joining" not in proc.stderr  # joined once; checked, not joined again
    assert "festival" in proc.stdout
    proc = _run("voices", VOICE_DAEMON_TTS="festival")
    assert proc.returncode == 0
    assert [line.split() for line in proc.stdout.splitlines() if line.startswith("*")] == [
        ["*", "msu_ru_nsh_clunits", "festival", "ru", "male", "BSD-like"]]
