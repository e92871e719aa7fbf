"""A real headless Chromium (Debian's ``chromium``) driven over the DevTools protocol on a pipe.

``--remote-debugging-pipe`` makes Chromium read commands on fd 3 and write replies on fd 4,
JSON messages ended by a NUL byte: no port, no websocket library, no driver binary.  One
browser with one page stays open, so the page's own JavaScript keeps refreshing it while
the test reads the DOM with ``Runtime.evaluate`` and takes a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--mute-audio"]


def _high(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def chromium_path() -> str | None:
    # Debian's /usr/bin/chromium is a shell launcher; the binary behind it keeps fds 3 and 4 open.
    real = Path("/usr/lib/chromium/chromium")
    return str(real) if real.is_file() else shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(self, profile: Path, *, width: int = 412, height: int = 915):
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed: `make test` installs it (apt-get install chromium)")
        profile.mkdir(parents=True, exist_ok=True)  # a new, empty profile for each browser
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Numbers above 9 for the child's ends, so that moving them to 3 and 4 never clobbers one.
        to_chrome_r, from_chrome_w = (_high(fd) for fd in (to_chrome_r, from_chrome_w))
        args = " ".join([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                         "--remote-debugging-pipe", "about:blank"])
        # bash (dash takes one-digit fds only) puts our pipe ends on fds 3 and 4, where Chromium wants them.
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f"exec {args} 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-"],
            pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(profile / "chromium.log", "wb"), start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id, self._buffer = 0, b""
        self.session: str | None = None
        self.width, self.height = width, height

    # --- the protocol ---------------------------------------------------------------
    def call(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float = 60.0) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise TimeoutError(f"no reply from chromium (exit status {self.proc.poll()})")
            ready, _, _ = select.select([self._from_chrome], [], [], min(left, 1.0))
            if ready:
                data = os.read(self._from_chrome, 1 << 20)
                if not data:
                    raise EOFError("chromium closed its end of the pipe")
                self._buffer += data
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    # --- a page -----------------------------------------------------------------------
    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.page("Page.enable")
        self.page("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": True})
        self.page("Page.navigate", {"url": url})

    def page(self, method: str, params: dict | None = None) -> dict:
        return self.call(method, params, session=self.session)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-able)."""
        res = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError, EOFError):
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its zygote and renderers, whatever is left
        except ProcessLookupError:
            pass
        self.proc.wait(15)
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
