"""Diarization error rate of RTTM turns against a reference, NIST style: (missed speech + false
alarm + speaker confusion) / reference speech, frames of 10 ms, speakers mapped one-to-one to
maximise agreement, ``collar`` seconds around every reference boundary not scored.

    .venv/bin/python tools/der.py REF.rttm HYP.rttm [--collar 0.25]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

STEP = 0.01


def read_rttm(path) -> list[tuple[float, float, str]]:
    turns = []
    for line in open(path, encoding="utf-8"):
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return turns


def _labels(turns, n: int) -> tuple[np.ndarray, list[str]]:
    names = sorted({t[2] for t in turns})
    lab = np.full(n, -1, np.int64)
    for s, e, name in turns:
        lab[int(round(s / STEP)):int(round(e / STEP))] = names.index(name)
    return lab, names


def der(ref: list, hyp: list, *, collar: float = 0.25, speech: np.ndarray | None = None) -> dict:
    """``speech``: a mask of 10 ms frames where the reference has speech (the rest of a turn is a
    pause inside it); None: the whole of every reference turn is speech."""
    from scipy.optimize import linear_sum_assignment

    n = int(np.ceil(max([e for _, e, _ in ref + hyp] + [0]) / STEP)) + 1
    r, rnames = _labels(ref, n)
    h, hnames = _labels(hyp, n)
    if speech is not None:
        m = np.zeros(n, bool)
        m[:min(n, len(speech))] = speech[:n]
        r[~m] = -1
    scored = np.ones(n, bool)
    c = int(round(collar / STEP))
    for s, e, _ in ref:
        for edge in (int(round(s / STEP)), int(round(e / STEP))):
            scored[max(0, edge - c):edge + c] = False
    r, h = r[scored], h[scored]
    overlap = np.zeros((len(rnames), len(hnames)))
    both = (r >= 0) & (h >= 0)
    np.add.at(overlap, (r[both], h[both]), 1)
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
    mapping = dict(zip(cols, rows))
    total = int((r >= 0).sum())
    miss = int(((r >= 0) & (h < 0)).sum())
    fa = int(((r < 0) & (h >= 0)).sum())
    mapped = np.array([mapping.get(x, -2) for x in h[both]])
    confusion = int((mapped != r[both]).sum())
    return {"der": (miss + fa + confusion) / total if total else 0.0, "missed": miss * STEP,
            "false_alarm": fa * STEP, "confusion": confusion * STEP, "speech": total * STEP,
            "ref_speakers": len(rnames), "hyp_speakers": len(hnames)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref")
    ap.add_argument("hyp")
    ap.add_argument("--collar", type=float, default=0.25)
    a = ap.parse_args(argv)
    print(der(read_rttm(a.ref), read_rttm(a.hyp), collar=a.collar))
    return 0


if __name__ == "__main__":
    sys.exit(main())
