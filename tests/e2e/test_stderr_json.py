"""With VOICE_DAEMON_LOG_FORMAT=json every line the daemon and its workers write on stderr is JSON.

Real processes each time: what used to print plain lines was numpy (a NaN/Inf input through the
`shift` engine), torch (loading a Silero model: the stand-in of tests/helpers/fake_silero.py is a
real torch.package), watchdog's stdlib logging, and multiprocessing's resource tracker (a worker
killed while tqdm's semaphore existed), and the status server's clients that hang up early, stall or
send something that is not HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf
from test_daemon import cut
from test_faults import free_port

from helpers import live_in_group, wait_until
from helpers.fake_silero import build_fake_silero

ROOT = Path(__file__).resolve().parents[2]


def not_json(text: str) -> list[str]:
    bad = []
    for line in text.splitlines():
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    return bad


def test_a_nan_and_inf_input_converts_cleanly_and_logs_only_json(tmp_path, speech_dir):
    audio, rate = sf.read(speech_dir / "silero_vad_en.wav", dtype="float32", frames=10 * 16000)
    assert rate == 16000
    audio[2 * rate: 2 * rate + 100] = np.nan
    audio[5 * rate: 5 * rate + 50] = np.inf
    audio[6 * rate: 6 * rate + 50] = -np.inf
    src, out = tmp_path / "naninf.wav", tmp_path / "out.wav"
    sf.write(src, audio, rate, subtype="FLOAT")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_WORKERS": "1", "VOICE_DAEMON_SAMPLE_RATE": "16000"})
    proc = subprocess.run([sys.executable, "-m", "daemon", "convert", str(src), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not_json(proc.stderr) == []
    y, _ = sf.read(out)
    assert len(y) == len(audio) and np.isfinite(y).all()
    # The bad samples became silence, not float32's largest value that clipped the whole output.
    assert np.mean(np.abs(y) > 0.99) < 0.001 and np.sqrt(np.mean(y ** 2)) > 0.01


def test_a_silero_model_loading_and_a_shutdown_log_only_json(daemon, tmp_path):
    model = build_fake_silero(tmp_path / "v4_ru.pt")
    d = daemon(engine="resynth", tts="silero", tts_model=model, asr_model="none", stress="off",
               sample_rate=48000, voice="kseniya", workers=1, log_level="debug")
    d.start()
    assert d.stop() == 0
    assert not_json(d.text()) == []
    warned = [e for e in d.events("python.warning") if "TypedStorage" in e["message"]]
    assert warned and warned[0]["level"] == "debug" and warned[0]["proc"] == "worker"


def test_libraries_logging_warnings_and_thread_crashes_are_json_lines(tmp_path):
    """watchdog's own logger (its shutdown race, provoked directly), a warning, a crashed thread."""
    script = textwrap.dedent("""
        import threading, warnings
        from daemon import log
        log.configure("json", "info")
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers.api import EventQueue, ObservedWatch
        from watchdog.observers.inotify import InotifyEmitter
        emitter = InotifyEmitter(EventQueue(), ObservedWatch(%r, recursive=False))
        emitter.start()
        emitter.stop()
        emitter.join()
        emitter.queue_events(0)   # what the emitter thread does when it loses the race with stop()
        warnings.warn("a library's warning")
        def crash():
            raise RuntimeError("boom in a thread")
        t = threading.Thread(target=crash, name="crasher")
        t.start()
        t.join()
    """) % str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not_json(proc.stderr) == [], proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    [lib] = [e for e in events if e["event"] == "library.log"]
    assert lib["logger"] == "watchdog.observers.inotify" and lib["level"] == "error" and "inactive" in lib["message"]
    [warned] = [e for e in events if e["event"] == "python.warning"]
    assert warned["message"] == "a library's warning" and warned["category"] == "UserWarning"
    [crashed] = [e for e in events if e["event"] == "python.uncaught_exception"]
    assert crashed["thread"] == "crasher" and "boom in a thread" in crashed["exception"]


def test_workers_killed_mid_transcription_leak_no_semaphore(daemon, speech_dir):
    """faster-whisper makes a tqdm bar per transcription; tqdm's multiprocessing lock is a named
    semaphore in a spawn child, left to the resource tracker when the worker is killed."""
    d = daemon(engine="resynth", tts="piper", language="en", sample_rate=22050, workers=2, chunk_seconds=10,
               shutdown_grace_seconds=0, log_level="debug")
    d.start()
    cut(speech_dir, d.inbox / "talk.wav", "silero_vad_en.wav", 0, 60.0)
    transcribed = lambda: [e for e in d.events("resynth.chunk") if e["audio_seconds"] > 1]  # noqa: E731
    wait_until(transcribed, 240, message="a chunk recognised")
    assert not d.events("job.done"), "the job ended before the stop: the test proved nothing"
    assert d.stop(signal.SIGTERM) == 0  # no grace: the busy workers are terminated
    wait_until(lambda: not live_in_group(d.proc.pid), 30, message="the resource tracker to exit")
    assert d.has("job.put_back")
    assert "leaked semaphore" not in d.text()
    assert not_json(d.text()) == []


def test_the_shift_engine_takes_nan_and_inf_without_a_numpy_warning(speech_dir):
    """The engine on its own (a caller other than the decoder may hand it such samples)."""
    import warnings

    from daemon.engines.shift import shift_voice

    audio, rate = sf.read(speech_dir / "silero_vad_en.wav", dtype="float32", frames=3 * 16000)
    audio[rate: rate + 10] = np.nan
    audio[2 * rate: 2 * rate + 10] = np.inf
    huge = np.where(np.isfinite(audio), audio, np.finfo(np.float32).max)  # what the decoder used to make of them
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        for x in (audio, huge):
            y = shift_voice(x, rate, 4.0, 1.15)
            assert len(y) == len(x) and y.dtype == np.float32 and np.isfinite(y).all()
        assert np.mean(np.abs(shift_voice(audio, rate, 4.0, 1.15)) > 0.99) < 0.001


def _hang_up(port: int, request: bytes) -> None:
    """Send ``request`` and close at once with a reset (SO_LINGER 0), before the answer comes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.sendall(request)
    s.close()


def test_clients_that_hang_up_stall_or_send_garbage_log_a_bounded_number_of_json_events(daemon):
    """A client that closed its connection before /healthz was answered printed a traceback on
    stderr (BrokenPipeError through socketserver's handle_error): 20 such clients, 416 plain lines."""
    from daemon.web.server import CLIENT_ERROR_BURST, IDLE_TIMEOUT_SECONDS

    port = free_port()
    d = daemon(metrics_addr=f"127.0.0.1:{port}", workers=1)
    d.start()
    # Two clients that connect and say nothing: dropped after the idle timeout, one event each.
    stalled = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    timed_out = lambda: [e for e in d.events("http.client_error") if "timed out" in e["error"]]  # noqa: E731
    wait_until(lambda: len(timed_out()) == 2, IDLE_TIMEOUT_SECONDS * 6, message="both stalled clients dropped")
    for s in stalled:
        s.close()
    for i in range(60):  # then a flood: hang-ups before the answer, and requests that are not HTTP
        if i % 3 == 2:
            _hang_up(port, b"\x00\xff not http at all\r\n\r\n")
        else:
            _hang_up(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" if i % 2 else b"GET /healthz HTTP/1.0\r\n\r\n")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:  # still answering
        assert r.status in (200, 503)
    assert d.stop() == 0
    assert not_json(d.text()) == []
    errors = d.events("http.client_error")
    # The flood was heard (a reset, a broken pipe or a 400), and held to the burst per window.
    assert len(errors) > 2, d.text()[-3000:]
    assert len(errors) <= CLIENT_ERROR_BURST, [e["error"] for e in errors]
    assert all(e["level"] == "info" and e["client"] == "127.0.0.1" for e in errors)
    assert "Traceback" not in d.text()
