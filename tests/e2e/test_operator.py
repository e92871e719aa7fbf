"""What an operator sees of a real `voice-daemon run`: the status page in a real headless Chromium
while a long file converts, and the job hooks (a command that hangs, one that fails, a webhook
receiver on 127.0.0.1) around real jobs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import live_in_group, media, wait_until
from helpers.chromium import Chromium
from helpers.webhook import Receiver

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """`voice-daemon run` on folders under ``root``, in its own session."""

    def __init__(self, root: Path, **env):
        self.root, self.inbox, self.outbox, self.failed = root, root / "inbox", root / "outbox", root / "failed"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
        settings = {"inbox": self.inbox, "outbox": self.outbox, "failed_dir": self.failed,
                    "state_dir": root / "state", "engine": "shift", "workers": 2, "sample_rate": 16000,
                    "settle_seconds": 0.3, "log_format": "json", "retry_backoff_seconds": 0.2, **env}
        environ.update({f"VOICE_DAEMON_{k.upper()}": str(v) for k, v in settings.items()})
        root.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "daemon.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=environ,
                                     stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_until(lambda: '"event": "daemon.ready"' in self.text() or self.proc.poll() is not None, START_TIMEOUT)
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict]:
        return [json.loads(line) for line in self.text().splitlines()
                if line.startswith("{") and f'"event": "{name}"' in line]

    def drop(self, src: Path, name: str) -> Path:
        """Write under a hidden name, then rename in (as rsync does)."""
        tmp = self.inbox / f".{name}.part"
        shutil.copyfile(src, tmp)
        os.rename(tmp, self.inbox / name)
        return self.inbox / name

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(120)
        finally:
            wait_until(lambda: not live_in_group(self.proc.pid), 30, message="the daemon left processes behind")


@pytest.mark.slow
def test_the_status_page_shows_a_job_converting_then_done(tmp_path, speech_dir, tools):
    # Five minutes at 48 kHz in 5 s chunks on one worker: long enough to be seen converting.
    long = media.concat(speech_dir / "silero_vad_en.wav", tmp_path / "long.wav", 5)
    port = free_port()
    daemon = Daemon(tmp_path / "d", workers=1, chunk_seconds=5, sample_rate=48000, metrics_addr=f"127.0.0.1:{port}")
    # Kept beside the checkout: pytest's own tmp folders are pruned by the next runs.
    shots = ROOT / "test-artifacts" / "status-page"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with Chromium(tmp_path / "chromium-profile") as browser:
            browser.open(f"http://127.0.0.1:{port}/?refresh=250")
            wait_until(lambda: browser.evaluate("document.body && document.body.dataset.loaded") == "1", 60,
                       message="the page's script never loaded /api/status")
            assert "running · pid" in browser.evaluate("document.getElementById('state').textContent")
            daemon.drop(long, "long.wav")
            rows = ("JSON.stringify([...document.querySelectorAll('#converting li[data-state=converting]')]"
                    ".map(li => [li.querySelector('.name').textContent, li.dataset.chunksDone, li.dataset.chunksTotal]))")
            seen = wait_until(lambda: [r for r in json.loads(browser.evaluate(rows))
                                       if r[0] == "long.wav" and r[2] and int(r[1]) > 0],
                              120, interval=0.1, message="the page never showed long.wav converting")
            (_name, chunks_done, chunks_total), = seen
            assert int(chunks_total) >= 50 and 0 < int(chunks_done) < int(chunks_total)
            assert re.search(rf"converting · chunks \d+ of {chunks_total} · ",
                             browser.evaluate("document.getElementById('converting').innerText"))
            print(f"\nscreenshot (converting): {browser.screenshot(shots / 'converting.png')}")
            done = ("JSON.stringify([...document.querySelectorAll('#done li[data-state=done] .name')]"
                    ".map(e => e.textContent))")
            wait_until(lambda: "long.wav" in json.loads(browser.evaluate(done)), 300, interval=0.25,
                       message="the page never showed long.wav done")
            text = browser.evaluate("document.body.innerText")
            assert "nothing converting" in text and "→ long.wav" in text
            print(f"screenshot (done): {browser.screenshot(shots / 'done.png')}")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()
    assert (daemon.outbox / "long.wav").is_file()
    assert all((shots / n).stat().st_size > 1000 for n in ("converting.png", "done.png"))


@pytest.mark.slow
def test_hooks_that_hang_or_fail_never_hold_up_the_jobs(tmp_path, speech_dir, tools):
    receiver = Receiver()
    late = tmp_path / "hung-hook-finished"
    daemon = Daemon(tmp_path / "d", on_done=f"sleep 60; touch {late}", on_failed="echo out of paper >&2; exit 3",
                    webhook_url=receiver.url, hook_timeout_seconds=2)
    try:
        daemon.drop(speech_dir / "fw_jfk.flac", "one.flac")
        daemon.drop(speech_dir / "silero_vad_ru_num.wav", "two.wav")
        (daemon.inbox / "junk.wav").write_bytes(b"this is no audio at all")
        # Both converted files come out while the first one's hook still hangs (2 s each, one at a time).
        wait_until(lambda: (daemon.outbox / "one.flac").is_file() and (daemon.outbox / "two.wav").is_file()
                   and (daemon.failed / "junk.wav").is_file(), 120, message=daemon.text())
        wait_until(lambda: len(receiver.bodies) == 3 and len(daemon.events("hook.failed")) == 3, 60,
                   message=daemon.text())
    finally:
        code = daemon.stop()
        receiver.close()
    assert code == 0
    by_input = {b["input"]: b for b in receiver.bodies}
    one, junk = by_input["one.flac"], by_input["junk.wav"]
    assert one["event"] == "done" and one["output"] == str(daemon.outbox / "one.flac")
    assert one["audio_seconds"] == pytest.approx(11.0, abs=0.1) and one["wall_seconds"] > 0
    assert one["engine"] == "shift" and one["voice"] is None and one["reason"] is None
    assert junk["event"] == "failed" and junk["failed"] == str(daemon.failed / "junk.wav")
    assert "not" in junk["reason"] and junk["output"] is None
    failures = {e["hook"]: e for e in daemon.events("hook.failed")}
    assert "still running after 2 s: killed" in failures["on_done"]["error"]
    assert failures["on_failed"]["error"] == "exit status 3" and "out of paper" in failures["on_failed"]["output"]
    assert not daemon.events("job.retry"), "a hook's failure is not the job's"
    assert not late.exists(), "the hung hook was killed with its children"
    assert not _running_with(str(late)), "no hook outlived the daemon"


def _running_with(text: str) -> list[int]:
    """PIDs of live processes whose command line mentions ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmd and state != "Z":
            found.append(int(entry))
    return found


@pytest.mark.slow
def test_the_pickup_latency_script_prints_its_figure(tools):
    """tools/pickup_latency.py runs (its figure is read by people, not asserted: the machine's load moves it)."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "pickup_latency.py"), "--rounds", "1",
                           "--seconds", "3"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"fast pick-up: drop-to-output median \d+\.\d{3} s .* for a 3 s file, 1 rounds", proc.stdout)
