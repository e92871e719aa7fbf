"""The command line follows the conventions operators know: NO_COLOR, global flags after the command,
`status` exit codes and JSON, `config` sources and spelling, the installed unit's folders."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon import __version__, log
from daemon.deploy import sources
from daemon.spool import acquire_lock

ROOT = Path(__file__).resolve().parents[2]


def vd(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VOICE_DAEMON_", "NO_COLOR"))}
    environ.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True,
                          timeout=120, env=environ, cwd=cwd)


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_no_color_turns_colours_off_on_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert log.use_colour(Tty()) and not log.use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not log.use_colour(Tty())
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: set *and not empty*
    assert log.use_colour(Tty())


def test_global_flags_go_before_or_after_the_command(tmp_path):
    after = vd("config", "--log-level", "debug", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert "VOICE_DAEMON_LOG_LEVEL=debug" in after.stdout
    before = vd("--log-level", "warning", "config", cwd=tmp_path)
    assert "VOICE_DAEMON_LOG_LEVEL=warning" in before.stdout
    both = vd("--log-level", "warning", "config", "--log-format", "json", cwd=tmp_path)
    assert "VOICE_DAEMON_LOG_LEVEL=warning" in both.stdout and "VOICE_DAEMON_LOG_FORMAT=json" in both.stdout


def test_help_names_the_exit_codes_and_every_kind_of_input(tmp_path):
    text = vd("--help", cwd=tmp_path).stdout + vd("convert", "--help", cwd=tmp_path).stdout
    for word in ("130 interrupted", "3 not running", ".mp4", ".txt", "NO_COLOR"):
        assert word in text, word


def test_config_says_where_each_value_came_from(tmp_path):
    env_file = tmp_path / "extra.env"
    env_file.write_text("VOICE_DAEMON_ENGINE=resynth\nVOICE_DAEMON_OVERWRITE=yes\n")
    proc = vd("config", "--log-level", "error", cwd=tmp_path, VOICE_DAEMON_ENV_FILE=str(env_file),
              VOICE_DAEMON_VOICE="aidar", VOICE_DAEMON_KEEP_SOURCE="0")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("=", 1)[0]: line for line in proc.stdout.splitlines()}
    assert rows["VOICE_DAEMON_ENGINE"].endswith(f"# env file {env_file}")
    assert rows["VOICE_DAEMON_VOICE"].endswith("# environment")
    assert rows["VOICE_DAEMON_LOG_LEVEL"].endswith("# flag")
    assert rows["VOICE_DAEMON_CHUNK_SECONDS"].endswith("# default")
    # true/false as an env file writes them, not Python's True/False
    assert rows["VOICE_DAEMON_OVERWRITE"].startswith("VOICE_DAEMON_OVERWRITE=true ")
    assert rows["VOICE_DAEMON_KEEP_SOURCE"].startswith("VOICE_DAEMON_KEEP_SOURCE=false ")
    assert "True" not in proc.stdout and "False" not in proc.stdout


UNIT = """[Unit]
Description=x
[Service]
Environment=VOICE_DAEMON_INBOX=/srv/in VOICE_DAEMON_OUTBOX=/srv/out
Environment="VOICE_DAEMON_STATE_DIR=/srv/my state"
Environment=OTHER=1
[Install]
Environment=VOICE_DAEMON_ENGINE=not-in-service
"""


def test_the_installed_units_environment_ranks_below_env_files_and_the_environment(tmp_path):
    unit = tmp_path / "voice-daemon.service"
    unit.write_text(UNIT)
    dropins = tmp_path / "voice-daemon.service.d"
    dropins.mkdir()
    (dropins / "z.conf").write_text("[Service]\nEnvironment=VOICE_DAEMON_FAILED_DIR=/srv/failed\n")
    files = sources.unit_files(tmp_path)
    assert files == [unit, dropins / "z.conf"]
    env = {k: v for k, (v, _f) in sources.unit_environment(files).items()}
    assert env == {"VOICE_DAEMON_INBOX": "/srv/in", "VOICE_DAEMON_OUTBOX": "/srv/out",
                   "VOICE_DAEMON_STATE_DIR": "/srv/my state", "VOICE_DAEMON_FAILED_DIR": "/srv/failed"}
    env_file = tmp_path / "e.env"
    env_file.write_text("VOICE_DAEMON_OUTBOX=/elsewhere/out\n")
    values, origin = sources.layered("status", {}, environ={"VOICE_DAEMON_ENV_FILE": str(env_file),
                                                            "VOICE_DAEMON_INBOX": "/mine"}, unit=files)
    assert values == {"state_dir": "/srv/my state", "failed_dir": "/srv/failed"}
    assert origin["VOICE_DAEMON_STATE_DIR"] == f"unit {unit}" and origin["VOICE_DAEMON_INBOX"] == "environment"
    assert origin["VOICE_DAEMON_OUTBOX"] == f"env file {env_file}"
    # `run` and `convert` never take the service's folders
    assert sources.layered("run", {}, environ={}, unit=files)[0] == {}
    assert sources.unit_files(tmp_path / "none") == []


def test_status_exits_3_when_nothing_runs_and_0_when_a_daemon_holds_the_spool(tmp_path):
    state = tmp_path / "state"
    env = {"VOICE_DAEMON_STATE_DIR": str(state), "VOICE_DAEMON_INBOX": str(tmp_path / "in"),
           "VOICE_DAEMON_OUTBOX": str(tmp_path / "out"), "VOICE_DAEMON_FAILED_DIR": str(tmp_path / "failed")}
    stopped = vd("status", "--json", cwd=tmp_path, **env)
    assert stopped.returncode == 3, stopped.stderr
    assert vd("status", cwd=tmp_path, **env).returncode == 3
    fd = acquire_lock(state)  # this test process stands for the daemon
    try:
        running = vd("status", "--json", cwd=tmp_path, **env)
        assert running.returncode == 0, running.stderr
    finally:
        os.close(fd)
    pairs = json.loads(running.stdout, object_pairs_hook=lambda kv: kv)
    keys = [k for k, _v in pairs]
    assert len(keys) == len(set(keys))
    st = dict(pairs)
    assert st["version"] == __version__
    for gone in ("last_done", "failed_inputs"):  # one list of each: latest_done, latest_failed
        assert gone not in st
    assert st["latest_done"] == [] and st["latest_failed"] == []


@pytest.mark.parametrize("value,shown", [(True, "true"), (False, "false"), (Path("/a"), "/a"), (2.5, "2.5")])
def test_values_are_shown_as_an_env_file_holds_them(value, shown):
    assert sources.shown(value) == shown
