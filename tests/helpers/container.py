"""A real systemd as PID 1 of a container: Debian bookworm from debootstrap, booted by systemd-nspawn.

The tree (with a venv holding the package's dependencies) and a wheelhouse of those dependencies
are built once and kept in CACHE, keyed by what goes into them; each boot lays a tmpfs over the
tree (``--volatile=overlay``), so every run starts from the same clean system and leaves it so.
Commands run inside through ``nsenter`` into the container's PID 1, with a clean environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/voice-daemon-test")
SUITE = "bookworm"
INCLUDES = "systemd,systemd-sysv,dbus,python3,python3-venv,procps"
VENV = "/opt/voice-daemon/venv"
ENV = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
NSPAWN = ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet"]  # no systemd on the host to register with


def cannot_boot() -> str | None:
    """Why this machine cannot boot a container (None when it can)."""
    if os.geteuid() != 0:
        return "booting a container with systemd-nspawn needs root"
    missing = [t for t in ("debootstrap", "systemd-nspawn", "nsenter") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} missing: apt-get install debootstrap systemd-container (make test does)"
    return None


def _key() -> str:
    deps = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]
    text = INCLUDES + SUITE + (ROOT / "config" / "constraints.txt").read_text() + deps
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextmanager
def _locked(name: str):
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # two suites at once build it once
        yield


def _run(cmd: list, timeout: float, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def build_wheel(out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, ROOT], 300)
    (whl,) = out.glob("voice_daemon-*.whl")
    return whl


def wheelhouse(wheel: Path) -> Path:
    """The dependencies' wheels, fetched from the package registries this machine reaches (the CPU
    torch comes from the local wheel folder pip is configured with: no CUDA build is pulled)."""
    house = CACHE / f"wheelhouse-{_key()}"
    with _locked("wheelhouse"):
        if not (house / ".ready").exists():
            shutil.rmtree(house, ignore_errors=True)
            _run([sys.executable, "-m", "pip", "download", "-q", "-d", house, "-c", ROOT / "config" / "constraints.txt",
                  wheel], 1800, cwd=CACHE)
            for own in house.glob("voice_daemon-*"):
                own.unlink()  # each run installs the wheel it builds
            (house / ".ready").touch()
            _prune("wheelhouse-", house)
    return house


def rootfs(house: Path, wheel: Path) -> Path:
    """Debian with systemd, and a venv in VENV holding the package's dependencies (not the package)."""
    # keyed by the wheels it holds: a change to the pins of test tools keeps the tree
    wheels = "".join(sorted(w.name for w in house.glob("*.whl"))) + INCLUDES + SUITE
    tree = CACHE / f"rootfs-{hashlib.sha256(wheels.encode()).hexdigest()[:12]}"
    with _locked("rootfs"):
        if not (tree / ".ready").exists():
            tmp = CACHE / f".{tree.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            _run(["debootstrap", "--variant=minbase", f"--include={INCLUDES}", SUITE, tmp], 1800)
            inside = [*NSPAWN, "-D", tmp, "--pipe", f"--bind-ro={house}:/wheelhouse", f"--bind-ro={wheel.parent}:/wheels",
                      "--", *ENV]
            _run([*inside, "python3", "-m", "venv", VENV], 300)
            _run([*inside, f"{VENV}/bin/pip", "install", "-q", "--no-index", "--find-links", "/wheelhouse", f"/wheels/{wheel.name}"], 1800)
            _run([*inside, f"{VENV}/bin/pip", "uninstall", "-q", "-y", "voice-daemon"], 300)
            (tmp / ".ready").touch()
            os.rename(tmp, tree)
            _prune("rootfs-", tree)
    return tree


def _prune(prefix: str, keep: Path) -> None:
    for old in CACHE.glob(prefix + "*"):
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


class Machine:
    """One booted container; ``sh`` runs a shell command inside, as root."""

    def __init__(self, tree: Path, binds: dict[Path, str], log: Path):
        self.name = f"vdtest-{os.getpid()}"
        self._log = open(log, "wb")
        self.log = log
        cmd = [*NSPAWN, "-D", tree, "-M", self.name, "--volatile=overlay", "--boot", "--console=read-only"]
        cmd += [f"--bind-ro={host}:{inside}" for host, inside in binds.items()]
        self.proc = subprocess.Popen([str(c) for c in cmd], stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = wait_until(self._pid1, 60, message=f"no PID 1 in the container: {self._tail()}")
        wait_until(lambda: self.sh("systemctl is-system-running", check=False).stdout.strip()
                   in ("running", "degraded"), 120, interval=0.2, message=f"the container did not boot: {self._tail()}")

    def _pid1(self) -> int | None:
        """The container's init: a descendant of nspawn that is PID 1 of its own PID namespace (nspawn
        forks an intermediate child first)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited {self.proc.returncode}: {self._tail()}")
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                continue
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if len(nspid) > 1 and nspid[-1] == "1":
                return pid
        return None

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def sh(self, script: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(["nsenter", "-t", str(self.pid), "-a", *ENV, "sh", "-c", script],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"`{script}` exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> list[dict]:
        out = self.sh(f"journalctl -u {unit} -o json --no-pager").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def events(self, unit: str, name: str | None = None) -> list[dict]:
        """The daemon's JSON log lines in the journal, each with the entry's monotonic time."""
        found = []
        for entry in self.journal(unit):
            message = entry.get("MESSAGE")
            if not isinstance(message, str) or not message.startswith("{"):
                continue
            try:
                ev = json.loads(message)
            except ValueError:
                continue
            if name is None or ev.get("event") == name:
                ev["_monotonic_usec"] = int(entry["__MONOTONIC_TIMESTAMP"])
                found.append(ev)
        return found

    def close(self) -> None:
        if self.proc.poll() is None:
            self.sh("systemctl poweroff", check=False, timeout=30)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self._log.close()


def elapsed(since: float) -> str:
    return f"{time.monotonic() - since:.1f} s"
