"""Put a transcript's words in place of recognised ones (a ``.txt`` beside the audio).

A plain-text transcript has no timing, and a chunk does not know which part of
it it holds.  So each chunk is recognised as usual (VAD slots, Whisper words),
its words are aligned to the whole transcript (difflib), and each recognised
phrase takes the transcript words between its first word's match and the next
phrase's.  Words the recogniser got wrong are thereby corrected; a phrase with
no counterpart in the transcript keeps the recognised words.
"""

from __future__ import annotations

import difflib

import numpy as np

from daemon.engines.resynth.text import words as norm_words


def _tokens(text: str) -> tuple[list[str], list[str]]:
    raw = text.split()
    return raw, [" ".join(norm_words(t)) for t in raw]


def replace_words(phrases: list[dict], transcript: str) -> tuple[list[dict], int]:
    """Phrases with their text taken from ``transcript``; also the number of matched words."""
    t_raw, t_norm = _tokens(transcript)
    r_norm, owner = [], []
    for k, ph in enumerate(phrases):
        for tok in _tokens(ph["text"])[1]:
            r_norm.append(tok)
            owner.append(k)
    if not r_norm or not t_norm:
        return phrases, 0
    anchors = _anchors(r_norm, t_norm)
    if not anchors:
        return phrases, 0
    pos = _positions(len(r_norm), anchors, len(t_norm))
    firsts = [owner.index(k) if k in owner else None for k in range(len(phrases))]
    out = []
    for k, ph in enumerate(phrases):
        if firsts[k] is None:
            out.append(ph)
            continue
        a = pos[firsts[k]]
        nxt = next((firsts[m] for m in range(k + 1, len(phrases)) if firsts[m] is not None), None)
        last_tok = max(i for i, o in enumerate(owner) if o == k)
        b = pos[nxt] if nxt is not None else pos[last_tok] + 1
        a, b = int(round(a)), int(round(b))
        text = " ".join(t_raw[max(0, a):max(0, b)])
        out.append({**ph, "text": text, "recognised": ph["text"]} if text else ph)
    return out, sum(n for _, _, n in anchors)


def _anchors(r: list[str], t: list[str]) -> list[tuple[int, int, int]]:
    """Matching blocks (i, j, n) near the main diagonal of the longest match."""
    blocks = [b for b in difflib.SequenceMatcher(None, r, t, autojunk=False).get_matching_blocks() if b.size]
    if not blocks:
        return []
    main = max(blocks, key=lambda b: b.size)
    offset = main.b - main.a
    slack = len(r) // 2 + 5
    return [(b.a, b.b, b.size) for b in blocks if abs((b.b - b.a) - offset) <= slack]


def _positions(n: int, anchors: list[tuple[int, int, int]], t_len: int) -> np.ndarray:
    """Transcript position of every recognised token: exact at anchors, interpolated between."""
    xs, ys = [], []
    for i, j, size in anchors:
        for k in range(size):
            xs.append(i + k)
            ys.append(j + k)
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    pos = np.interp(np.arange(n), xs, ys)
    # Outside the anchors keep the nearest anchor's offset (np.interp would hold the value flat).
    before, after = np.arange(n) < xs[0], np.arange(n) > xs[-1]
    pos[before] = np.arange(n)[before] + (ys[0] - xs[0])
    pos[after] = np.arange(n)[after] + (ys[-1] - xs[-1])
    return np.clip(pos, 0, t_len)
