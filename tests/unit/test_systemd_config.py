"""the env-file template (daemon/deploy/voice-daemon.env) stays complete, and install-service puts the files in place."""

from __future__ import annotations

import grp
import os
import re
import stat
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from daemon.deploy import install as systemd
from daemon.settings import PREFIX, Settings, describe

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / "daemon" / "deploy" / "voice-daemon.env"
UNIT = ROOT / "daemon" / "deploy" / "voice-daemon.service"
LINE = re.compile(r"^#\s?(VOICE_DAEMON_[A-Z0-9_]+)=(.*)$")


def env_file_defaults() -> dict[str, str]:
    found = {}
    for line in ENV_FILE.read_text().splitlines():
        m = LINE.match(line)
        if m:
            assert m.group(1) not in found, f"{m.group(1)} appears twice"
            found[m.group(1)] = m.group(2)
    return found


def unit_environment() -> dict[str, str]:
    return dict(re.findall(r"^Environment=(VOICE_DAEMON_\w+)=(.*)$", UNIT.read_text(), re.M))


def test_every_setting_is_documented_in_the_env_file():
    documented = env_file_defaults()
    expected = {PREFIX + name.upper() for name in Settings.model_fields} | {PREFIX + "ENV_FILE"}
    assert sorted(expected - set(documented)) == [], "add these to the env-file template (daemon/deploy/voice-daemon.env)"
    assert sorted(set(documented) - expected) == [], "the env-file template (daemon/deploy/voice-daemon.env) names unknown variables"


def test_env_file_shows_the_defaults_the_service_runs_with():
    documented = env_file_defaults()
    from_unit = unit_environment()
    for var, default, _text in describe():
        shown = documented[var]
        if var in from_unit:  # the unit's Environment= line is the service's default
            assert shown == from_unit[var], var
        elif default == "usable cores":
            assert shown == "", var
        else:
            assert shown == default, f"{var}: env file says {shown!r}, settings say {default!r}"


def test_env_file_uncommented_is_valid_configuration(tmp_path):
    """Every line, uncommented as a user would, must load (values are the defaults)."""
    lines = [f"{var}={value}" for var, value in env_file_defaults().items()
             if value != "" and var != PREFIX + "ENV_FILE"]
    env = tmp_path / "all.env"
    env.write_text("\n".join(lines) + "\n")
    s = Settings(_env_file=env)
    assert str(s.inbox) == "/var/lib/voice-daemon/inbox"
    assert s.engine == Settings.model_fields["engine"].default


def test_env_file_is_grouped():
    text = ENV_FILE.read_text()
    headings = [h.lower() for h in re.findall(r"^# =+\n# (.+)$", text, re.M)]
    for word in ("conversion", "resynth", "pool", "daemon", "logs"):
        assert any(word in h for h in headings), f"no {word} group in {headings}"


def test_unit_folders_live_in_the_state_directory():
    from_unit = unit_environment()
    assert re.search(r"^StateDirectory=voice-daemon$", UNIT.read_text(), re.M)
    for var in ("INBOX", "OUTBOX", "FAILED_DIR", "STATE_DIR", "MODEL_DIR"):
        assert from_unit[PREFIX + var].startswith("/var/lib/voice-daemon/"), var


# --- install-service ------------------------------------------------------------------
def test_render_unit_points_exec_start_at_the_installation():
    text = systemd.render_unit(UNIT.read_text(), "/srv/x/bin/voice-daemon run")
    assert re.findall(r"^ExecStart=.*$", text, re.M) == ["ExecStart=/srv/x/bin/voice-daemon run"]
    assert text.count("\n") == UNIT.read_text().count("\n")
    with pytest.raises(ValueError):
        systemd.render_unit("[Service]\nType=notify\n", "/bin/true")


def _args(tmp_path, **kw):
    base = dict(dry_run=False, unit_dir=str(tmp_path / "units"), env_dir=str(tmp_path / "etc"),
                exec_path=sys.executable)
    base.update(kw)
    return Namespace(**base)


def test_install_service_writes_unit_and_env_file(tmp_path, capsys):
    rc = systemd.install_service(Settings(), _args(tmp_path))
    assert rc == 0
    unit = (tmp_path / "units" / "voice-daemon.service").read_text()
    assert f"ExecStart={sys.executable} run" in unit
    assert (tmp_path / "etc" / "voice-daemon.env").read_text() == ENV_FILE.read_text()
    assert not (tmp_path / "units" / "voice-daemon.service.d" / "folders.conf").exists()  # default folders
    out = capsys.readouterr().out
    assert "systemctl daemon-reload && systemctl enable --now voice-daemon" in out


def test_install_service_worker_writes_the_worker_nodes_unit(tmp_path, capsys):
    rc = systemd.install_service(Settings(), _args(tmp_path, worker=True))
    assert rc == 0
    unit = (tmp_path / "units" / "voice-daemon-worker.service").read_text()
    assert re.findall(r"^ExecStart=.*$", unit, re.M) == [f"ExecStart={sys.executable} worker"]
    assert not (tmp_path / "units" / "voice-daemon.service").exists()
    assert (tmp_path / "etc" / "voice-daemon.env").read_text() == ENV_FILE.read_text()
    assert "systemctl enable --now voice-daemon-worker" in capsys.readouterr().out


def test_install_service_keeps_an_existing_env_file(tmp_path, capsys):
    mine = tmp_path / "etc" / "voice-daemon.env"
    mine.parent.mkdir(parents=True)
    mine.write_text("VOICE_DAEMON_ENGINE=resynth\n")
    assert systemd.install_service(Settings(), _args(tmp_path)) == 0
    assert mine.read_text() == "VOICE_DAEMON_ENGINE=resynth\n"
    assert "kept" in capsys.readouterr().out


def test_install_service_dry_run_writes_nothing(tmp_path, capsys):
    settings = Settings(inbox="/srv/audio/in", outbox="/home/alice/out")
    assert systemd.install_service(settings, _args(tmp_path, dry_run=True)) == 0
    assert not (tmp_path / "units").exists() and not (tmp_path / "etc").exists()
    out = capsys.readouterr().out
    assert "would write" in out and "ReadWritePaths=/home/alice/out /srv/audio/in" in out


def test_install_service_opens_folders_outside_the_state_directory(tmp_path):
    settings = Settings(inbox="/srv/audio/in", outbox="/home/alice/out",
                        failed_dir="/var/lib/voice-daemon/failed", state_dir="var/state")
    assert systemd.install_service(settings, _args(tmp_path)) == 0
    dropin = (tmp_path / "units" / "voice-daemon.service.d" / "folders.conf").read_text()
    assert "ReadWritePaths=/home/alice/out /srv/audio/in\n" in dropin
    # /home is hidden by ProtectHome=yes: only that folder is bound back in
    assert "ProtectHome=tmpfs\n" in dropin and "BindPaths=/home/alice/out\n" in dropin
    assert "/var/lib/voice-daemon/failed" not in dropin and "var/state" not in dropin


def _refused(settings, args) -> tuple[int, str]:
    """install-service raises; the command line prints the message and exits with its code."""
    with pytest.raises(systemd.InstallError) as exc:
        systemd.install_service(settings, args)
    return exc.value.exit_code, str(exc.value)


def _venv(root: Path, interpreter: str) -> Path:
    """A venv's console script as pip writes it: ``#!`` names the venv's python, a symlink to ``interpreter``."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(interpreter)
    script = bin_dir / "voice-daemon"
    script.write_text(f"#!{bin_dir / 'python'}\nimport sys\n")
    return script


def test_a_venv_under_home_is_bound_read_only_into_the_service(tmp_path, monkeypatch, capsys):
    """pyenv: the venv and its interpreter's prefix both lie under /root; the service gets both, read-only."""
    script = _venv(tmp_path / "venv", sys.executable)
    venv = str(tmp_path / "venv")
    monkeypatch.setattr(systemd, "HOMES", (str(tmp_path),))  # tmp_path plays /root
    real_prefix = str(Path(os.path.realpath(sys.executable)).parent.parent)
    assert systemd.install_service(Settings(), _args(tmp_path, exec_path=str(script))) == 0
    dropin = (tmp_path / "units" / "voice-daemon.service.d" / "installation.conf").read_text()
    assert "ProtectHome=tmpfs\n" in dropin
    (binds,) = [line for line in dropin.splitlines() if line.startswith("BindReadOnlyPaths=")]
    expected = [venv] + ([real_prefix] if real_prefix.startswith(str(tmp_path) + "/") else [])
    assert binds.split("=", 1)[1].split() == sorted(expected)
    assert f"ExecStart={script} run" in (tmp_path / "units" / "voice-daemon.service").read_text()
    out = capsys.readouterr().out
    assert "BindReadOnlyPaths=" in out  # it says what it wrote


def test_installation_prefixes_follow_the_interpreter_symlink(tmp_path):
    """A venv of a pyenv Python: the stdlib lives under the interpreter's real prefix, which is bound too."""
    real = tmp_path / "root" / ".pyenv" / "versions" / "3.11.7" / "bin" / "python3.11"
    real.parent.mkdir(parents=True)
    real.write_text("")
    script = _venv(tmp_path / "root" / "venv", str(real))
    got = systemd.installation_prefixes(script)
    assert got == sorted([str(tmp_path / "root" / ".pyenv" / "versions" / "3.11.7"), str(tmp_path / "root" / "venv")])


def test_a_venv_of_the_system_python_needs_no_binds(tmp_path):
    script = tmp_path / "opt" / "venv" / "bin" / "voice-daemon"
    script.parent.mkdir(parents=True)
    script.write_text("#!/usr/bin/python3\n")  # /tmp and /usr: nothing ProtectHome= hides
    assert systemd.installation_prefixes(script) == sorted({str(tmp_path / "opt" / "venv"), "/usr",
                                                            str(Path(os.path.realpath("/usr/bin/python3")).parents[1])})
    assert systemd.installation_dropin(script) == ""


def test_default_program_is_this_installations_console_script(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "scripts"
    _venv(tmp_path / "scripts-venv", sys.executable)
    monkeypatch.setattr(systemd, "scripts_dir", lambda: fake)
    rc, err = _refused(Settings(), _args(tmp_path, exec_path=None))
    assert rc == 1 and f"{fake / 'voice-daemon'} does not exist" in err
    monkeypatch.setattr(systemd, "scripts_dir", lambda: tmp_path / "scripts-venv" / "bin")
    assert systemd.install_service(Settings(), _args(tmp_path, exec_path=None, dry_run=True)) == 0
    assert f"ExecStart={tmp_path / 'scripts-venv' / 'bin' / 'voice-daemon'} run" in capsys.readouterr().out


def test_install_service_scheduler_keeps_the_templates_arguments(tmp_path, capsys):
    script = _venv(tmp_path / "venv", sys.executable)
    (tmp_path / "venv" / "bin" / "dask").write_text("#!/bin/sh\n")
    assert systemd.install_service(Settings(), _args(tmp_path, exec_path=str(script), scheduler=True)) == 0
    unit = (tmp_path / "units" / "voice-daemon-scheduler.service").read_text()
    assert re.findall(r"^ExecStart=.*$", unit, re.M) == [
        f"ExecStart={tmp_path / 'venv' / 'bin' / 'dask'} scheduler --port 8786 --dashboard-address 127.0.0.1:8787"]
    assert not (tmp_path / "etc").exists()  # the scheduler reads Dask's own scheduler.env


def test_templates_ship_as_package_data():
    for name in (systemd.UNIT_NAME, systemd.WORKER_UNIT_NAME, systemd.SCHEDULER_UNIT_NAME, systemd.ENV_NAME):
        assert systemd.template(name) == (ROOT / "daemon" / "deploy" / name).read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"daemon.deploy" = ["*.service", "*.env"]' in pyproject


def test_install_service_needs_the_console_script(tmp_path):
    rc, err = _refused(Settings(), _args(tmp_path, exec_path=str(tmp_path / "nope")))
    assert rc == 1 and "does not exist" in err


def test_install_service_reports_an_unwritable_target(tmp_path):
    (tmp_path / "units").write_text("a file where the unit folder should be")
    rc, err = _refused(Settings(), _args(tmp_path))
    assert rc == 1 and "cannot write" in err


def test_the_command_line_prints_the_refusal_and_exits_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    proc = subprocess.run([sys.executable, "-m", "daemon", "install-service", "--exec-path", str(tmp_path / "nope"),
                           "--unit-dir", str(tmp_path / "units"), "--env-dir", str(tmp_path / "etc")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"voice-daemon: error: {tmp_path / 'nope'} does not exist: install the package first")
    assert not (tmp_path / "units").exists()


def test_reload_sends_sighup_to_the_main_process():
    """Issue 11, fault 9: `systemctl reload` sends the SIGHUP the daemon reloads on."""
    lines = [line for line in UNIT.read_text().splitlines() if line.startswith("ExecReload=")]
    assert lines == ["ExecReload=/bin/kill -HUP $MAINPID"]


def test_drop_group_shares_the_folders_with_a_group(tmp_path, capsys):
    group = grp.getgrgid(os.getgid()).gr_name
    top = tmp_path / "srv"
    args = _args(tmp_path, drop_group=group, drop_dir=str(top))
    assert systemd.install_service(Settings(), args) == 0
    dropin = (tmp_path / "units" / "voice-daemon.service.d" / "group.conf").read_text()
    assert f"SupplementaryGroups={group}\n" in dropin and f"ReadWritePaths={top}\n" in dropin
    assert f"VOICE_DAEMON_INBOX={top}/inbox VOICE_DAEMON_OUTBOX={top}/outbox VOICE_DAEMON_FAILED_DIR={top}/failed" \
        in dropin
    for name in ("inbox", "outbox", "failed"):
        st = (top / name).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o2770, os.getgid()), name
    assert f"folder      {top / 'inbox'} (root:{group}, mode 2770)" in capsys.readouterr().out


def test_drop_group_must_exist_and_goes_with_the_daemons_unit(tmp_path):
    rc, err = _refused(Settings(), _args(tmp_path, drop_group="no-such-group-here"))
    assert rc == 1 and "groupadd --system no-such-group-here" in err
    rc, err = _refused(Settings(), _args(tmp_path, drop_group="root", worker=True))
    assert "without --worker" in err
    assert not (tmp_path / "units").exists()


def test_a_drop_in_that_no_longer_applies_is_removed_and_the_operators_own_are_kept(tmp_path, capsys):
    settings = Settings(inbox="/srv/audio/in")
    assert systemd.install_service(settings, _args(tmp_path)) == 0
    dropins = tmp_path / "units" / "voice-daemon.service.d"
    assert (dropins / "folders.conf").is_file()
    (dropins / "mine.conf").write_text("[Service]\nNice=5\n")
    capsys.readouterr()
    assert systemd.install_service(Settings(), _args(tmp_path, dry_run=True)) == 0
    assert f"would remove {dropins / 'folders.conf'}" in capsys.readouterr().out
    assert (dropins / "folders.conf").is_file()
    assert systemd.install_service(Settings(), _args(tmp_path)) == 0
    assert not (dropins / "folders.conf").exists()
    assert (dropins / "mine.conf").is_file()
