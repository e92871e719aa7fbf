"""ResynthEngine: recognise → stress → synthesise → fit every phrase into its source slot.

Built once per worker child on the worker's ``ResynthModels`` (loaded in
``__init__`` when none is given); ``process`` turns one chunk (mono float32, cut in
silences) into a chunk of exactly the same length.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from daemon import log
from daemon.audio.resample import resample
from daemon.engines.resynth import fit as fitmod
from daemon.engines.resynth import loudness, prosody
from daemon.engines.resynth.align import compared_words, replace_words
from daemon.engines.resynth.asr import ASR_RATE, group_phrases
from daemon.engines.resynth.bundle import ResynthModels
from daemon.engines.resynth.text import clean
from daemon.engines.resynth.transcript import is_timed
from daemon.engines.voices import turn_of
from daemon.errors import InputError

#: Level for a phrase whose source slot is silent (a transcript cue over music, say).
DEFAULT_RMS = 0.08
#: Piper re-synthesises at another speaking rate when the slot asks for more than this much stretch.
RATE_TOLERANCE = (0.85, 1.18)
RATE_LIMITS = (0.6, 1.6)
#: Below this share of its recognised words found in a ``.txt`` transcript, a chunk keeps its own words.
MIN_TRANSCRIPT_MATCH = 0.3
#: Stages whose seconds the ``resynth.chunk`` debug event reports.
STAGES = ("vad", "asr", "stress", "tts", "fit")


class ResynthEngine:
    name = "resynth"

    def __init__(self, settings, bundle: ResynthModels | None = None):
        t0 = time.perf_counter()
        self.settings = settings
        self.bundle = bundle or ResynthModels.load(settings)
        self.asr, self.tts, self.stresser = self.bundle.asr, self.bundle.tts, self.bundle.stresser
        self._models: list[dict] | None = None
        for v in settings.voice_list:  # a wrong name in VOICE_DAEMON_VOICES stops the worker at start
            self.tts.check_voice(v)
        log.get().info("resynth.ready", tts=self.tts.name, voice_model=self.tts.ref.path,
                       asr=self.asr.ref.path if self.asr else None, stress=self.stresser is not None,
                       seconds=round(time.perf_counter() - t0, 3))

    # --- interface ------------------------------------------------------------
    def voices(self) -> list[str]:
        return self.tts.speakers()

    def models(self) -> list[dict[str, Any]]:
        if self._models is None:
            self._models = self.bundle.describe()
        return self._models

    def process(self, audio: np.ndarray, sample_rate: int, *, voice: str,
                hints: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        speaker = self.tts.check_voice(voice)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        total = len(audio) / sample_rate
        seconds = dict.fromkeys(STAGES, 0.0)  # time spent in each stage, for one debug event
        phrases = self._phrases(audio, sample_rate, hints, seconds)
        out = np.zeros(len(audio), dtype=np.float32)
        starts, ends = [p["start"] for p in phrases], [p["end"] for p in phrases]
        done, turns = [], (hints or {}).get("speakers") or []
        voices = {t["voice"]: self.tts.check_voice(t["voice"]) for t in turns}
        for i, ph in enumerate(phrases):
            turn = turn_of(turns, ph["start"], ph["end"])
            done.append(self._render(ph, fitmod.room(starts, i, total, ends), audio, sample_rate,
                                     voices[turn["voice"]] if turn else speaker, out, seconds))
            if turn:
                done[-1].update(speaker=turn["speaker"], voice=turn["voice"])
        log.get().debug("resynth.chunk", audio_seconds=round(total, 3), phrases=len(done),
                        **{f"{stage}_seconds": round(t, 4) for stage, t in seconds.items()})
        return out, {"phrases": done, "models": self.models()}

    # --- stages ---------------------------------------------------------------
    def _phrases(self, audio: np.ndarray, rate: int, hints, seconds: dict[str, float]) -> list[dict]:
        """The chunk's phrases with slots: from a timed transcript, or recognised."""
        total = len(audio) / rate
        hints = hints or {}
        given = [p for p in hints.get("phrases", []) if clean(p.get("text", ""))]
        if hints.get("timed") or (given and is_timed(given)):
            # A timed transcript replaces recognition everywhere: a chunk without a cue is silent.
            out = []
            for p in sorted(given, key=lambda p: p["start"]):
                s, e = max(0.0, float(p["start"])), min(total, float(p["end"]))
                if s < total:
                    out.append({"start": s, "end": max(s, e), "text": clean(p["text"])})
            return out
        if self.asr is None:
            if given or not self._has_speech(audio, rate):
                return []
            raise InputError("(chunk)", "has speech but no timed transcript beside it, and speech recognition "
                                        "is off (VOICE_DAEMON_ASR_MODEL=none)", stage="engine")
        t0 = time.perf_counter()
        a16 = resample(audio, rate, ASR_RATE)
        regions = self.asr.regions(a16)
        t1 = time.perf_counter()
        phrases, lang = [], None
        if regions:  # no speech: no recognition (Whisper invents words in silence)
            words, lang = self.asr.words(a16)
            phrases = group_phrases(words, regions)
        seconds["vad"] += t1 - t0
        seconds["asr"] += time.perf_counter() - t1
        for ph in phrases:
            ph["lang"] = lang
        if given and phrases:  # an untimed .txt: keep the recognised slots, take the transcript's words
            phrases = self._take_transcript_words(phrases, " ".join(p["text"] for p in given))
        return phrases

    def _take_transcript_words(self, phrases: list[dict], transcript: str) -> list[dict]:
        lang = self.bundle.language_of(transcript, phrases[0].get("lang"))
        replaced, matched = replace_words(phrases, transcript, lang)
        recognised = sum(len(compared_words(p["text"], lang)) for p in phrases)
        share = matched / recognised if recognised else 1.0
        log.get().debug("resynth.transcript_aligned", phrases=len(phrases), matched_words=matched,
                        recognised_words=recognised)
        if share >= MIN_TRANSCRIPT_MATCH:
            return replaced
        # The text beside the audio is not what this chunk says: speak what was recognised, and say so.
        log.get().warning("resynth.transcript_mismatch", matched_words=matched, recognised_words=recognised,
                          needed=MIN_TRANSCRIPT_MATCH, first_words=" ".join(p["text"] for p in phrases)[:80])
        return [{**p, "words_from": "recognition (the transcript does not match)"} for p in phrases]

    def _has_speech(self, audio: np.ndarray, rate: int) -> bool:
        from daemon.engines.resynth.asr import speech_regions

        return bool(speech_regions(resample(audio, rate, ASR_RATE), self.settings.vad_threshold))

    def _render(self, ph: dict, space: float, src: np.ndarray, rate: int, speaker: str, out: np.ndarray,
                seconds: dict[str, float]) -> dict:
        s = self.settings
        text = ph["text"]
        t0 = time.perf_counter()
        lang = self.bundle.language_of(text, ph.get("lang"))
        written, stressed, spoken = self.bundle.prepare_text(text, lang)
        t1 = time.perf_counter()
        synth = self._synth(spoken, speaker, rate, lang=lang)
        slot = max(0.0, ph["end"] - ph["start"])
        length = 1.0
        if self.tts.supports_length and len(synth) and slot > 0:
            want = slot / (len(synth) / rate)
            if not RATE_TOLERANCE[0] <= want <= RATE_TOLERANCE[1]:
                lo, hi = max(RATE_LIMITS[0], s.min_stretch), min(RATE_LIMITS[1], s.max_stretch)
                length = float(np.clip(want, lo, hi))
                if length != 1.0:
                    synth = self._synth(spoken, speaker, rate, length, lang=lang)
        t2 = time.perf_counter()
        # MIN/MAX_STRETCH bound the whole change of rate: Piper's length scale times the stretch.
        fit = fitmod.plan_fit(len(synth) / rate, slot, space, s.min_stretch / length, s.max_stretch / length)
        a, b = int(round(ph["start"] * rate)), int(round(ph["end"] * rate))
        source = src[a:max(a, b)]
        pitch = prosody.contour_for(source, rate, synth, rate) if s.preserve_prosody and len(synth) else None
        seg = fitmod.stretch(synth, rate, fit.factor, pitch) if len(synth) else synth
        if s.preserve_prosody:
            seg = prosody.follow_envelope(seg, source, rate)
        seg = loudness.match(seg, source, rate, default_rms=DEFAULT_RMS)
        written_n = fitmod.place(out, seg, a, a + int(space * rate), int(fitmod.FADE * rate))
        t3 = time.perf_counter()
        seconds["stress"] += t1 - t0
        seconds["tts"] += t2 - t1
        seconds["fit"] += t3 - t2
        rec = {"start": round(ph["start"], 3), "end": round(ph["end"], 3), "text": text, "stressed": stressed,
               "stretch": round(fit.factor * length, 3), "spoken": round(written_n / rate, 3)}
        if written != text:
            rec["normalized"] = written
        if fit.truncated or written_n < len(seg) - int(0.005 * rate):
            rec["truncated"] = True
        for key in ("recognised", "words_from"):
            if key in ph:
                rec[key] = ph[key]
        return rec

    def _synth(self, text: str, speaker: str, rate: int, length: float = 1.0, *, lang: str | None = None) -> np.ndarray:
        audio = self.tts.synthesize(text, speaker, length=length, language=lang)
        return fitmod.trim_silence(resample(audio, self.tts.rate, rate), rate)
