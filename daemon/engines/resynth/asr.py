"""Recognise a chunk: Silero VAD for where speech is, faster-whisper for what is said.

Phrases take their slots from VAD speech regions (acoustic onsets are more exact
than Whisper's word times, which often stretch across pauses); Whisper's words
are assigned to the region they overlap most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.errors import ModelError

ASR_RATE = 16000
#: A pause at least this long ends a phrase.
MIN_PAUSE_MS = 200
#: Phrases longer than this are cut between words (Whisper's word times inside speech are good).
MAX_PHRASE_S = 8.0
#: Words farther than this from any speech region (edge to edge) are taken for hallucinations.
MAX_WORD_DISTANCE = 2.0
#: Beam search only: faster-whisper's fallback to sampling at higher temperatures draws from
#: CTranslate2's per-thread generator, seeded at random and never reset, so the words (and what
#: is spoken) would change from run to run and with what the worker recognised before.
DECODE_TEMPERATURE = 0.0
#: Words this close to each other belong to one phrase, wherever Whisper put them.
WORD_GAP = 0.3


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str


class Recognizer:
    def __init__(self, settings):
        from daemon.models.loaders import load_whisper

        self.model, self.ref = load_whisper(settings)
        lang = settings.language.strip().lower()
        self.language = None if lang == "auto" else lang
        if not self.model.model.is_multilingual and self.language != "en":
            raise ModelError(
                f"{settings.env_name('language')}={lang}: the speech recogniser {self.ref.path} knows English "
                f"only; set {settings.env_name('asr_model')}=base (multilingual, installed) or empty, or "
                f"another multilingual Whisper model (a CTranslate2 directory), set "
                f"{settings.env_name('language')}=en, or set {settings.env_name('asr_model')}=none to use "
                f"transcripts (NAME.srt/.vtt beside each input) only")
        self.vad_threshold = settings.vad_threshold

    def words(self, audio16k: np.ndarray) -> tuple[list[Word], str]:
        """Words with times (seconds) and the language."""
        segments, info = self.model.transcribe(
            audio16k, language=self.language, word_timestamps=True, beam_size=5,
            vad_filter=False, condition_on_previous_text=False, temperature=DECODE_TEMPERATURE)
        out = []
        for seg in segments:
            for w in seg.words or []:
                if w.word.strip():
                    out.append(Word(float(w.start), float(w.end), w.word.strip()))
        return out, info.language

    def regions(self, audio16k: np.ndarray) -> list[tuple[float, float]]:
        return speech_regions(audio16k, self.vad_threshold)


def speech_regions(audio16k: np.ndarray, threshold: float = 0.5,
                   min_pause_ms: int = MIN_PAUSE_MS) -> list[tuple[float, float]]:
    """Speech (start, end) in seconds, split at pauses of at least ``min_pause_ms``."""
    import torch
    from silero_vad import get_speech_timestamps

    from daemon.audio.vad import load_model

    if len(audio16k) < ASR_RATE // 10:
        return []
    model = load_model()
    with torch.inference_mode():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32)), model,
                                       threshold=threshold, sampling_rate=ASR_RATE,
                                       min_silence_duration_ms=min_pause_ms, speech_pad_ms=30,
                                       min_speech_duration_ms=120)
    model.reset_states()
    return [(s["start"] / ASR_RATE, s["end"] / ASR_RATE) for s in stamps]


def group_phrases(words: list[Word], regions: list[tuple[float, float]]) -> list[dict]:
    """One phrase per speech region that received words: ``{"start", "end", "text", "words"}``.

    A word goes to the region it overlaps most, else to the nearest one; a word outside every
    region that follows or precedes another with no pause (``WORD_GAP``) stays in that word's
    phrase, so Whisper's times running past a region do not tear a phrase apart.  The region
    index never decreases along the words, so the text keeps its order.  Regions without words
    (breaths, noise) are dropped; so are words far from all speech (hallucinations in silence).
    """
    if not regions:
        return []
    where = [list(_best_region(w, regions)) for w in words]
    for order in (range(1, len(words)), range(len(words) - 2, -1, -1)):  # forwards, then backwards
        for i in order:
            j = i - 1 if order.step == 1 else i + 1
            gap = words[i].start - words[j].end if j < i else words[j].start - words[i].end
            if where[i][1] > 0 and where[j][1] <= MAX_WORD_DISTANCE and gap <= WORD_GAP:
                where[i] = list(where[j])  # outside every region, but spoken right after (before) it
    buckets: dict[int, list[Word]] = {}
    last = 0
    for w, (idx, dist) in zip(words, where):
        if dist > MAX_WORD_DISTANCE:
            continue
        idx = max(idx, last)
        last = idx
        buckets.setdefault(idx, []).append(w)
    out = []
    for i, ws in sorted(buckets.items()):
        out += _split_long(ws, regions[i][0], regions[i][1])
    return out


def _split_long(ws: list[Word], start: float, end: float) -> list[dict]:
    """Cut a phrase longer than MAX_PHRASE_S between two words, so long speech keeps in sync.

    The cut goes near the middle, preferring punctuation and a wider gap between
    the words; each part keeps its words' times as its slot.
    """
    if end - start <= MAX_PHRASE_S or len(ws) < 4:
        return [{"start": start, "end": end, "text": " ".join(w.text for w in ws)}]
    best, best_score = None, -1.0
    for k in range(1, len(ws)):
        cut = (ws[k - 1].end + ws[k].start) / 2
        pos = (cut - start) / (end - start)
        if not 0.2 <= pos <= 0.8 or cut - start < 1.0 or end - cut < 1.0:
            continue
        score = (2.0 if ws[k - 1].text[-1] in ".!?;:" else 1.0 if ws[k - 1].text[-1] == "," else 0.0)
        score += min(ws[k].start - ws[k - 1].end, 0.5) * 2 + (1 - abs(pos - 0.5))
        if score > best_score:
            best, best_score = k, score
    if best is None:
        return [{"start": start, "end": end, "text": " ".join(w.text for w in ws)}]
    cut = (ws[best - 1].end + ws[best].start) / 2
    return _split_long(ws[:best], start, cut) + _split_long(ws[best:], cut, end)


def _best_region(w: Word, regions: list[tuple[float, float]]) -> tuple[int, float]:
    """(region index, seconds between the word and it): the most overlapped region (0 s), else
    the nearest by the gap between their edges."""
    best, best_overlap = -1, 0.0
    for i, (s, e) in enumerate(regions):
        overlap = min(e, w.end) - max(s, w.start)
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    if best >= 0:
        return best, 0.0
    gaps = [max(s - w.end, w.start - e, 0.0) for s, e in regions]
    i = int(np.argmin(gaps))
    return i, max(gaps[i], 1e-6)
