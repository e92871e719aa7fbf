#!/usr/bin/env python3
"""Drop-to-output latency of `voice-daemon run`: how long after `cp` ends does the output appear?

Starts a real daemon (the configured engine, `shift` unless VOICE_DAEMON_ENGINE says otherwise) on
temporary folders, copies a 10 s recording into the inbox with `cp` ROUNDS times (one at a time),
and prints, per round and as a median, the seconds from the end of the copy to the output's
appearance in the outbox, with the daemon's own `job.done` wall seconds beside it (what of the
latency is conversion, the rest is pick-up and claiming).  ``--settle-only`` runs a second daemon
with VOICE_DAEMON_CLOSED_SETTLE_SECONDS equal to the full settle: the latency before the fast path.

    .venv/bin/python tools/pickup_latency.py [--rounds 5] [--seconds 10] [--compare]

A figure to read, not a test: the machine's load moves it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT.parent / "shared" / "data" / "speech" / "silero_vad_en.wav"


def make_input(dest: Path, seconds: float) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(SPEECH),
                    "-t", str(seconds), "-c:a", "pcm_s16le", str(dest)], check=True)
    return dest


def measure(src: Path, rounds: int, env: dict[str, str], label: str) -> list[tuple[float, float]]:
    with tempfile.TemporaryDirectory(prefix="vd-pickup-") as tmp:
        root = Path(tmp)
        inbox, outbox = root / "inbox", root / "outbox"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_") or k in env}
        environ.update({"VOICE_DAEMON_INBOX": str(inbox), "VOICE_DAEMON_OUTBOX": str(outbox),
                        "VOICE_DAEMON_FAILED_DIR": str(root / "failed"), "VOICE_DAEMON_STATE_DIR": str(root / "state"),
                        "VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_ENGINE": os.environ.get("VOICE_DAEMON_ENGINE", "shift"),
                        **env})
        log = root / "daemon.log"
        proc = subprocess.Popen([sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=environ,
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while '"daemon.ready"' not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the daemon did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.1)
            results = []
            for i in range(rounds):
                name = f"drop{i}.wav"
                subprocess.run(["cp", str(src), str(inbox / name)], check=True)
                copied = time.monotonic()
                while not (outbox / name).exists():
                    if time.monotonic() - copied > 120:
                        raise SystemExit(f"{name} never came out:\n{log.read_text(errors='replace')}")
                    time.sleep(0.002)
                latency = time.monotonic() - copied
                wall = _job_wall(log, name)
                results.append((latency, wall))
                print(f"{label}: round {i + 1}: output {latency:.3f} s after the copy ended "
                      f"(conversion, dispatch to commit: {wall:.3f} s)", flush=True)
            return results
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)


def _job_wall(log: Path, name: str) -> float:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"job.done"' in line:
                ev = json.loads(line)
                if ev.get("input") == name:
                    return float(ev["wall_seconds"])
        time.sleep(0.01)
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the recording dropped (default 10)")
    ap.add_argument("--compare", action="store_true",
                    help="also measure with the fast path off (closed settle = full settle)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vd-pickup-src-") as tmp:
        src = make_input(Path(tmp) / "ten.wav", args.seconds)
        runs = [("fast pick-up", {})]
        if args.compare:
            settle = os.environ.get("VOICE_DAEMON_SETTLE_SECONDS", "2.0")
            runs.append(("full settle", {"VOICE_DAEMON_CLOSED_SETTLE_SECONDS": settle}))
        summary = []
        for label, env in runs:
            res = measure(src, args.rounds, env, label)
            lat = [r[0] for r in res]
            conv = [r[1] for r in res]
            summary.append(f"{label}: drop-to-output median {statistics.median(lat):.3f} s "
                           f"(min {min(lat):.3f}, max {max(lat):.3f}; conversion median {statistics.median(conv):.3f} s) "
                           f"for a {args.seconds:g} s file, {args.rounds} rounds")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
