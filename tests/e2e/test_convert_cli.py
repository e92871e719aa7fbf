"""`voice-daemon convert` as a user runs it: a real process on real and broken files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from helpers import media

ROOT = Path(__file__).resolve().parents[2]


def vd(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    full_env.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_WORKERS": "2"})
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


@pytest.mark.parametrize("command", ["", "convert", "run", "status", "bench", "voices", "models",
                                     "install-service", "config"])
def test_help_explains_every_option(command):
    proc = vd(*([command] if command else []), "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: voice-daemon" in proc.stdout
    if command == "convert":
        for opt in ("INPUT", "OUTPUT", "--engine", "--voice", "--semitones", "--formant", "--sequential",
                    "--overwrite", "--no-progress"):
            assert opt in proc.stdout
        assert "mp4" in proc.stdout and ".txt" in proc.stdout  # every input convert takes
    if not command:
        assert "VOICE_DAEMON_" in proc.stdout and "78 bad configuration" in proc.stdout
        assert "130 interrupted" in proc.stdout


@pytest.mark.parametrize("mode", ["--sequential", "--pool"])
def test_convert_real_recording(tmp_path, speech_dir, mode):
    out = tmp_path / "jfk.mp3"
    args = ["convert", str(speech_dir / "fw_jfk.flac"), str(out)]
    if mode == "--sequential":
        args.append(mode)
    proc = vd(*args)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert "fw_jfk.flac -> " in summary and "s of audio in" in summary and "real-time factor" in summary
    assert abs(media.duration(out) - 11.0) < 0.06
    assert '"event": "convert.done"' in proc.stderr  # JSON log lines off a terminal


def _zero_length(d: Path) -> Path:
    p = d / "zero.wav"
    sf.write(p, [], 16000)
    return p


def _truncated(d: Path, speech: Path) -> Path:
    mp3 = media.transcode(speech / "silero_vad_en.wav", d / "whole.mp3", "-c:a", "libmp3lame")
    cut = d / "truncated.mp3"
    cut.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 3])
    return cut


BAD = {
    "missing": (lambda d, s: d / "missing.wav", "no such file"),
    "directory": (lambda d, s: (d / "dir.wav").mkdir() or d / "dir.wav", "not a regular file"),
    "empty": (lambda d, s: (d / "empty.mp3").write_bytes(b"") or d / "empty.mp3", "empty"),
    "text as mp3": (lambda d, s: (d / "notes.mp3").write_text("hello\n" * 99) and d / "notes.mp3", "not a readable audio"),
    "zero-length audio": (lambda d, s: _zero_length(d), "no audio samples"),
    "truncated mp3": (_truncated, "truncated"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_error_and_no_output(tmp_path, speech_dir, case):
    make, cause = BAD[case]
    src = make(tmp_path, speech_dir)
    out = tmp_path / "out.wav"
    proc = vd("convert", str(src), str(out), "--sequential")
    assert proc.returncode == 65, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("{")]  # JSON logs aside
    assert len(lines) == 1, proc.stderr
    assert str(src) in lines[0] and cause in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))) == []


@pytest.mark.parametrize("name,opts", [
    ("ch8.wav", ("-af", "pan=7.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0|c6=c0|c7=c0")),
    ("r8k.wav", ("-ar", "8000")),
    ("r192k.flac", ("-ar", "192000")),
])
def test_odd_but_valid_inputs_convert(tmp_path, speech_dir, name, opts):
    src = media.transcode(speech_dir / "silero_vad_ru_num.wav", tmp_path / name, *opts)
    out = tmp_path / "out.flac"
    proc = vd("convert", str(src), str(out), "--sequential")
    assert proc.returncode == 0, proc.stderr
    assert abs(sf.info(str(out)).duration - sf.info(str(src)).duration) <= 0.010


def test_silence_only_is_not_an_error(tmp_path):
    src = media.silence(tmp_path / "quiet.wav", 4.0)
    out = tmp_path / "quiet.ogg"
    proc = vd("convert", str(src), str(out), "--sequential")
    assert proc.returncode == 0, proc.stderr
    assert abs(media.duration(out) - 4.0) < 0.03


def test_existing_output_is_not_overwritten(tmp_path, speech_dir):
    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    proc = vd("convert", str(speech_dir / "silero_vad_ru_num.wav"), str(out), "--sequential")
    assert proc.returncode == 73 and "--overwrite" in proc.stderr
    assert out.read_bytes() == b"keep me"
    proc = vd("convert", str(speech_dir / "silero_vad_ru_num.wav"), str(out), "--sequential", "--overwrite")
    assert proc.returncode == 0 and sf.info(str(out)).frames > 0


def test_unknown_output_extension(tmp_path, speech_dir):
    proc = vd("convert", str(speech_dir / "fw_jfk.flac"), str(tmp_path / "out.wma"), "--sequential")
    assert proc.returncode == 73 and ".wma" in proc.stderr and ".flac" in proc.stderr


PEAK = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")


def _peak_rss_mb(src: Path, out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update({"VOICE_DAEMON_CHUNK_SECONDS": "10", "VOICE_DAEMON_LOG_LEVEL": "warning"})
    proc = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "daemon", "convert", str(src), str(out),
                           "--sequential"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1]) / 1024


@pytest.mark.slow
def test_memory_is_bounded_by_chunk_not_file_length(tmp_path, speech_dir):
    """10 minutes at 48 kHz would be 115 MB of float32 held whole; streaming adds a few MB."""
    short = media.concat(speech_dir / "silero_vad_en.wav", tmp_path / "short.wav", 1)
    long = media.concat(speech_dir / "silero_vad_en.wav", tmp_path / "long.wav", 10)
    rss_short = _peak_rss_mb(short, tmp_path / "short_out.wav")
    rss_long = _peak_rss_mb(long, tmp_path / "long_out.wav")
    assert rss_long - rss_short < 60, f"peak RSS {rss_short:.0f} MB for 1 min, {rss_long:.0f} MB for 10 min"
