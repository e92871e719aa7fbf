"""A fresh install works out of the box: nothing set but VOICE_DAEMON_ENGINE=resynth, no Silero model
file (its weights cannot be fetched here), and `voice-daemon` converts Russian and English offline with
the best voice it has, says which, and `voices` lists what is usable instead of failing.

The real processes and models; RHVoice's absence is simulated by pointing VOICE_DAEMON_RHVOICE_DATA at
an empty folder (its library stays installed: without voices it cannot speak, which is what a
machine without the non-free packages sees).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from daemon.models import system_tts
from helpers.resynth_models import MODEL_DIR

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    # MODEL_DIR: where the tests keep the joined Whisper base (joined once per machine); no v4_ru.pt there.
    full.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_ENGINE": "resynth",
                 "VOICE_DAEMON_MODEL_DIR": str(MODEL_DIR), "VOICE_DAEMON_WORKERS": "1", **env})
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True, timeout=600,
                          env=full, cwd=ROOT)


def _events(stderr: str, name: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{") and f'"{name}"' in line]


def test_voices_lists_what_is_usable_now(tmp_path):
    assert not (MODEL_DIR / "v4_ru.pt").exists(), "a fresh install has no Silero model file"
    proc = _run("voices")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("synthesiser: rhvoice (auto, language ru: the best usable here (silero not usable)); "
                               "voice: anna (speaks VOICE_DAEMON_VOICE=kseniya)"), lines[0]
    # "* name tts lang sex licence", the voice speaking marked with "*"
    rows = {line[2:].split()[0]: [line[0], *line[2:].split()] for line in lines[2:] if len(line[2:].split()) == 5}
    assert rows["anna"] == ["*", "anna", "rhvoice", "ru", "female", "LGPL-2.1+"]
    assert rows["aleksandr"] == [" ", "aleksandr", "rhvoice", "ru", "male", "LGPL-2.1+"]
    assert rows["aleksandr-hq"][-1] == "CC-BY-SA-4.0" and rows["tatiana"][-1] == "CC-BY-NC-ND-4.0"
    assert rows["slt"][2:5] == ["rhvoice", "en", "female"] and rows["bdl"][2:5] == ["rhvoice", "en", "male"]
    assert "aidar" not in rows  # no Silero model: its speakers are not offered
    assert any(line.startswith("  silero: not usable here: no Silero model file at") for line in lines)

    empty = tmp_path / "no-rhvoice"
    empty.mkdir()
    proc = _run("voices", VOICE_DAEMON_RHVOICE_DATA=str(empty))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("synthesiser: festival (auto, language ru: the best usable here "
                                  "(silero, rhvoice not usable))")
    (missing,) = [line for line in proc.stdout.splitlines() if line.startswith("  rhvoice: not usable here:")]
    assert system_tts.RHVOICE_INSTALL in missing and str(empty) in missing  # the exact command that fixes it
    proc = _run("voices", VOICE_DAEMON_RHVOICE_DATA=str(empty), VOICE_DAEMON_TTS="rhvoice")  # asked for by name
    assert proc.returncode == 78 and system_tts.RHVOICE_INSTALL in proc.stderr
    proc = _run("config")
    assert "# VOICE_DAEMON_TTS=auto speaks with rhvoice here" in proc.stdout


def _convert(tmp_path, src: Path, **env) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.wav"
    proc = _run("convert", str(src), str(out), "--no-progress", **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert abs(sf.info(str(out)).duration - sf.info(str(src)).duration) <= 0.010
    return proc, out


def test_a_fresh_install_converts_russian_with_a_female_offline_voice(tmp_path, speech_dir):
    proc, out = _convert(tmp_path, speech_dir / "silero_vad_ru_num.wav")
    (chosen,) = _events(proc.stderr, "tts.chosen")
    assert chosen["tts"] == "rhvoice" and "silero not usable" in chosen["why"]
    (loaded,) = [e for e in _events(proc.stderr, "model.loaded") if e.get("kind") == "rhvoice"]
    assert loaded["voice"] == "anna" and loaded["licence"] == "LGPL-2.1+"
    (mapped,) = _events(proc.stderr, "tts.voice_mapped")  # the default kseniya, said to be spoken by anna
    assert mapped["asked"] == "kseniya" and mapped["voice"] == "anna" and mapped["sex"] == "female"
    side = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    tts = {m["name"]: m for m in side["models"]}["tts"]
    assert tts["kind"] == "rhvoice" and tts["path"].endswith("/voices/anna")


def test_a_fresh_install_converts_english_with_piper(tmp_path, speech_dir):
    proc, _out = _convert(tmp_path, speech_dir / "fw_jfk.flac", VOICE_DAEMON_LANGUAGE="en")
    (chosen,) = _events(proc.stderr, "tts.chosen")
    assert chosen["tts"] == "piper"


def test_without_rhvoice_russian_falls_back_to_festival(tmp_path, speech_dir):
    empty = tmp_path / "no-rhvoice"
    empty.mkdir()
    proc, _out = _convert(tmp_path, speech_dir / "silero_vad_ru_num.wav", VOICE_DAEMON_RHVOICE_DATA=str(empty))
    (chosen,) = _events(proc.stderr, "tts.chosen")
    assert chosen["tts"] == "festival" and "silero, rhvoice not usable" in chosen["why"]
    (mapped,) = _events(proc.stderr, "tts.voice_mapped")  # kseniya is female; Festival has a male voice: said
    assert mapped["voice"] == "msu_ru_nsh_clunits" and "no female Festival voice" in mapped["why"]


def test_the_daemon_offers_voice_folders_of_the_voices_it_has(tmp_path, speech_dir):
    """`run` with the default synthesiser: inbox/aleksandr/ speaks with RHVoice's male voice; inbox/aidar/
    is only a subfolder (no Silero model has aidar here), spoken with the default voice (anna)."""
    import signal

    from helpers import wait_until

    folders = {name: tmp_path / name for name in ("inbox", "outbox", "failed", "state")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_ENGINE": "resynth", "VOICE_DAEMON_WORKERS": "1",
                "VOICE_DAEMON_MODEL_DIR": str(MODEL_DIR), "VOICE_DAEMON_SAMPLE_RATE": "24000",
                "VOICE_DAEMON_INBOX": str(folders["inbox"]), "VOICE_DAEMON_OUTBOX": str(folders["outbox"]),
                "VOICE_DAEMON_FAILED_DIR": str(folders["failed"]), "VOICE_DAEMON_STATE_DIR": str(folders["state"]),
                "VOICE_DAEMON_SETTLE_SECONDS": "0.3"})
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: '"daemon.ready"' in log.read_text() or proc.poll() is not None, 300)
        assert proc.poll() is None, log.read_text()[-3000:]
        for voice in ("aleksandr", "aidar"):
            (folders["inbox"] / voice).mkdir(parents=True, exist_ok=True)
            tmp = tmp_path / f"{voice}.wav"
            tmp.write_bytes((speech_dir / "silero_vad_ru_num.wav").read_bytes())
            os.rename(tmp, folders["inbox"] / voice / "x.wav")
        wait_until(lambda: len(_events(log.read_text(), "job.done")) + len(_events(log.read_text(), "job.failed")) >= 2,
                   300, message="two jobs")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    done = {e["input"]: e for e in _events(log.read_text(), "job.done")}
    assert done["aleksandr/x.wav"]["voice"] == "aleksandr"
    assert done["aidar/x.wav"]["voice"] == "kseniya"  # not a voice folder: the configured voice
    pitch = {v: _median_f0(folders["outbox"] / v / "x.wav") for v in ("aleksandr", "aidar")}
    assert pitch["aidar"] > 1.4 * pitch["aleksandr"], pitch  # anna (female) vs aleksandr (male)


def _median_f0(path: Path) -> float:
    import numpy as np
    import parselmouth

    audio, rate = sf.read(str(path), dtype="float64")
    f0 = parselmouth.Sound(audio, rate).to_pitch(pitch_floor=75, pitch_ceiling=500).selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))
