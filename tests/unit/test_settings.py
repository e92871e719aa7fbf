"""Settings: fixed names, defaults, validation messages, env files, exit 78."""

from __future__ import annotations

import subprocess
import sys

import pytest

from daemon.settings import PREFIX, Settings, SettingsError, describe, load_settings, usable_cores

FIXED = ["ENGINE", "VOICE", "SAMPLE_RATE", "OUTPUT_FORMAT", "SHIFT_SEMITONES", "SHIFT_FORMANT",
         "CHUNK_SECONDS", "WORKERS", "LOG_FORMAT", "LOG_LEVEL"]


@pytest.fixture
def env(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    return monkeypatch


def test_fixed_names_and_defaults(env):
    s = load_settings()
    names = {v for v, _, _ in describe()}
    for name in FIXED:
        assert PREFIX + name in names
    assert s.voice == "kseniya" and s.sample_rate == 48000 and s.output_format == "same"
    assert s.workers == usable_cores()
    assert s.torch_threads >= 1


def test_environment_is_read_and_frozen(env):
    env.setenv("VOICE_DAEMON_ENGINE", "SHIFT")
    env.setenv("VOICE_DAEMON_SHIFT_SEMITONES", "-3.5")
    env.setenv("VOICE_DAEMON_WORKERS", "3")
    env.setenv("VOICE_DAEMON_OUTPUT_FORMAT", ".FLAC")
    s = load_settings()
    assert (s.engine, s.shift_semitones, s.workers, s.output_format) == ("shift", -3.5, 3, "flac")
    with pytest.raises((TypeError, ValueError)):  # pydantic: frozen instance
        s.workers = 4  # frozen: one object, read once, passed down


def test_env_file(env, tmp_path):
    f = tmp_path / "vd.env"
    f.write_text("VOICE_DAEMON_VOICE=aidar\nVOICE_DAEMON_CHUNK_SECONDS=12\n")
    env.setenv("VOICE_DAEMON_ENV_FILE", str(f))
    env.setenv("VOICE_DAEMON_CHUNK_SECONDS", "15")  # the process environment wins over the file
    s = load_settings()
    assert s.voice == "aidar" and s.chunk_seconds == 15


def test_missing_env_file_is_a_config_error(env, tmp_path):
    env.setenv("VOICE_DAEMON_ENV_FILE", str(tmp_path / "nope.env"))
    with pytest.raises(SettingsError, match="VOICE_DAEMON_ENV_FILE"):
        load_settings()


@pytest.mark.parametrize("var,value,says", [
    ("ENGINE", "magic", "must be resynth or shift"),
    ("WORKERS", "-1", "must be a whole number from 1 to 256"),
    ("WORKERS", "abc", "must be a whole number from 1 to 256"),  # not pydantic's "unable to parse string"
    ("WORKERS", "2.5", "must be a whole number from 1 to 256"),
    ("SAMPLE_RATE", "4000", "must be a whole number from 8000 to 192000 Hz"),
    ("OUTPUT_FORMAT", "wma", "must be same, or one of wav, flac, ogg, opus, mp3, m4a"),
    ("LOG_FORMAT", "xml", "must be auto, json or console"),
    ("SHIFT_FORMANT", "3", "must be a number from 0.5 to 2.0"),
    ("SHIFT_FORMANT", "high", "must be a number from 0.5 to 2.0"),
    ("CHUNK_SECONDS", "1", "must be a number from 5 to 600 seconds"),
    ("METRICS_ADDR", "nowhere", "must be empty (off) or host:port, e.g. 127.0.0.1:9464"),
    ("CROSSFADE_MS", "900", "must be a number from 0 to 500 ms"),
    ("MAX_ATTEMPTS", "0", "must be a whole number from 1 to 100"),
    ("THREADS_PER_WORKER", "-1", "must be a whole number, 0 or more"),
    ("MAX_INPUT_BYTES", "0", "must be a whole number above 0"),
    ("MAX_INPUT_SECONDS", "nan", "must be a number above 0"),
    ("OVERWRITE", "maybe", "must be true or false"),
    ("WEBHOOK_URL", "ftp://example.org/x", "must be empty (none) or an http:// or https:// URL"),
    ("HOOK_TIMEOUT_SECONDS", "0", "must be a number above 0"),
])
def test_bad_values_are_said_as_a_person_would(env, var, value, says):
    env.setenv(PREFIX + var, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    msg = str(exc.value)
    assert msg.startswith(f"{PREFIX}{var}={value}: {says}"), msg
    assert "\n" not in msg and "input should" not in msg.lower() and "parse" not in msg
    assert exc.value.exit_code == 78


def test_rate_the_engine_cannot_produce(env):
    env.setenv("VOICE_DAEMON_ENGINE", "resynth")
    env.setenv("VOICE_DAEMON_SAMPLE_RATE", "22050")
    assert load_settings().tts == "auto"  # the default: whatever it picks is resampled when needed
    env.setenv("VOICE_DAEMON_TTS", "silero")
    with pytest.raises(SettingsError, match="VOICE_DAEMON_SAMPLE_RATE=22050: must be 8000, 24000 or 48000 with "
                                            "VOICE_DAEMON_ENGINE=resynth and VOICE_DAEMON_TTS=silero"):
        load_settings()
    env.setenv("VOICE_DAEMON_TTS", "piper")  # piper output is resampled: any rate is fine
    assert load_settings().sample_rate == 22050


def test_hook_settings(env):
    env.setenv("VOICE_DAEMON_ON_DONE", "jq -r .output >> done.log")
    env.setenv("VOICE_DAEMON_WEBHOOK_URL", " https://hooks.example.org/voice ")
    s = load_settings()
    assert s.on_done == "jq -r .output >> done.log" and s.webhook_url == "https://hooks.example.org/voice"
    assert s.on_failed == "" and s.hook_timeout_seconds == 30.0


def test_cli_exits_78_before_any_work(env, tmp_path):
    env.setenv("VOICE_DAEMON_ENGINE", "magic")
    out = tmp_path / "o.wav"
    proc = subprocess.run([sys.executable, "-m", "daemon", "convert", "nope.wav", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert lines == ["voice-daemon: configuration error: VOICE_DAEMON_ENGINE=magic: must be resynth or shift"]
    assert not out.exists()


def test_settings_pickle_for_children(env):
    import pickle

    s = load_settings(workers=2)
    assert pickle.loads(pickle.dumps(s)) == s and isinstance(s, Settings)


def test_reload_reads_the_env_file_again_even_where_systemd_copied_it_into_the_environment(env, tmp_path):
    """SIGHUP (issue 11, fault 9): under systemd, EnvironmentFile= leaves the file's values in the
    environment, where they would hide the file's new contents."""
    from daemon.settings import env_file_values, reload_settings

    f = tmp_path / "vd.env"
    f.write_text("VOICE_DAEMON_SAMPLE_RATE=16000\nVOICE_DAEMON_SHIFT_SEMITONES=6\nVOICE_DAEMON_VOICE=baya\n")
    env.setenv("VOICE_DAEMON_ENV_FILE", str(f))
    env.setenv("VOICE_DAEMON_SAMPLE_RATE", "16000")   # what systemd put there from the file
    env.setenv("VOICE_DAEMON_VOICE", "aidar")         # set in the unit itself: wins, as at start
    at_start = env_file_values()
    assert at_start["VOICE_DAEMON_SHIFT_SEMITONES"] == "6"
    first = load_settings()
    assert (first.sample_rate, first.shift_semitones, first.voice) == (16000, 6.0, "aidar")
    f.write_text("VOICE_DAEMON_SAMPLE_RATE=22050\nVOICE_DAEMON_VOICE=xenia\n")  # semitones: removed
    again = reload_settings(at_start)
    assert (again.sample_rate, again.shift_semitones, again.voice) == (22050, 4.0, "aidar")
    assert reload_settings(at_start, log_level="debug").log_level == "debug"  # flags still win
    f.write_text("VOICE_DAEMON_SAMPLE_RATE=1\n")
    with pytest.raises(SettingsError, match="VOICE_DAEMON_SAMPLE_RATE=1: must be"):
        reload_settings(at_start)
