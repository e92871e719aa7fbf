"""systemd integration: the sd_notify protocol, and installing the unit.

``Notifier`` speaks the notify protocol with the stdlib socket module (no
libsystemd binding): one datagram of ``KEY=value`` lines to the AF_UNIX socket
named by ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket).
Without ``NOTIFY_SOCKET`` every method is a no-op; a failed send is logged
once and never raised, so a broken notify socket cannot take the daemon down.

This module reads ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``
from the environment: they are set by systemd, not by the user, and are the one
exception to "only settings read the environment".
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

from daemon import durable, log
from daemon.errors import VoiceDaemonError

UNIT_NAME = "voice-daemon.service"
WORKER_UNIT_NAME = "voice-daemon-worker.service"  # a Dask worker node (`voice-daemon worker`)
ENV_NAME = "voice-daemon.env"
#: Where the unit expects the console script (ExecStart=); install-service rewrites it.
DEFAULT_EXEC = "/opt/voice-daemon/.venv/bin/voice-daemon"
DEFAULT_STATE = Path("/var/lib/voice-daemon")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
SYSTEM_ENV_DIR = Path("/etc/voice-daemon")
_ROOT = Path(__file__).resolve().parents[1]
UNIT_SOURCE = _ROOT / "systemd" / UNIT_NAME
ENV_SOURCE = _ROOT / "config" / ENV_NAME


class Notifier:
    """sd_notify over a datagram socket; every method is safe to call without systemd."""

    def __init__(self, environ=None, clock=time.monotonic):
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _watchdog_usec(env)
        self._clock = clock
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed_once = False
        self._last_beat: float | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    # --- the protocol -----------------------------------------------------
    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when it was sent."""
        if self._address is None or not lines:
            return False
        data = "\n".join(lines).encode("utf-8", "replace")
        try:
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, self._address)
            return True
        except OSError as exc:
            if not self._failed_once:  # once: a dead socket would otherwise log on every heartbeat
                self._failed_once = True
                log.get().warning("systemd.notify_failed", socket=_printable(self._address),
                                  error=f"{type(exc).__name__}: {exc}", message=lines[0])
            return False

    def ready(self, status: str | None = None) -> bool:
        """READY=1: call once every worker is warm (Type=notify waits for it)."""
        return self.notify("READY=1", *_status_line(status))

    def status(self, text: str) -> bool:
        """STATUS=…: the free-form line `systemctl status` shows."""
        return self.notify(*_status_line(text))

    def reloading(self, status: str | None = None) -> bool:
        """RELOADING=1 (SIGHUP taken): systemd shows the unit reloading until the next READY=1."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                           *_status_line(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status_line(status))

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: ask for more start/stop time while still making progress."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: one heartbeat, sent now."""
        self._last_beat = self._clock()
        return self.notify("WATCHDOG=1")

    def heartbeat(self) -> bool:
        """Send WATCHDOG=1 only when due; cheap enough to call on every loop iteration."""
        interval = self.watchdog_interval()
        if interval is None:
            return False
        if self._last_beat is not None and self._clock() - self._last_beat < interval:
            return False
        return self.watchdog()

    def watchdog_interval(self) -> float | None:
        """Seconds between heartbeats (half of WatchdogSec=), or None when no watchdog is set."""
        if self._address is None or not self._watchdog_usec:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace: leading NUL, no file
    if value.startswith("/"):
        return value
    # e.g. vsock:… (systemd ≥ 254 in VMs): not spoken here; say so once, stay quiet after.
    log.get().warning("systemd.notify_unsupported", socket=value)
    return None


def _watchdog_usec(env) -> int | None:
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    # WATCHDOG_PID names the process systemd expects heartbeats from; a child that
    # inherited the variables must not think the watchdog is its business.
    if pid and pid != str(os.getpid()):
        return None
    return usec


def _status_line(text: str | None) -> list[str]:
    if text is None:
        return []
    return ["STATUS=" + " ".join(str(text).split())]  # one line: a newline would end the field


def _printable(address) -> str:
    return "@" + address[1:].decode(errors="replace") if isinstance(address, bytes) else str(address)


# --- install-service ---------------------------------------------------------

def render_unit(text: str, command: str) -> str:
    """The unit with ``ExecStart=command`` (the installed console script and its arguments)."""
    pattern = re.compile(r"^ExecStart=.*$", re.MULTILINE)
    if not pattern.search(text):
        raise ValueError("unit has no ExecStart= line")
    return pattern.sub(lambda _m: "ExecStart=" + command, text, count=1)


def folders_dropin(settings) -> str:
    """A drop-in opening the configured folders that lie outside the unit's StateDirectory.

    The unit can only name fixed paths; folders set in the env file elsewhere need
    ReadWritePaths= (and, under /home or /root, a way past ProtectHome=).
    """
    paths, homes = [], []
    for field in ("inbox", "outbox", "failed_dir", "state_dir", "model_dir"):
        p = Path(getattr(settings, field))
        if not p.is_absolute() or p == DEFAULT_STATE or DEFAULT_STATE in p.parents:
            continue  # relative defaults are replaced by the unit's Environment= lines
        paths.append(str(p))
        if p.parts[1:2] in (("home",), ("root",)):
            homes.append(str(p))
    if not paths:
        return ""
    lines = ["# Written by `voice-daemon install-service` for the folders configured outside",
             f"# {DEFAULT_STATE}.  The service user must be able to write there.",
             "[Service]", "ReadWritePaths=" + " ".join(sorted(set(paths)))]
    if homes:
        # ProtectHome=yes hides /home and /root entirely; a tmpfs over them plus a bind
        # of just these folders keeps the rest of the home directories out of reach.
        lines += ["ProtectHome=tmpfs", "BindPaths=" + " ".join(sorted(set(homes)))]
    return "\n".join(lines) + "\n"


class InstallError(VoiceDaemonError):
    """install-service cannot put the files in place (the command line prints it, exit 1)."""

    exit_code = 1


def install_service(settings, args) -> int:
    """`voice-daemon install-service`: copy the unit and the env file into place.

    args: ``dry_run`` (print only), ``unit_dir`` (default /etc/systemd/system),
    ``env_dir`` (default /etc/voice-daemon), ``exec_path`` (default: this
    installation's console script).  Does not run systemctl; prints the commands.
    Raises InstallError when it cannot.
    """
    dry = bool(getattr(args, "dry_run", False))
    unit_dir = Path(getattr(args, "unit_dir", None) or SYSTEM_UNIT_DIR)
    env_dir = Path(getattr(args, "env_dir", None) or SYSTEM_ENV_DIR)
    exec_path = getattr(args, "exec_path", None)
    if exec_path is None:
        exec_path = str(Path(sys.prefix) / "bin" / "voice-daemon")
        # The venv's python is often a symlink to an interpreter elsewhere (pyenv puts it in ~).
        for what, path in (("the console script", exec_path),
                           ("the Python interpreter", os.path.realpath(sys.executable))):
            hidden = _hidden_by_protect_home(path)
            if hidden:
                raise InstallError(f"{what} {path} lies under {hidden}, which the service cannot see "
                                   "(ProtectHome=yes).  Install with a system Python into /opt/voice-daemon "
                                   "(see README) or pass --exec-path.")
    if not Path(exec_path).is_file():
        raise InstallError(f"{exec_path} does not exist: install the package first (make venv)")
    if not UNIT_SOURCE.is_file() or not ENV_SOURCE.is_file():
        raise InstallError(f"{UNIT_SOURCE} or {ENV_SOURCE} not found: run this from a source checkout")

    name, command = (WORKER_UNIT_NAME, "worker") if getattr(args, "worker", False) else (UNIT_NAME, "run")
    unit = render_unit((UNIT_SOURCE.parent / name).read_text(), f"{exec_path} {command}")
    dropin = folders_dropin(settings)
    actions = [(unit_dir / name, unit, True)]
    if dropin:
        actions.append((unit_dir / (name + ".d") / "folders.conf", dropin, True))
    actions.append((env_dir / ENV_NAME, ENV_SOURCE.read_text(), False))

    verb = "would write" if dry else "wrote"
    try:
        for path, text, replace in actions:
            if path.exists() and not replace:
                print(f"kept     {path} (exists; compare with {ENV_SOURCE} for new variables)")
                continue
            if path.exists() and path.read_text() == text:
                print(f"same     {path}")
                continue
            if not dry:
                _write(path, text, mode=0o644)
            print(f"{verb:<8} {path}")
            if dry and path.suffix == ".conf":
                print("  " + text.replace("\n", "\n  ").rstrip())
    except OSError as exc:
        hint = " (run as root: sudo)" if isinstance(exc, PermissionError) else ""
        raise InstallError(f"cannot write {exc.filename}: {exc.strerror}{hint}") from exc
    service = name.removesuffix(".service")
    print(f"ExecStart={exec_path} {command}")
    print(f"next:     systemctl daemon-reload && systemctl enable --now {service}")
    print(f"logs:     journalctl -u {service} -f   (JSON: journalctl -u {service} -o json)")
    return 0


def _hidden_by_protect_home(path: str) -> str | None:
    for top in ("/home", "/root", "/run/user"):
        if path == top or path.startswith(top + "/"):
            return top
    return None


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    durable.write_text(path, text, tmp=path.with_name(f".{path.name}.tmp"), mode=mode)
