"""Job hooks: a command and/or a webhook told about every finished job, off the supervisor's loop.

    VOICE_DAEMON_ON_DONE      run by /bin/sh after a file is converted
    VOICE_DAEMON_ON_FAILED    run by /bin/sh after a file lands in the failed folder
    VOICE_DAEMON_WEBHOOK_URL  receives the same JSON as a POST (done and failed)

The job's JSON (``payload``) goes to the command's standard input and is the webhook's
body.  ``Hooks`` is a job observer (``daemon/supervisor/report.py``): ``job_event`` only
puts the call on a queue, and a few daemon threads make the calls, each bounded by
VOICE_DAEMON_HOOK_TIMEOUT_SECONDS (a command still running then is killed with its whole
process group).  A hook that fails, hangs or cannot start is logged (``hook.failed``) and
never holds up, retries or fails a job; when too many calls wait (a dead webhook under
a burst of files), new ones are dropped and logged (``hook.dropped``).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Callable

from daemon import __version__, log

#: calls waiting beyond this are dropped (and logged), so memory stays bounded
MAX_PENDING = 1000
THREADS = 2
#: how much of a failing command's output the log line keeps
OUTPUT_TAIL = 400


def payload(kind: str, info: dict) -> dict:
    """What a hook receives: the job's outcome, its files, voice, durations and reason."""
    keys = ("job_id", "input", "output", "sidecar", "failed", "error_report", "engine", "voice",
            "semitones", "formant", "audio_seconds", "wall_seconds", "rtf", "chunks", "attempts",
            "stage", "reason")
    body = {"event": kind, **{k: info.get(k) for k in keys if k in info or k in ("output", "reason")}}
    body["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body["daemon_version"] = __version__
    return body


class Hooks:
    def __init__(self, *, on_done: str = "", on_failed: str = "", webhook_url: str = "",
                 timeout: float = 30.0, threads: int = THREADS, max_pending: int = MAX_PENDING):
        self.commands = {"done": on_done.strip(), "failed": on_failed.strip()}
        self.url, self.timeout = webhook_url.strip(), timeout
        self.log = log.get("hooks")
        self._queue: queue.Queue[tuple[Callable, tuple] | None] = queue.Queue(max_pending)
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._abandon = False  # past the close's grace: waiting calls are not started any more
        self._threads = [threading.Thread(target=self._work, name=f"hook-{i}", daemon=True)
                         for i in range(max(1, threads))]

    @classmethod
    def from_settings(cls, settings) -> "Hooks | None":
        """The configured hooks, started; None when none is configured."""
        if not (settings.on_done or settings.on_failed or settings.webhook_url):
            return None
        return cls(on_done=settings.on_done, on_failed=settings.on_failed, webhook_url=settings.webhook_url,
                   timeout=settings.hook_timeout_seconds).start()

    def start(self) -> "Hooks":
        for t in self._threads:
            t.start()
        return self

    # --- the observer: called on the supervisor's loop, returns at once ----------------
    def job_event(self, kind: str, info: dict) -> None:
        if kind not in ("done", "failed") or self._closed:
            return
        body = payload(kind, info)
        if self.commands[kind]:
            self._put(self._run_command, (self.commands[kind], body))
        if self.url:
            self._put(self._post, (self.url, body))

    def _put(self, call: Callable, args: tuple) -> None:
        try:
            self._queue.put_nowait((call, args))
        except queue.Full:
            self.log.error("hook.dropped", job_id=args[1].get("job_id"), event=args[1]["event"],
                           reason=f"{self._queue.maxsize} hook calls already waiting")

    # --- the calls, on the hook threads ---------------------------------------------------
    def _work(self) -> None:
        while (item := self._queue.get()) is not None and not self._abandon:
            call, args = item
            try:
                call(*args)
            except Exception as exc:  # a hook must never take its thread down
                self.log.error("hook.failed", hook=call.__name__.strip("_"), job_id=args[1].get("job_id"),
                               error=f"{type(exc).__name__}: {exc}")

    def _run_command(self, command: str, body: dict) -> None:
        fields = {"hook": f"on_{body['event']}", "job_id": body.get("job_id"), "command": command}
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, process_group=0)  # killed as one group
        except OSError as exc:
            self.log.error("hook.failed", **fields, error=f"cannot start: {exc.strerror or exc}")
            return
        with self._lock:
            self._running[proc.pid] = proc
        try:
            out, _ = proc.communicate(json.dumps(body, ensure_ascii=False).encode() + b"\n", timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            self.log.error("hook.failed", **fields, error=f"still running after {self.timeout:g} s: killed",
                           output=_tail(out))
            return
        finally:
            with self._lock:
                self._running.pop(proc.pid, None)
        seconds = round(time.monotonic() - t0, 3)
        if proc.returncode != 0:
            why = (f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                   else f"exit status {proc.returncode}")
            self.log.error("hook.failed", **fields, error=why, seconds=seconds, output=_tail(out))
        else:
            self.log.info("hook.done", **fields, seconds=seconds)

    def _post(self, url: str, body: dict) -> None:
        fields = {"hook": "webhook", "job_id": body.get("job_id"), "url": url}
        req = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": f"voice-daemon/{__version__}"})
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (a configured URL)
                resp.read(1 << 16)
                status = resp.status
        except urllib.error.HTTPError as exc:
            self.log.error("hook.failed", **fields, error=f"HTTP {exc.code} {exc.reason}")
            return
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, a bad URL
            reason = getattr(exc, "reason", None) or exc
            self.log.error("hook.failed", **fields, error=f"{type(exc).__name__}: {reason}")
            return
        self.log.info("hook.done", **fields, status=status, seconds=round(time.monotonic() - t0, 3))

    # --- shutdown ---------------------------------------------------------------------------
    def close(self, grace: float | None = None) -> None:
        """Let the waiting calls run for ``grace`` seconds (default: the hook timeout), then kill
        the commands still running; the threads are daemon threads and end with the process."""
        self._closed = True
        deadline = time.monotonic() + (self.timeout if grace is None else grace)
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                break
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._abandon = True
        with self._lock:
            left = list(self._running.values())
        for proc in left:
            _kill_group(proc)
        for t in self._threads:
            t.join(5)


def _kill_group(proc: subprocess.Popen) -> None:
    """The shell and whatever it started (a pipeline, a sleeping child)."""
    if proc.returncode is not None:
        return  # reaped already: its number may belong to someone else by now
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(out: bytes | None) -> str:
    text = (out or b"").decode("utf-8", "replace").strip()
    return text[-OUTPUT_TAIL:]
