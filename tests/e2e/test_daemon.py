"""`voice-daemon run` as a real process on temporary folders, with the `shift` engine and
real recordings.  Every test ends by checking that each input came out exactly once, in
the outbox or in the failed folder, and that nothing half-written is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import live_in_group, media, wait_until

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180  # two workers loading models on a busy 2-core machine


class Daemon:
    """One `voice-daemon run` process in its own session (so a kill reaches only what we mean)."""

    def __init__(self, root: Path, **env):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.inbox, self.outbox = root / "inbox", root / "outbox"
        self.failed, self.state = root / "failed", root / "state"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
        self.env.update({
            "VOICE_DAEMON_INBOX": str(self.inbox), "VOICE_DAEMON_OUTBOX": str(self.outbox),
            "VOICE_DAEMON_FAILED_DIR": str(self.failed), "VOICE_DAEMON_STATE_DIR": str(self.state),
            "VOICE_DAEMON_ENGINE": "shift", "VOICE_DAEMON_WORKERS": "2", "VOICE_DAEMON_SAMPLE_RATE": "16000",
            "VOICE_DAEMON_SETTLE_SECONDS": "0.3", "VOICE_DAEMON_RESCAN_SECONDS": "5",
            "VOICE_DAEMON_RETRY_BACKOFF_SECONDS": "0.2", "VOICE_DAEMON_LOG_FORMAT": "json",
        })
        self.env.update({f"VOICE_DAEMON_{k.upper()}": str(v) for k, v in env.items()})
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.root / f"daemon-{self.runs}.log"

    def start(self, wait: bool = True) -> "Daemon":
        self.runs += 1
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            wait_until(lambda: self.has("daemon.ready") or self.proc.poll() is not None, START_TIMEOUT)
            assert self.proc.poll() is None, self.text()
        return self

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict]:
        out = []
        for line in self.text().splitlines():
            if not line.startswith("{"):
                continue  # a decoder library's own warning
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if name is None or ev.get("event") == name:
                out.append(ev)
        return out

    def has(self, name: str) -> bool:
        return f'"event": "{name}"' in self.text()

    def stop(self, sig=signal.SIGTERM, timeout: float = 120) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill9(self) -> None:
        pgid = self.proc.pid
        self.proc.kill()
        self.proc.wait(30)
        self._log.close()
        # The workers notice their parent is gone and leave by themselves.
        try:
            wait_until(lambda: not _group_alive(pgid), 30, message="workers outlived a killed daemon")
        finally:
            if _group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        if self.proc is not None and _group_alive(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
            wait_until(lambda: not _group_alive(self.proc.pid), 30)

    # --- outcomes ---------------------------------------------------------------
    def outputs(self) -> list[str]:
        return _visible(self.outbox)

    def quarantined(self) -> list[str]:
        return [p for p in _visible(self.failed) if not p.endswith(".error.json")]

    def settled(self, n: int) -> bool:
        return len(self.outputs()) + len(self.quarantined()) >= n

    def error(self, rel: str) -> dict:
        return json.loads((self.failed / (rel + ".error.json")).read_text())

    def assert_exactly_once(self, converted: list[str], failed: list[str]) -> None:
        """Each input once, in the outbox (same name, `same` format) or the failed folder."""
        assert sorted(self.outputs()) == sorted(converted)
        assert sorted(self.quarantined()) == sorted(failed)
        for rel in failed:
            assert (self.failed / (rel + ".error.json")).is_file(), rel
        assert _hidden(self.outbox) == [], "temporary outputs left behind"
        assert list((self.state / "work").iterdir()) == [], "jobs left in the spool"


def _visible(root: Path) -> list[str]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if not p.is_dir() and not any(part.startswith(".") for part in rel.split("/")):
            out.append(rel)
    return sorted(out)


def _hidden(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(".*"))


def _group_alive(pgid: int) -> bool:
    return bool(live_in_group(pgid))


@pytest.fixture
def daemon_factory(tmp_path):
    made: list[Daemon] = []

    def make(**env) -> Daemon:
        d = Daemon(tmp_path / f"d{len(made)}", **env)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def cut(speech_dir: Path, dst: Path, src: str, start_s: float, seconds: float) -> Path:
    """A piece of a real recording, written as WAV."""
    info = sf.info(speech_dir / src)
    data, rate = sf.read(speech_dir / src, start=int(start_s * info.samplerate),
                         frames=int(seconds * info.samplerate), dtype="float32")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, data, rate)
    return dst


# --- intake ---------------------------------------------------------------------------
def test_cp_mv_slow_writer_subfolders_and_odd_names(daemon_factory, speech_dir, tmp_path):
    d = daemon_factory()
    d.start()
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    # cp, mv from a folder the daemon does not watch, rsync-style rename
    subprocess.run(["cp", str(speech_dir / "fw_jfk.flac"), str(d.inbox / "copied.flac")], check=True)
    subprocess.run(["cp", str(speech_dir / "silero_vad_test.mp3"), str(sibling / "moved.mp3")], check=True)
    subprocess.run(["mv", str(sibling / "moved.mp3"), str(d.inbox / "moved.mp3")], check=True)
    subprocess.run(["cp", str(speech_dir / "fw_hotwords.mp3"), str(d.inbox / ".synced.mp3.x1Y2z3")], check=True)
    os.rename(d.inbox / ".synced.mp3.x1Y2z3", d.inbox / "synced.mp3")
    # a voice folder, mirrored subfolders, names with spaces, quotes, a newline and Cyrillic
    odd = ["baya/voice folder.wav", "a/b/deep.wav", "it's \"quoted\".wav", "line\nbreak.wav", "речь запись.wav"]
    for i, rel in enumerate(odd):
        cut(speech_dir, sibling / f"odd{i}.wav", "silero_vad_ru.wav", 2 * i, 1.5)
        (d.inbox / rel).parent.mkdir(parents=True, exist_ok=True)
        os.rename(sibling / f"odd{i}.wav", d.inbox / rel)
    # a slow writer: 60 s of speech trickling in over about 3 s, each pause shorter than the settle time
    data = (speech_dir / "silero_vad_en.wav").read_bytes()
    piece = len(data) // 30
    with open(d.inbox / "slow.wav", "wb") as f:
        for i in range(0, len(data), piece):
            f.write(data[i:i + piece])
            f.flush()
            time.sleep(0.1)  # the writer's pace, not a wait on a condition
            assert not [e for e in d.events("job.queued") if e["input"] == "slow.wav"], "taken before the copy ended"
    expected = ["copied.flac", "moved.mp3", "synced.mp3", "slow.wav", *odd]
    wait_until(lambda: d.settled(len(expected)), 180, message=f"outcomes {d.outputs()} {d.quarantined()}")
    # The slow copy was converted whole, not from a prefix.
    assert abs(media.duration(d.outbox / "slow.wav") - 60.0) < 0.1
    assert abs(media.duration(d.outbox / "copied.flac") - 11.0) < 0.1
    done = {e["input"]: e for e in d.events("job.done")}
    assert done["baya/voice folder.wav"]["voice"] == "baya"
    for ev in done.values():
        for field in ("job_id", "output", "engine", "voice", "audio_seconds", "wall_seconds", "rtf",
                      "attempts", "worker_pids"):
            assert field in ev, (field, ev)
    # `voice-daemon status` sees the running daemon and the counts
    st = subprocess.run([sys.executable, "-m", "daemon", "status", "--json"], cwd=ROOT, env=d.env,
                        capture_output=True, text=True, timeout=60)
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert status["running_pid"] == d.proc.pid and status["done"] == len(expected) and status["failed"] == 0
    # a second daemon on the same state folder is refused
    again = subprocess.run([sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=d.env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "another voice-daemon" in again.stderr
    assert d.stop() == 0
    d.assert_exactly_once(expected, [])
    assert list((d.inbox).rglob("*.wav")) == []


def test_bad_inputs_get_clear_outcomes_and_the_daemon_stays_up(daemon_factory, speech_dir, tmp_path):
    d = daemon_factory(max_input_bytes=2_500_000)
    d.start()
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "empty.wav").write_bytes(b"")
    (staging / "fake.mp3").write_bytes(np.random.default_rng(1).bytes(40_000))
    (staging / "text.wav").write_text("this is a letter, not a recording\n")
    whole = media.transcode(speech_dir / "silero_vad_en.wav", staging / "whole.mp3", "-c:a", "libmp3lame")
    (staging / "truncated.mp3").write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    whole.unlink()
    media.silence(staging / "silence.wav", 3.0)
    media.concat(speech_dir / "silero_vad_en.wav", staging / "enormous.wav", 2)  # 3.8 MB > the limit
    outside = tmp_path / "outside.wav"
    cut(speech_dir, outside, "silero_vad_ru.wav", 0, 1.0)
    for p in sorted(staging.iterdir()):
        os.rename(p, d.inbox / p.name)
    cut(speech_dir, d.inbox / "real.wav", "silero_vad_ru.wav", 5, 1.0)
    (d.inbox / "link-outside.wav").symlink_to(outside)
    (d.inbox / "link-inside.wav").symlink_to(d.inbox / "real.wav")
    (d.inbox / "folder.wav").mkdir()
    cut(speech_dir, d.inbox / "folder.wav" / "inside.wav", "silero_vad_ru.wav", 8, 1.0)
    for name in ("lone.txt", "notes.pdf", "x.wav.part", ".hidden.wav"):
        (d.inbox / name).write_text("ignored")
    failed = ["empty.wav", "fake.mp3", "text.wav", "enormous.wav", "link-outside.wav", "link-inside.wav"]
    maybe = ["truncated.mp3", "silence.wav"]  # the decoder decides: converted, or failed with a cause
    converted = ["real.wav", "folder.wav/inside.wav"]
    total = len(failed) + len(maybe) + len(converted)
    wait_until(lambda: d.settled(total), 180, message=f"outcomes {d.outputs()} {d.quarantined()}")
    assert d.proc.poll() is None
    assert "VOICE_DAEMON_MAX_INPUT_BYTES" in d.error("enormous.wav")["cause"]
    assert "symbolic link" in d.error("link-outside.wav")["cause"]
    assert (d.failed / "link-outside.wav").is_symlink() and outside.stat().st_size > 0
    assert "empty" in d.error("empty.wav")["cause"]
    for rel in ("fake.mp3", "text.wav"):
        err = d.error(rel)
        assert err["cause"] and err["stage"] and err["daemon_version"] and err["attempts"] >= 0
    # still up: a good file dropped now is converted
    cut(speech_dir, d.inbox / "after.wav", "silero_vad_ru.wav", 12, 1.0)
    wait_until(lambda: "after.wav" in d.outputs(), 120)
    assert d.stop() == 0
    ok = [m for m in maybe if m in d.outputs()]
    bad = [m for m in maybe if m not in ok]
    d.assert_exactly_once(converted + ok + ["after.wav"], failed + bad)
    # ignored names stay where they are; the folder named like audio stays, emptied
    assert sorted(p.name for p in d.inbox.iterdir()) == [".hidden.wav", "folder.wav", "lone.txt", "notes.pdf",
                                                         "x.wav.part"]


def test_systemd_notify_and_metrics(daemon_factory, speech_dir, tmp_path):
    """A notify socket as systemd offers it, and the Prometheus endpoint, around a real job."""
    import socket
    import urllib.request

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.05)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    d = daemon_factory(metrics_addr=f"127.0.0.1:{port}")
    d.env.update({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"})
    messages: list[str] = []

    def received(text: str) -> bool:
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                break
        return any(text in m for m in messages)

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        d.start()
        wait_until(lambda: received("READY=1"), 30)
        assert get("/healthz")[0] == 200
        cut(speech_dir, d.inbox / "one.wav", "silero_vad_ru.wav", 0, 2.0)
        wait_until(lambda: d.outputs() == ["one.wav"], 120)
        wait_until(lambda: received("1 done"), 30)  # STATUS=… 1 done, 0 failed…
        beats = sum(m.count("WATCHDOG=1") for m in messages)
        wait_until(lambda: received("") and sum(m.count("WATCHDOG=1") for m in messages) > beats, 30)
        code, body = get("/metrics")
        assert code == 200 and 'voice_daemon_jobs_total{outcome="done"} 1.0' in body
        assert d.stop() == 0
        received("")
        assert any("STOPPING=1" in m for m in messages)
    finally:
        sock.close()
    d.assert_exactly_once(["one.wav"], [])


def test_overlapping_folders_are_refused(daemon_factory):
    d = daemon_factory()
    d.env["VOICE_DAEMON_OUTBOX"] = str(d.inbox / "out")
    proc = subprocess.run([sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=d.env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert proc.stderr.strip().count("\n") == 0 and "must not overlap" in proc.stderr


@pytest.mark.slow
def test_a_burst_of_200_files(daemon_factory, speech_dir, tmp_path):
    d = daemon_factory()
    audio, rate = sf.read(speech_dir / "silero_vad_en.wav", dtype="float32")
    staging = tmp_path / "burst"
    staging.mkdir()
    piece = int(0.25 * rate)
    names = []
    for i in range(200):
        name = f"burst-{i:03d}.wav"
        sf.write(staging / name, audio[i * piece:(i + 1) * piece], rate)
        names.append(name)
    d.start()
    for name in names:  # all at once
        os.rename(staging / name, d.inbox / name)
    wait_until(lambda: d.settled(200), 400, interval=0.5, message=f"{len(d.outputs())} done")
    assert d.stop() == 0
    d.assert_exactly_once(names, [])
    assert len(d.events("job.done")) == 200


# --- crashes and shutdown ---------------------------------------------------------------
def _long_inputs(speech_dir: Path, inbox: Path, n: int) -> list[str]:
    names = []
    srcs = ["silero_vad_en.wav", "silero_vad_ru.wav", "silero_vad_de.wav", "silero_vad_es.wav"]
    for i in range(n):
        name = f"long-{i:02d}.wav"
        cut(speech_dir, inbox.parent / "staging" / name, srcs[i % 4], 0, 60.0)
        names.append(name)
    for name in names:
        os.rename(inbox.parent / "staging" / name, inbox / name)
    return names


@pytest.mark.slow
def test_kill_9_mid_run_then_restart(daemon_factory, speech_dir):
    d = daemon_factory(sample_rate=48000)  # slower jobs: more of them caught in flight
    d.start()
    names = _long_inputs(speech_dir, d.inbox, 8)
    cut(speech_dir, d.inbox / "short.wav", "silero_vad_ru.wav", 0, 2.0)
    names.append("short.wav")
    wait_until(lambda: len(d.events("job.started")) >= 3 and d.events("job.done"), 180)
    d.kill9()
    assert len(d.outputs()) < len(names), "everything finished before the kill: the test proved nothing"
    d.start()
    assert d.events("job.queued") and all(e.get("resumed") for e in d.events("job.queued")[:1])
    wait_until(lambda: d.settled(len(names)), 300, interval=0.5, message=f"{d.outputs()} {d.quarantined()}")
    assert d.stop() == 0
    d.assert_exactly_once(names, [])
    for name in names:
        expected = 2.0 if name == "short.wav" else 60.0
        assert abs(media.duration(d.outbox / name) - expected) < 0.1, name


@pytest.mark.slow
def test_sigterm_lets_running_jobs_finish_and_keeps_the_rest(daemon_factory, speech_dir):
    d = daemon_factory(sample_rate=48000, shutdown_grace_seconds=120)
    d.start()
    names = _long_inputs(speech_dir, d.inbox, 10)
    wait_until(lambda: len(d.events("job.started")) >= 2, 120)
    assert d.stop(signal.SIGTERM) == 0
    started = {e["job_id"] for e in d.events("job.started")}
    finished = {e["job_id"] for e in d.events("job.done")}
    assert started and started <= finished, "a running job was not allowed to finish"
    assert len(d.outputs()) < len(names), "nothing was left for the restart: the test proved nothing"
    assert _hidden(d.outbox) == []
    d.start()
    wait_until(lambda: d.settled(len(names)), 300, interval=0.5)
    assert d.stop() == 0
    d.assert_exactly_once(names, [])


@pytest.mark.slow
def test_a_second_sigint_stops_at_once_and_loses_nothing(daemon_factory, speech_dir):
    d = daemon_factory(sample_rate=48000, shutdown_grace_seconds=600)
    d.start()
    names = _long_inputs(speech_dir, d.inbox, 6)
    wait_until(lambda: len(d.events("job.started")) >= 2, 120)
    d.proc.send_signal(signal.SIGINT)
    wait_until(lambda: d.has("daemon.stopping"), 30)
    t0 = time.monotonic()
    assert d.stop(signal.SIGINT, timeout=60) == 0
    assert time.monotonic() - t0 < 60
    assert d.has("job.put_back")
    assert _hidden(d.outbox) == []
    d.start()
    wait_until(lambda: d.settled(len(names)), 300, interval=0.5)
    assert d.stop() == 0
    d.assert_exactly_once(names, [])


def test_resynth_daemon_converts_audio_and_reads_a_lone_text(daemon_factory, speech_dir, tmp_path):
    """The resynth engine in the service, on the real offline models (tiny.en + Piper joe)."""
    d = daemon_factory(engine="resynth", tts="piper", language="en", sample_rate="22050", workers="1")
    d.start()
    staging = tmp_path / "staging"
    staging.mkdir()
    shutil.copyfile(speech_dir / "fw_jfk.flac", staging / "jfk.flac")
    (staging / "notes.txt").write_text("Ask not what your country can do for you.", encoding="utf-8")
    for name in ("jfk.flac", "notes.txt"):
        os.rename(staging / name, d.inbox / name)
    wait_until(lambda: d.settled(4), 240, message=f"outcomes {d.outputs()} {d.quarantined()}")  # 2 outputs + 2 sidecars
    assert d.stop() == 0
    assert sorted(d.outputs()) == ["jfk.flac", "jfk.json", "notes.json", "notes.wav"], d.outputs()
    assert abs(media.duration(d.outbox / "jfk.flac") - 11.0) < 0.02
    spoken = json.loads((d.outbox / "notes.json").read_text())
    assert [p["text"] for p in spoken["phrases"]] == ["Ask not what your country can do for you."]
    # The sidecars name the published files, not the temp names the workers wrote them under.
    assert spoken["output"] == "notes.wav"
    assert json.loads((d.outbox / "jfk.json").read_text())["output"] == "jfk.flac"
    assert d.quarantined() == []
