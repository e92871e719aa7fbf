"""Issue 11's faults, each reproduced on a real `voice-daemon run` with real recordings: SIGKILL by
pid, a real small tmpfs filled to the last byte, names Linux allows and Python finds awkward,
damaged spool files, SIGHUP.  Each test ends, as in test_daemon.py, by checking that every input
came out exactly once, in the outbox or the failed folder, with nothing half-written left."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf
import test_daemon as td

from helpers import alive, media, wait_until
from helpers.disks import fill, tmpfs

ROOT = td.ROOT


@pytest.fixture
def daemons(tmp_path):
    made: list[td.Daemon] = []

    def make(**env) -> td.Daemon:
        d = td.Daemon(tmp_path / f"d{len(made)}", **env)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class NotifySocket:
    """A datagram socket where systemd's NOTIFY_SOCKET would be, read at once by a thread as
    systemd does (the queue holds only 10 datagrams: a sender would block)."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.seen.append(self.sock.recv(65536).decode())
            except (TimeoutError, OSError):
                continue

    def messages(self) -> list[str]:
        return list(self.seen)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def new_pids(d: td.Daemon, reason: str) -> list[int]:
    return [e["worker_pid"] for e in d.events("pool.worker_started") if e["reason"] == reason]


def test_a_killed_replacement_odd_names_a_blocked_path_and_a_damaged_manifest(daemons, speech_dir, tmp_path):
    """Faults 1, 4, 5, 6 and 8 on one daemon."""
    d = daemons(workers=1)
    # Fault 8: a job.json that is JSON but not a job, left from an earlier run, with its audio.
    damaged = d.state / "work" / "20250101T000000-0badc0de"
    td.cut(speech_dir, damaged / "src" / "damaged.wav", "silero_vad_ru.wav", 0, 1.0)
    (damaged / "job.json").write_text("[]")
    d.outbox.mkdir(parents=True)
    (d.outbox / "z.wav").write_bytes(b"an earlier output")  # fault 6: blocks outbox/z.wav/
    d.start()
    assert "its job manifest (job.json) is unusable: it holds a JSON list" in d.error("damaged.wav")["cause"]

    # Fault 1: SIGKILL the warm worker, then its replacement while it loads its models.
    (warm,) = [e["worker_pid"] for e in d.events("pool.worker_ready")]
    os.kill(warm, signal.SIGKILL)
    (loading,) = wait_until(lambda: new_pids(d, "replace"), 30)
    os.kill(loading, signal.SIGKILL)
    (again,) = wait_until(lambda: new_pids(d, "restart"), 30)
    wait_until(lambda: again in [e["worker_pid"] for e in d.events("pool.worker_ready")], td.START_TIMEOUT)
    assert d.proc.poll() is None
    (failed_start,) = d.events("pool.worker_start_failed")
    assert failed_start["level"] == "warning" and "SIGKILL" in failed_start["cause"]

    staging = tmp_path / "staging"
    odd = os.fsdecode(b"caf\xe9 \xff-latin1.wav")  # fault 4: bytes that are not UTF-8
    long = "L" * 246 + ".wav"  # fault 5: 250 bytes; a second one needs "L… (1).wav"
    for name, start in ((odd, 0), (long, 2), ("z.wav/inner.wav", 4)):
        td.cut(speech_dir, staging / f"{start}.wav", "silero_vad_ru.wav", start, 1.5)
        (d.inbox / name).parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / f"{start}.wav", d.inbox / name)
    wait_until(lambda: d.settled(5), 120, message=f"outcomes {d.outputs()} {d.quarantined()}")
    td.cut(speech_dir, d.inbox.parent / "again.wav", "silero_vad_ru.wav", 6, 1.5)
    os.rename(d.inbox.parent / "again.wav", d.inbox / long)
    wait_until(lambda: d.settled(6), 120, message=f"outcomes {d.outputs()} {d.quarantined()}")

    st = subprocess.run([sys.executable, "-m", "daemon", "status", "--json"], cwd=ROOT, env=d.env,
                        capture_output=True, timeout=60)
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout.decode("utf-8"))  # strict UTF-8
    assert status["failed"] == 2 and status["done"] == 3
    assert d.stop() == 0

    assert abs(sf.info(os.fsencode(d.outbox / odd)).duration - 1.5) < 0.02
    second = [p for p in d.outputs() if p.startswith("L") and p != long]
    assert len(second) == 1 and second[0].endswith(" (1).wav") and len(os.fsencode(second[0])) <= 255
    blocked = d.error("z.wav/inner.wav")
    assert blocked["attempts"] == 1 and f"{d.outbox / 'z.wav'} is a file" in blocked["cause"]
    assert not d.events("job.retry")
    d.assert_exactly_once(["z.wav", odd, long, second[0]], ["damaged.wav", "z.wav/inner.wav"])


def test_a_worker_killed_while_encoding_leaves_no_temp_file(daemons, speech_dir):
    """Fault 2: a worker SIGKILLed while the job's MP3 is being encoded.  The job's stream encodes
    its segments in the job's work folder (workers never write in the outbox): the tasks that
    died run again, the output is published whole, and nothing is left beside it."""
    d = daemons(sample_rate=48000, output_format="mp3")
    d.start()
    td.cut(speech_dir, d.inbox.parent / "long.wav", "silero_vad_en.wav", 0, 60.0)
    os.rename(d.inbox.parent / "long.wav", d.inbox / "long.wav")

    def encoding() -> list[Path]:  # an encoded segment (or one being written) in the job's folder
        return sorted(d.state.glob("work/*/tmp/enc-*.part*"))

    wait_until(encoding, 120, interval=0.005)
    pids = [e["worker_pid"] for e in d.events("pool.worker_ready")]
    for pid in pids:  # both: whichever runs an encode segment or a chunk now
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: d.outputs() == ["long.mp3"], 120)
    assert d.stop() == 0
    assert sorted(e["worker_pid"] for e in d.events("pool.worker_died")) == sorted(pids)
    (done,) = d.events("job.done")
    assert done["attempts"] == 1  # a worker's death is the pool's retry, not the job's
    assert abs(media.duration(d.outbox / "long.mp3") - 60.0) < 0.1
    d.assert_exactly_once(["long.mp3"], [])


@pytest.mark.slow
def test_five_sigkills_of_the_daemon_mid_batch_send_no_good_file_to_failed(daemons, speech_dir, tmp_path):
    """Fault 3: the oldest jobs resumed first, together, and were charged for every kill: good files
    ended in failed/ ("the daemon stopped during 3 of them").  Kills 1, 3 and 5 come with two jobs in
    flight; kills 2 and 4 with the first job of the run, which after an unclean stop runs alone."""
    d = daemons(workers=1)
    staging = tmp_path / "staging"
    names = [f"batch-{i:02d}.wav" for i in range(10)]
    for i, name in enumerate(names):
        td.cut(speech_dir, staging / name, ("silero_vad_en.wav", "silero_vad_ru.wav")[i % 2], 3 * i, 6.0)
    d.start()
    for name in names:
        os.rename(staging / name, d.inbox / name)

    def running_on_disk() -> int:
        """Jobs whose job.json says running: what the next start counts to tell "alone" (charged)
        from "with others in flight".  The log's job.started lines are not that: the loop records
        one job as running, logs it, then records the next, and a kill between the two would find
        the first alone."""
        states = []
        for p in (d.state / "work").glob("*/job.json"):
            try:
                states.append(json.loads(p.read_text())["state"])
            except FileNotFoundError:  # committed and archived while the folder was listed
                continue
        return states.count("running")

    for kill in range(1, 6):
        if kill > 1:
            d.start()
        if kill % 2:
            wait_until(lambda: running_on_disk() >= 2, 120, interval=0.02)
        else:
            wait_until(lambda: d.events("job.started"), 120, interval=0.02)
        d.kill9()
        assert not d.settled(len(names)), f"the batch was over before kill {kill}: the test proved nothing"
    d.start()
    wait_until(lambda: d.settled(len(names)), 300, interval=0.5, message=f"{d.outputs()} {d.quarantined()}")
    assert d.stop() == 0
    d.assert_exactly_once(names, [])
    for name in names:
        assert abs(media.duration(d.outbox / name) - 6.0) < 0.05, name
    charged = [h for p in (d.state / "done").glob("*/job.json")
               for h in json.loads(p.read_text())["history"] if h["stage"] == "interrupted" and h["charged"]]
    assert 1 <= len(charged) <= 2  # kills 2 and 4: the job that ran alone, never a third time


def test_a_full_outbox_holds_what_does_not_fit_reports_it_and_resumes_by_itself(daemons, speech_dir, tmp_path):
    """Fault 7: the outbox on a full filesystem quarantined every file as "System error." with one
    attempt.  Now a file whose output does not fit what is free stays in the inbox, uncharged;
    /healthz, the metrics, the STATUS line and `status` say which file waits for how much space in
    which folder; the daemon takes it by itself once there is room."""
    port = free_port()
    d = daemons(metrics_addr=f"127.0.0.1:{port}")
    notify = NotifySocket(tmp_path / "notify.sock")
    d.env["NOTIFY_SOCKET"] = str(notify.path)
    with tmpfs(d.outbox, "2m"):
        try:
            d.start()
            filler = fill(d.outbox)
            td.cut(speech_dir, d.inbox.parent / "a.wav", "silero_vad_en.wav", 0, 20.0)  # 640 kB as wav
            os.rename(d.inbox.parent / "a.wav", d.inbox / "a.wav")
            (waiting,) = wait_until(lambda: d.events("job.waiting_for_space"), 120)
            assert waiting["input"] == "a.wav" and waiting["folder"] == "outbox" and waiting["path"] == str(d.outbox)
            assert 640_000 < waiting["needs_bytes"] < 1_000_000 and waiting["free_bytes"] == 0
            assert waiting["reason"].startswith(f"its output needs about {waiting['needs_bytes'] / 1e3:.1f} kB in "
                                                f"the outbox folder {d.outbox}, which has 0 bytes free")
            code, body = http_get(port, "/healthz")
            health = json.loads(body)
            assert code == 503 and health["status"] == "waiting_for_space", body
            assert [w["input"] for w in health["waiting_for_space"]] == ["a.wav"]
            assert any(p.startswith("a.wav waits for space: its output needs about") for p in health["problems"])
            assert "voice_daemon_jobs_waiting_for_space 1.0" in http_get(port, "/metrics")[1]
            wait_until(lambda: any("; 1 waiting for space" in m for m in notify.messages()), 30)
            td.cut(speech_dir, d.inbox.parent / "b.wav", "silero_vad_ru.wav", 0, 2.0)
            os.rename(d.inbox.parent / "b.wav", d.inbox / "b.wav")
            wait_until(lambda: any("; 2 waiting for space" in m for m in notify.messages()), 30)
            st = subprocess.run([sys.executable, "-m", "daemon", "status", "--json"], cwd=ROOT, env=d.env,
                                capture_output=True, timeout=60)
            status = json.loads(st.stdout)
            assert [(w["input"], w["folder"]) for w in status["waiting_for_space"]] == [("a.wav", "outbox"),
                                                                                        ("b.wav", "outbox")]
            assert sorted(p.name for p in d.inbox.iterdir()) == ["a.wav", "b.wav"]  # not taken
            filler.unlink()
            wait_until(lambda: sorted(d.outputs()) == ["a.wav", "b.wav"], 120)
            wait_until(lambda: http_get(port, "/healthz")[0] == 200, 30)
            assert "voice_daemon_jobs_waiting_for_space 0.0" in http_get(port, "/metrics")[1]
            assert d.stop() == 0
        finally:
            notify.close()
        assert [e["input"] for e in d.events("job.queued")] == ["a.wav", "b.wav"]  # in the order they waited
        assert {e["input"]: e["attempts"] for e in d.events("job.done")} == {"a.wav": 1, "b.wav": 1}
        assert not d.events("daemon.paused")  # nothing ran out of space: nothing was started that did not fit
        d.assert_exactly_once(["a.wav", "b.wav"], [])


def test_an_output_that_can_never_fit_fails_at_once_and_the_files_around_it_convert(daemons, speech_dir):
    """One output bigger than the outbox's whole volume was tried each time space appeared, filled the
    volume again and paused the service for good: a file dropped after it stayed in the inbox.  Now it
    fails at once, the reason naming both sizes, and the service never stops taking what fits."""
    d = daemons(workers=1)
    with tmpfs(d.outbox, "2m"):
        d.start()
        staging = d.inbox.parent
        td.cut(speech_dir, staging / "fits.wav", "silero_vad_en.wav", 0, 5.0)  # about 160 kB out
        media.concat(speech_dir / "silero_vad_en.wav", staging / "huge.wav", 2)  # about 4 MB out at 16 kHz
        td.cut(speech_dir, staging / "after.wav", "silero_vad_ru.wav", 0, 5.0)
        os.rename(staging / "fits.wav", d.inbox / "fits.wav")
        os.rename(staging / "huge.wav", d.inbox / "huge.wav")
        wait_until(lambda: d.settled(2), 120, message=f"outcomes {d.outputs()} {d.quarantined()}")
        os.rename(staging / "after.wav", d.inbox / "after.wav")
        wait_until(lambda: d.settled(3), 120, message=f"outcomes {d.outputs()} {d.quarantined()}")
        assert d.proc.poll() is None
        assert d.stop() == 0
        d.assert_exactly_once(["fits.wav", "after.wav"], ["huge.wav"])  # while the outbox is mounted
    cause = d.error("huge.wav")["cause"]
    assert cause.startswith("Its output would take about ") and f"in the outbox folder {d.outbox}" in cause
    assert "but that volume holds 2.1 MB in all: it can never fit" in cause, cause
    assert d.error("huge.wav")["attempts"] == 0 and d.error("huge.wav")["stage"] == "space"
    assert not d.events("daemon.paused") and not d.events("job.waiting_for_space")


def test_sighup_reads_the_configuration_again_and_replaces_the_workers(daemons, speech_dir, tmp_path):
    """Fault 9: SIGHUP killed the daemon.  Now it re-reads the env file (also when systemd's
    EnvironmentFile= put the old values in the environment), warms new workers, lets the running job
    finish on the old ones, and keeps going; a bad value changes nothing."""
    env_file = tmp_path / "voice-daemon.env"
    env_file.write_text("VOICE_DAEMON_SAMPLE_RATE=16000\nVOICE_DAEMON_SHIFT_SEMITONES=6\n")
    d = daemons(workers=1, env_file=env_file)
    d.env["VOICE_DAEMON_SAMPLE_RATE"] = "16000"  # as EnvironmentFile= leaves it in the environment
    notify = NotifySocket(tmp_path / "notify.sock")
    d.env["NOTIFY_SOCKET"] = str(notify.path)
    try:
        d.start()
        (old,) = [e["worker_pid"] for e in d.events("pool.worker_ready")]
        media.concat(speech_dir / "silero_vad_en.wav", d.inbox.parent / "during.wav", 4)  # 4 min: still running
        os.rename(d.inbox.parent / "during.wav", d.inbox / "during.wav")
        wait_until(lambda: d.events("job.started"), 60)
        env_file.write_text("VOICE_DAEMON_SAMPLE_RATE=22050\nVOICE_DAEMON_MAX_INPUT_BYTES=100000000\n")
        d.proc.send_signal(signal.SIGHUP)
        (reloaded,) = wait_until(lambda: d.events("daemon.reloaded"), td.START_TIMEOUT)
        assert reloaded["running_on_old_workers"] <= 1  # 1 when the job was still converting at the swap
        assert sorted(reloaded["changed"]) == ["VOICE_DAEMON_SAMPLE_RATE", "VOICE_DAEMON_SHIFT_SEMITONES"]
        (needs_restart,) = d.events("daemon.reload_needs_restart")
        assert needs_restart["variables"] == ["VOICE_DAEMON_MAX_INPUT_BYTES"]
        (new,) = reloaded["worker_pids"]
        wait_until(lambda: d.outputs() == ["during.wav"], 120)
        wait_until(lambda: not alive(old), 30)  # the old worker leaves once its job is done
        td.cut(speech_dir, d.inbox.parent / "after.wav", "silero_vad_ru.wav", 0, 2.0)
        os.rename(d.inbox.parent / "after.wav", d.inbox / "after.wav")
        wait_until(lambda: "after.wav" in d.outputs(), 60)
        env_file.write_text("VOICE_DAEMON_SAMPLE_RATE=22050\nVOICE_DAEMON_SHIFT_FORMANT=9\n")
        d.proc.send_signal(signal.SIGHUP)
        (bad,) = wait_until(lambda: d.events("daemon.reload_failed"), 60)
        assert bad["error"].startswith("VOICE_DAEMON_SHIFT_FORMANT=9: ")
        td.cut(speech_dir, d.inbox.parent / "last.wav", "silero_vad_ru.wav", 2, 2.0)
        os.rename(d.inbox.parent / "last.wav", d.inbox / "last.wav")
        wait_until(lambda: "last.wav" in d.outputs(), 60)
        assert d.proc.poll() is None and alive(new)
        assert d.stop() == 0
        messages = notify.messages()
    finally:
        notify.close()
    assert sf.info(d.outbox / "during.wav").samplerate == 16000  # started before the swap: old settings
    assert sf.info(d.outbox / "after.wav").samplerate == 22050
    assert sf.info(d.outbox / "last.wav").samplerate == 22050
    reloading = next(i for i, m in enumerate(messages) if "RELOADING=1" in m)
    assert any("READY=1" in m for m in messages[reloading + 1:])
    d.assert_exactly_once(["during.wav", "after.wav", "last.wav"], [])
