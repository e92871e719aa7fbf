"""The audio of one phrase's text pieces (``text.split_text``) joined into one, a short pause between.

Every synthesiser (``tts.py``, ``rhvoice.py``, ``festival.py``, ``espeak.py``) speaks a phrase in
pieces below its per-call limit and joins them here; this module imports none of them.
"""

from __future__ import annotations

import numpy as np

#: Pause between pieces of one phrase (seconds).
PIECE_PAUSE = 0.12


def join_pieces(parts: list[np.ndarray], rate: int) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.zeros(0, dtype=np.float32)
    gap = np.zeros(int(PIECE_PAUSE * rate), dtype=np.float32)
    out = [parts[0]]
    for p in parts[1:]:
        out += [gap, p]
    return np.concatenate(out)
