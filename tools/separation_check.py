#!/usr/bin/env python3
"""What the voice/bed separation costs and how well it separates.

Cost: the real-time factor per core at 48 kHz — CPU seconds of one torch thread per second of audio
(resampling to the model's 44.1 kHz and back included), timed on SECONDS of the mix below, best of
REPEATS; the wall-clock figure is printed beside it (it grows with the machine's load, CPU time less).

Quality: the shared English recording (60 s) over a generated music bed (``tests/helpers/beds.py``:
chords, bass line, kick, hi-hat, room noise) at 6 and 12 dB below the voice, for SEEDS beds: SI-SDR of
the voice estimate against the true voice, and of ``mix - vocals`` against the true bed, before → after.

    .venv/bin/python tools/separation_check.py [--seconds 30] [--repeats 3] [--seeds 3] [--json]

A figure to read, not a test (tests/integration/test_separation_quality.py holds the quality bounds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT.parent / "shared" / "data" / "speech" / "silero_vad_en.wav"
RATE = 48000
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _voice() -> np.ndarray:
    import soundfile as sf
    import soxr

    audio, rate = sf.read(SPEECH, dtype="float32")
    return soxr.resample(audio, rate, RATE)


def cost(sep, voice: np.ndarray, seconds: float, repeats: int) -> dict:
    """CPU and wall seconds per audio second of ``vocals`` at 48 kHz on one thread (best of repeats)."""
    import torch

    from helpers.beds import make_bed, mix

    torch.set_num_threads(1)
    n = int(seconds * RATE)
    voice = np.tile(voice, -(-n // len(voice)))[:n]
    m, _, _ = mix(voice, make_bed(seconds, RATE, 0), 9.0)
    sep.vocals(m[:RATE], RATE)                       # first-call set-up out of the timing
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        sep.vocals(m, RATE)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"seconds": seconds, "rtf_cpu": min(cpu) / seconds, "rtf_wall": min(wall) / seconds}


def quality(sep, voice: np.ndarray, seeds: int) -> list[dict]:
    from helpers.beds import make_bed, mix, si_sdr

    rows = []
    for bed_db in (6, 12):
        for seed in range(seeds):
            m, v, bed = mix(voice, make_bed(len(voice) / RATE, RATE, seed), bed_db)
            est = sep.vocals(m, RATE)
            rows.append({"bed_db": bed_db, "seed": seed,
                         "voice_before": si_sdr(m, v), "voice_after": si_sdr(est, v),
                         "bed_before": si_sdr(m, bed), "bed_after": si_sdr(m - est, bed)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="audio timed for the cost (default 30)")
    ap.add_argument("--repeats", type=int, default=3, help="timings, the best is kept (default 3)")
    ap.add_argument("--seeds", type=int, default=3, help="beds per level for the quality (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)

    from daemon.models.separation import Separator

    t0 = time.perf_counter()
    sep = Separator.load()
    load_s = time.perf_counter() - t0
    voice = _voice()
    figures = {"load_seconds": load_s, "cost": cost(sep, voice, args.seconds, args.repeats),
               "quality": quality(sep, voice, args.seeds), "model": sep.models()[0]}
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    c = figures["cost"]
    print(f"separation model: {figures['model']['path']} (sha256 {figures['model']['sha256'][:12]}…), "
          f"loaded in {load_s:.2f} s")
    print(f"cost at 48 kHz, one thread, {c['seconds']:.0f} s of audio: real-time factor per core "
          f"{c['rtf_cpu']:.3f} (CPU time; wall {c['rtf_wall']:.3f}); goal <= 0.15")
    print(f"quality, {SPEECH.name} (60 s) over make_bed, SI-SDR in dB, before -> after:")
    print(f"{'bed':>6} {'seed':>4}  {'voice':>15}  {'bed (mix - vocals)':>19}")
    for r in figures["quality"]:
        print(f"{r['bed_db']:>3} dB {r['seed']:>4}  {r['voice_before']:6.2f} -> {r['voice_after']:5.2f}  "
              f"{r['bed_before']:9.2f} -> {r['bed_after']:5.2f}")
    for bed_db in (6, 12):
        rows = [r for r in figures["quality"] if r["bed_db"] == bed_db]
        va, ba = [r["voice_after"] for r in rows], [r["bed_after"] for r in rows]
        print(f"{bed_db:>3} dB  voice {min(va):.2f}..{max(va):.2f}  bed {min(ba):.2f}..{max(ba):.2f} "
              f"over {len(rows)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
