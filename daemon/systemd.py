"""systemd integration: the sd_notify protocol (installing the unit: ``daemon.deploy.install``).

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
import socket
import threading
import time

from daemon import log


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
