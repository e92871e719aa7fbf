"""The wheel deploys itself: built from the checkout, installed into a fresh venv elsewhere, it writes
its own systemd unit (from package data) and converts a file, with nothing read from the checkout.

The fresh venv gets its dependencies from the shared test venv through a path file (as
`--system-site-packages` would from a system Python): installing torch and the models again
would take minutes and gigabytes.  The wheel itself is installed with pip, as an operator would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, timeout=300, cwd=out)
    (whl,) = out.glob("voice_daemon-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    root = tmp_path_factory.mktemp("opt") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    site = Path(subprocess.run([root / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "shared-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # after the venv's own
    subprocess.run([sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300, cwd=root.parent)
    return root


def run(venv: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICE_DAEMON_", "PYTHON"))}
    env.update(HOME=str(cwd), XDG_CACHE_HOME=str(cwd / "cache"))
    return subprocess.run([str(venv / "bin" / "voice-daemon"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def test_the_wheel_holds_the_units_the_env_template_and_the_licence(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for want in ("daemon/deploy/voice-daemon.service", "daemon/deploy/voice-daemon-worker.service",
                 "daemon/deploy/voice-daemon-scheduler.service", "daemon/deploy/voice-daemon.env",
                 "daemon/web/status.html"):
        assert want in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: GPL-3.0-or-later" in meta and "Classifier: Operating System :: POSIX :: Linux" in meta
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    for tool in ("pytest", "ruff", "import-linter"):  # test tools only in the `test` extra
        (line,) = [r for r in requires if re.split(r"[<>=!~;\s\[]", r.split()[1])[0] == tool]
        assert 'extra == "test"' in line, line
    assert any(r.startswith("Requires-Dist: torch==2.13.0") and "extra" not in r for r in requires)
    assert len(meta) < 20_000  # the short page for the package index, not the whole README


def test_installed_wheel_is_what_runs(venv, tmp_path):
    proc = subprocess.run([venv / "bin" / "python", "-c", "import daemon; print(daemon.__file__, daemon.__version__)"],
                          capture_output=True, text=True, check=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    where, version = proc.stdout.split()
    assert where.startswith(str(venv)) and version != "0+unknown"
    assert run(venv, "--version", cwd=tmp_path).stdout.strip() == f"voice-daemon {version}"


def test_install_service_dry_run_from_the_wheel(venv, tmp_path):
    proc = run(venv, "install-service", "--dry-run", "--unit-dir", str(tmp_path / "units"),
               "--env-dir", str(tmp_path / "etc"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"ExecStart={venv / 'bin' / 'voice-daemon'} run" in proc.stdout
    assert f"would write {tmp_path / 'units' / 'voice-daemon.service'}" in proc.stdout
    assert f"would write {tmp_path / 'etc' / 'voice-daemon.env'}" in proc.stdout
    assert not (tmp_path / "units").exists() and not (tmp_path / "etc").exists()
    assert str(ROOT) not in proc.stdout

    proc = run(venv, "install-service", "--unit-dir", str(tmp_path / "units"), "--env-dir", str(tmp_path / "etc"),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    unit = (tmp_path / "units" / "voice-daemon.service").read_text()
    assert f"ExecStart={venv / 'bin' / 'voice-daemon'} run\n" in unit
    assert not [line for line in unit.splitlines() if "/opt/voice-daemon" in line and not line.startswith("#")]
    assert (tmp_path / "etc" / "voice-daemon.env").read_text() == (ROOT / "daemon" / "deploy" / "voice-daemon.env").read_text()


def test_a_conversion_from_the_wheel(venv, tmp_path, speech_dir):
    src = tmp_path / "in.wav"
    data, rate = sf.read(speech_dir / "fw_jfk.flac", dtype="float32")
    sf.write(src, data[: rate * 6], rate)
    proc = run(venv, "convert", str(src), str(tmp_path / "out.wav"), "--engine", "shift", "--workers", "1",
               "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = sf.info(tmp_path / "out.wav")
    assert info.duration == pytest.approx(6.0, abs=0.05)
    assert not (tmp_path / "var").exists()  # nothing is left in the folder the user stands in
