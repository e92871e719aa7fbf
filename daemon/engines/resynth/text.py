"""Text handling for synthesis: sentences, pieces below a TTS per-call limit, stress marks.

Pure functions (no models).  A TTS model gets text in pieces no longer than its
per-call limit, cut at sentence ends first, then at phrase punctuation, then at
spaces; never inside a word.
"""

from __future__ import annotations

import re
import unicodedata

#: Silero raises on long inputs ("probably it's too long"); ~1000 characters is
#: the documented ceiling, some speakers fail earlier, so stay well below it.
SILERO_MAX_CHARS = 800
#: Piper phonemises sentence by sentence itself; pieces only bound the work per call.
PIPER_MAX_CHARS = 2000

STRESS_MARK = "+"

# A sentence ends at . ! ? … (optionally followed by closing quotes/brackets) before whitespace.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'»”)\]]*(?=\s)")
# Phrase boundaries inside a sentence: , ; : and dashes surrounded by spaces.
_PHRASE_END = re.compile(r"(?<=[,;:])\s+|\s+(?=[—–-]\s)")
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """One line of text: control characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _SPACES.sub(" ", text).strip()


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (keeping their punctuation)."""
    text = clean(text)
    out, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        out.append(text[pos:m.end()].strip())
        pos = m.end()
    out.append(text[pos:].strip())
    return [s for s in out if s]


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of ``text``, each at most ``limit`` characters where possible.

    Sentences are packed together while they fit; a longer sentence is cut at
    phrase punctuation, then between words.  A single word longer than ``limit``
    is left whole (cutting it would make the model mispronounce it).
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    for sentence in sentences(text):
        for part in _fit(sentence, limit):
            if pieces and len(pieces[-1]) + 1 + len(part) <= limit and _ends_sentence(pieces[-1]):
                pieces[-1] = pieces[-1] + " " + part
            else:
                pieces.append(part)
    return pieces


def _ends_sentence(piece: str) -> bool:
    return bool(re.search(r"[.!?…][\"'»”)\]]*$", piece))


def _fit(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    phrases = [p for p in _PHRASE_END.split(sentence) if p.strip()]
    if len(phrases) == 1:
        return _pack(sentence.split(" "), limit)
    out: list[str] = []
    for phrase in phrases:
        parts = [phrase] if len(phrase) <= limit else _pack(phrase.split(" "), limit)
        for part in parts:
            if out and len(out[-1]) + 1 + len(part) <= limit:
                out[-1] = out[-1] + " " + part
            else:
                out.append(part)
    return out


def _pack(words: list[str], limit: int) -> list[str]:
    out: list[str] = []
    for word in words:
        if not word:
            continue
        if out and len(out[-1]) + 1 + len(word) <= limit:
            out[-1] = out[-1] + " " + word
        else:
            out.append(word)
    return out


def strip_stress(text: str) -> str:
    """Text without ``+`` stress marks (for synthesisers that do not read them)."""
    return re.sub(r"\+(?=[^\W\d_])", "", text)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (for alignment and word error rates)."""
    text = strip_stress(unicodedata.normalize("NFC", text)).lower().replace("ё", "е")
    return re.findall(r"[\w']+", text)


def has_cyrillic(text: str) -> bool:
    return bool(re.search(r"[\u0400-\u04FF]", text))
