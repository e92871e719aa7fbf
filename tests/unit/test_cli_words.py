"""Small things the command line says: the summary's counts, the voice check's rules, and a failed
download that leaves nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from daemon.convert import check_voice, plural, summary
from daemon.engines import voice_problem
from daemon.errors import UsageError
from daemon.models import registry
from daemon.settings import Settings, SettingsError


def test_the_summary_counts_in_words():
    fig = {"output": "o.wav", "audio_seconds": 11.0, "wall_seconds": 0.5, "rtf": 0.0455, "chunks": 1,
           "worker_pids": [7]}
    line = summary(Path("in.flac"), fig, 1.25)
    assert "(real-time factor 0.0455, 1 chunk, 1 process; models loaded in 1.2 s before that)" in line
    assert "3 chunks, 2 processes;" in summary(Path("in.flac"), {**fig, "chunks": 3, "worker_pids": [7, 8]}, 1.0)
    assert plural(0, "chunk") == "0 chunks"


def test_voices_each_engine_accepts():
    silero = Settings(engine="resynth", tts="silero")
    assert voice_problem(silero, "aidar") is None
    assert "valid: aidar, baya, kseniya, xenia, eugene, random" in voice_problem(silero, "nobody")
    own = Settings(engine="resynth", tts="silero", tts_model="/models/my-silero.pt")
    assert voice_problem(own, "anyone") is None  # only loading that model can tell: the worker checks
    piper = Settings(engine="resynth", tts="piper")
    assert voice_problem(piper, "en_US-joe-medium") is None
    assert voice_problem(piper, "kseniya", explicit=False) is None  # the default: one speaker, nothing to choose
    assert "not a speaker of the Piper voice" in voice_problem(piper, "kseniya")  # asked for by name: refused
    assert voice_problem(Settings(), "kseniya", explicit=False) is None
    assert "no voices" in voice_problem(Settings(), "aidar")


def test_check_voice_names_the_flag_or_the_variable():
    with pytest.raises(UsageError, match=r"^--voice nobody: not a speaker"):
        check_voice(Settings(engine="resynth", tts="silero", voice="nobody"), "nobody")
    with pytest.raises(SettingsError, match=r"^VOICE_DAEMON_VOICE=nobody: must be a voice the engine has"):
        check_voice(Settings(engine="resynth", tts="silero", voice="nobody"))
    check_voice(Settings(engine="shift", voice="nobody"))  # a label for shift: fine from the environment
    check_voice(Settings(engine="resynth", tts="piper"))   # Piper with the default voice


def test_a_failed_download_leaves_no_lock_file_or_folder(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "var" / "models" / "v4_ru.pt"
    with pytest.raises(OSError):
        registry.download(f"http://127.0.0.1:{port}/v4_ru.pt", dest, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_a_late_encoding_failure_names_the_output_not_its_hidden_temp_name(tmp_path):
    """What check_paths cannot see coming (e.g. Opus at a rate it cannot store) still names the real path."""
    import numpy as np
    import soundfile as sf

    from daemon.errors import OutputError
    from daemon.pipeline import publish

    wav = tmp_path / "stitched.wav"
    sf.write(str(wav), np.zeros(4410, dtype="float32"), 44100, format="WAV", subtype="FLOAT")
    out = tmp_path / "talk.opus"
    with pytest.raises(OutputError) as exc:
        publish(str(wav), out, 44100)
    assert exc.value.path == str(out) and ".tmp" not in str(exc.value), str(exc.value)
    assert list(tmp_path.iterdir()) == [wav], "no hidden temp file left behind"


def test_log_lines_go_above_the_progress_bar_not_through_it(monkeypatch):
    import io
    import sys

    from daemon import convert, log

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    log.configure("json", "info")
    bar = convert._Bar(60.0)
    try:
        bar.update("prepared", 0.0)
        log.get().info("convert.transcript", phrases=3)  # a line while the bar is drawn
        bar.update("chunk", 30.0)
    finally:
        bar.close()
        log.configure("json", "info")
    screen = _terminal(err.getvalue())
    (line,) = [row for row in screen if "convert.transcript" in row]
    assert line.startswith("{") and line.endswith("}"), screen  # whole, on a line of its own, not overdrawn
    assert screen[-1].startswith("converting:  50%|"), screen  # and the bar below it


def _terminal(text: str) -> list[str]:
    """What a terminal shows for ``text``: a carriage return goes back to the line's start and
    what follows overwrites it (trailing spaces dropped)."""
    rows, row, col = [], [], 0
    for ch in text:
        if ch == "\n":
            rows.append("".join(row).rstrip())
            row, col = [], 0
        elif ch == "\r":
            col = 0
        else:
            row[col:col + 1] = [ch] if col < len(row) else row[col:] + [ch]
            col += 1
    rows.append("".join(row).rstrip())
    return [r for r in rows if r]
