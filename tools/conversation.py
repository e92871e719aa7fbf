"""A conversation made of real recordings: alternating turns (2–15 s) of different people, with the
truth (who speaks when) to score diarization against.  Different recordings are different people.

    .venv/bin/python tools/conversation.py OUT.wav [--seconds 120] [--seed 1]

writes OUT.wav and OUT.ref.rttm (the turns).  Used by ``tools/speakers_check.py`` and the tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech"
PEOPLE = ("silero_vad_en.wav", "silero_vad_ru.wav", "silero_vad_de.wav", "silero_vad_es.wav")
RATE = 16000
GAP_S = 0.4          # silence between two turns
TURN_S = (2.0, 15.0)


def _mono(path: Path) -> np.ndarray:
    a, rate = sf.read(str(path), dtype="float32", always_2d=True)
    a = a.mean(axis=1)
    return soxr.resample(a, rate, RATE).astype(np.float32) if rate != RATE else a


def _quiet_cut(a: np.ndarray, pos: int, want: int) -> int:
    """A cut near ``pos + want`` (within ±0.6 s) at the quietest 50 ms: turns do not split words."""
    frame, reach = RATE // 20, int(0.6 * RATE)
    lo, hi = max(pos + RATE, pos + want - reach), min(len(a), pos + want + reach)
    if hi - lo < frame:
        return min(len(a), pos + want)
    starts = np.arange(lo, hi - frame, frame // 2)
    energy = [float(np.mean(a[s:s + frame] ** 2)) for s in starts]
    return int(starts[int(np.argmin(energy))] + frame // 2)


def make(out: Path, seconds: float = 120.0, seed: int = 1, people=PEOPLE) -> list[tuple[float, float, int]]:
    """Write the conversation to ``out`` (16 kHz WAV) and ``out.ref.rttm``; return its turns
    (start, end, person from 1).  Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    voices = [_mono(SPEECH / p) for p in people]
    pos = [0] * len(voices)
    parts, turns, t, who = [], [], 0, -1
    gap = np.zeros(int(GAP_S * RATE), np.float32)
    while t < seconds * RATE:
        choices = [i for i in range(len(voices)) if i != who and len(voices[i]) - pos[i] > TURN_S[0] * RATE]
        if not choices and any(pos):  # every recording said: the people talk on from their beginnings
            pos = [0] * len(voices)
            continue
        if not choices:
            break
        who = int(rng.choice(choices)) if turns else 0
        want = int(rng.uniform(*TURN_S) * RATE)
        end = _quiet_cut(voices[who], pos[who], want)
        piece = voices[who][pos[who]:end]
        pos[who] = end
        turns.append((t / RATE, (t + len(piece)) / RATE, who + 1))
        parts += [piece, gap]
        t += len(piece) + len(gap)
    sf.write(str(out), np.concatenate(parts), RATE, subtype="PCM_16")
    Path(str(out) + ".ref.rttm").write_text("".join(
        f"SPEAKER ref 1 {s:.3f} {e - s:.3f} <NA> <NA> person{p} <NA> <NA>\n" for s, e, p in turns))
    return turns


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    turns = make(a.out, a.seconds, a.seed)
    print(f"{a.out}: {len(turns)} turns, {turns[-1][1]:.1f} s, {len({p for *_, p in turns})} people")
    return 0


if __name__ == "__main__":
    sys.exit(main())
