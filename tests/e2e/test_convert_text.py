"""A `.txt` file alone is read aloud (resynth with the real offline Piper voice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from helpers.asr import transcribe, wer

ROOT = Path(__file__).resolve().parents[2]
TEXT = "Ask not what your country can do for you.\nAsk what you can do for your country.\n\nThank you."


def _run(tmp_path, *args, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    e.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_WORKERS": "1", **env})
    return subprocess.run([sys.executable, "-m", "daemon", "convert", *args], capture_output=True, text=True,
                          env=e, cwd=ROOT, timeout=300)


def test_text_file_is_read_aloud(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "notes.wav"
    proc = _run(tmp_path, str(src), str(out), VOICE_DAEMON_ENGINE="resynth", VOICE_DAEMON_TTS="piper",
                VOICE_DAEMON_LANGUAGE="en")
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(out))
    assert 3.0 < info.duration < 20.0
    side = json.loads(out.with_suffix(".json").read_text())
    assert [p["text"] for p in side["phrases"]] == [
        "Ask not what your country can do for you.", "Ask what you can do for your country.", "Thank you."]
    starts = [p["start"] for p in side["phrases"]]
    assert starts == sorted(starts) and side["models"]
    assert wer(TEXT, transcribe(out)) <= 0.2


def test_text_file_with_shift_engine_is_refused(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text(TEXT)
    proc = _run(tmp_path, str(src), str(tmp_path / "o.wav"), VOICE_DAEMON_ENGINE="shift")
    assert proc.returncode == 65 and "VOICE_DAEMON_ENGINE=resynth" in proc.stderr
    assert not (tmp_path / "o.wav").exists()
