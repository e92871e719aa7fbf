"""Put a transcript's words in place of recognised ones (a ``.txt`` beside the audio).

A plain-text transcript has no timing, and a chunk does not know which part of
it it holds.  So each chunk is recognised as usual (VAD slots, Whisper words),
its words are aligned to the whole transcript (difflib), and each recognised
phrase takes the transcript words between its first word's match and the next
phrase's.  Words the recogniser got wrong are thereby corrected; a phrase with
no counterpart in the transcript keeps the recognised words.

Both sides are compared with numbers written out (``normalize``): Whisper writes
«614» where the transcript says «шестьсот четырнадцать», and one recognised token
must not stand for one transcript word.  The chunk's last phrase runs on to the end
of its transcript sentence when only a few words are left there, so a sentence the
recogniser heard shorter is not cut.
"""

from __future__ import annotations

import difflib
import re

import numpy as np

from daemon.engines.resynth.normalize import normalize
from daemon.engines.resynth.text import words as norm_words

#: The last phrase takes up to this many words that follow it in its sentence (or this share of its words).
TAIL_WORDS, TAIL_SHARE = 2, 0.25
_SENTENCE_END = re.compile(r"[.!?…][\"'»”)\]]*$")


def _tokens(text: str, language: str) -> tuple[list[str], list[str], list[int]]:
    """The raw words, the compared words (numbers written out, lower case) and each compared word's raw word."""
    raw = text.split()
    norm, owner = [], []
    for i, token in enumerate(raw):
        for w in norm_words(normalize(token, language)):
            norm.append(w)
            owner.append(i)
    return raw, norm, owner


def compared_words(text: str, language: str = "ru") -> list[str]:
    """The words of ``text`` as the alignment compares them."""
    return _tokens(text, language)[1]


def replace_words(phrases: list[dict], transcript: str, language: str = "ru") -> tuple[list[dict], int]:
    """Phrases with their text taken from ``transcript``; also the number of matched words."""
    t_raw, t_norm, t_owner = _tokens(transcript, language)
    r_norm, r_phrase = [], []
    for k, ph in enumerate(phrases):
        for tok in _tokens(ph["text"], language)[1]:
            r_norm.append(tok)
            r_phrase.append(k)
    if not r_norm or not t_norm:
        return phrases, 0
    anchors = _anchors(r_norm, t_norm)
    if not anchors:
        return phrases, 0
    pos = _positions(len(r_norm), anchors, len(t_norm))

    def boundary(p: float) -> int:
        """A compared-word position as a raw-word index (a raw word is never split)."""
        i = int(round(p))
        if i <= 0:
            return 0
        if i >= len(t_norm):
            return len(t_raw)
        return t_owner[i] if t_owner[i] != t_owner[i - 1] else t_owner[i] + 1

    firsts = [r_phrase.index(k) if k in r_phrase else None for k in range(len(phrases))]
    out = []
    for k, ph in enumerate(phrases):
        if firsts[k] is None:
            out.append(ph)
            continue
        nxt = next((firsts[m] for m in range(k + 1, len(phrases)) if firsts[m] is not None), None)
        last_tok = max(i for i, o in enumerate(r_phrase) if o == k)
        a = boundary(pos[firsts[k]])
        b = boundary(pos[nxt]) if nxt is not None else _to_sentence_end(t_raw, a, boundary(pos[last_tok] + 1))
        text = " ".join(t_raw[a:max(a, b)])
        out.append({**ph, "text": text, "recognised": ph["text"]} if text else ph)
    return out, sum(n for _, _, n in anchors)


def _to_sentence_end(raw: list[str], a: int, b: int) -> int:
    """``b``, moved to the end of its sentence when few words are left in it."""
    if b <= 0 or b >= len(raw) or _SENTENCE_END.search(raw[b - 1]):
        return b
    end = next((j + 1 for j in range(b, len(raw)) if _SENTENCE_END.search(raw[j])), len(raw))
    return end if end - b <= max(TAIL_WORDS, TAIL_SHARE * (b - a)) else b


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
