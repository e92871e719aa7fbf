"""A signal while the workers load their models ends the program at once, leaving no process behind.

The real `voice-daemon run` / `convert` processes load the real resynth engine; its Silero TTS
model is the test stand-in (tests/helpers/fake_silero.py, a real torch.package) made to take
60 s to load, longer than systemd's patience with a stop (TimeoutStopSec=90 less the grace).
Each worker notes its pid in a file as that load begins: the signal is sent only then.  "At once"
is measured by what happened, not by a clock (a loaded machine makes any number of seconds wrong):
the program and every process of its group were gone while the load was still running (no worker
noted its end, none reported ready).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import live_in_group, wait_until
from helpers.fake_silero import build_fake_silero

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
LOAD_SECONDS = 120
#: Only how long the test waits for the exit before calling it hung: whether the exit came "at once"
#: is judged by the load not having ended, however slow the machine.
GIVE_UP_AFTER = LOAD_SECONDS * 0.75


@pytest.fixture
def slow_model(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "loading.pids"
    return build_fake_silero(tmp_path / "slow_v4_ru.pt", load_seconds=LOAD_SECONDS, loading_marker=marker), marker


def environment(tmp_path: Path, model: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICE_DAEMON_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update({
        "VOICE_DAEMON_ENGINE": "resynth", "VOICE_DAEMON_TTS": "silero", "VOICE_DAEMON_TTS_MODEL": str(model),
        "VOICE_DAEMON_ASR_MODEL": "none", "VOICE_DAEMON_STRESS": "off", "VOICE_DAEMON_SAMPLE_RATE": "48000",
        "VOICE_DAEMON_VOICE": "kseniya", "VOICE_DAEMON_WORKERS": str(WORKERS), "VOICE_DAEMON_LOG_FORMAT": "json",
        "VOICE_DAEMON_INBOX": str(tmp_path / "inbox"), "VOICE_DAEMON_OUTBOX": str(tmp_path / "outbox"),
        "VOICE_DAEMON_FAILED_DIR": str(tmp_path / "failed"), "VOICE_DAEMON_STATE_DIR": str(tmp_path / "state"),
    })
    return env


def loading_pids(marker: Path) -> list[int]:
    return [int(line) for line in marker.read_text().split()] if marker.exists() else []


def as_foreground_job() -> None:
    """In the child before it runs: SIGINT as a terminal's foreground job has it.  A suite started in
    the background by a script (``make test &``, nohup) inherits SIGINT ignored, as POSIX shells do
    for background jobs, and so would the program: Ctrl-C would then rightly do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def other_thread(pid: int) -> int:
    """A thread of process ``pid`` other than its main thread (the pool's dispatcher, say)."""
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    assert tids, f"process {pid} has one thread only"
    return tids[0]


def signal_state(pid: int) -> str:
    """What the kernel says of a process's signals and threads: for the message of a test that hangs."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        lines = [line for line in status if line.startswith(("Sig", "Shd"))]
        for tid in os.listdir(f"/proc/{pid}/task"):
            task = Path(f"/proc/{pid}/task/{tid}")
            state = next(line for line in (task / "status").read_text().splitlines() if line.startswith("State"))
            lines.append(f"thread {tid}: {state}, wchan {(task / 'wchan').read_text()}")
        return "\n".join(lines)
    except OSError as exc:
        return f"(no /proc: {exc})"


def stop_while_loading(args: list[str], env: dict, marker: Path, log: Path, sig: int,
                       to_thread: bool = False) -> tuple[int, list[int], str]:
    """Start ``voice-daemon *args``, wait until every worker is inside its slow load, send ``sig``;
    (exit code, the workers' pids, the log).  Fails if the program or any process of its group was
    still there when a worker's load ended, i.e. if it waited for the models instead of stopping.
    ``to_thread``: the signal goes to a thread other than the main one, as the kernel may choose
    for any signal sent to a process."""
    loaded = Path(f"{marker}.loaded")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "daemon", *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=as_foreground_job)
    try:
        wait_until(lambda: len(loading_pids(marker)) >= WORKERS or proc.poll() is not None, 180,
                   message="every worker loading its models")
        assert proc.poll() is None, log.read_text()[-3000:]
        workers = loading_pids(marker)
        assert all(os.path.exists(f"/proc/{pid}") for pid in workers)
        os.kill(other_thread(proc.pid) if to_thread else proc.pid, sig)
        try:
            code = proc.wait(GIVE_UP_AFTER)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {GIVE_UP_AFTER} s after the signal:\n{signal_state(proc.pid)}\n"
                        f"{log.read_text()[-3000:]}")
        # No orphan: nothing of its process group outlives it (the workers included); what the kernel
        # still reaps (a killed worker, the resource tracker) may take a moment on a loaded machine.
        wait_until(lambda: live_in_group(proc.pid) == [] or loading_pids(loaded), GIVE_UP_AFTER,
                   message=f"no process of the group left: {live_in_group(proc.pid)}\n{log.read_text()[-3000:]}")
        assert loading_pids(loaded) == [], "a worker finished loading: the program waited for the models"
        assert live_in_group(proc.pid) == []
        return code, workers, log.read_text()
    finally:
        if proc.poll() is None or live_in_group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@pytest.mark.parametrize("to_thread", [False, True], ids=["to-the-process", "to-another-thread"])
def test_sigterm_while_the_models_load_stops_run_at_once(tmp_path, slow_model, to_thread):
    model, marker = slow_model
    code, workers, text = stop_while_loading(["run"], environment(tmp_path, model), marker,
                                             tmp_path / "run.log", signal.SIGTERM, to_thread=to_thread)
    assert code == 0, text[-3000:]
    assert len(workers) == WORKERS
    assert '"event": "daemon.stopped"' in text and "SIGTERM while starting" in text
    assert '"event": "daemon.ready"' not in text and '"event": "pool.worker_ready"' not in text


@pytest.mark.parametrize("to_thread", [False, True], ids=["to-the-process", "to-another-thread"])
def test_ctrl_c_while_the_models_load_stops_convert_at_once(tmp_path, slow_model, speech_dir, to_thread):
    """Also when the kernel hands the signal to a thread other than the main one, which Python
    then runs the handler in only once the main thread wakes: it must not sleep until the load ends."""
    model, marker = slow_model
    out = tmp_path / "out.wav"
    code, _workers, text = stop_while_loading(
        ["convert", str(speech_dir / "silero_vad_ru_num.wav"), str(out)], environment(tmp_path, model), marker,
        tmp_path / "convert.log", signal.SIGINT, to_thread=to_thread)
    assert code == 130, text[-3000:]
    assert "voice-daemon: interrupted" in text
    assert '"event": "pool.worker_ready"' not in text  # acted on while the models loaded
    assert not out.exists() and not list(tmp_path.glob(".out*"))
