"""The resynth models of one worker, loaded once and shared by the engine and the text reader.

``ResynthModels.load(settings)`` builds the recogniser (unless ASR_MODEL=none), the
TTS backend and, where the voice reads stress marks, the stresser; then sets the
torch threads (silero-stress resets them on import), checks the voice and runs a
tiny warm-up so the first real phrase is not slower than the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from daemon.engines.resynth.asr import ASR_RATE
from daemon.engines.resynth.normalize import normalize
from daemon.engines.resynth.stress import Stresser, stress_needed
from daemon.engines.resynth.text import has_cyrillic
from daemon.engines.resynth.tts import load_backend
from daemon.models import registry
from daemon.models.loaders import set_threads


@dataclass(frozen=True)
class ResynthModels:
    settings: Any
    tts: Any                  # SileroTTS, PiperTTS, RHVoiceTTS, FestivalTTS or EspeakTTS
    stresser: Stresser | None
    asr: Any | None           # Recognizer, or None with VOICE_DAEMON_ASR_MODEL=none

    @classmethod
    def load(cls, settings) -> "ResynthModels":
        asr = None
        if registry.asr_ref(settings) is not None:
            from daemon.engines.resynth.asr import Recognizer

            asr = Recognizer(settings)  # first: a language/model mismatch fails before slow loads
        tts = load_backend(settings)
        stresser = Stresser(settings) if stress_needed(settings) else None
        set_threads(settings.torch_threads)
        models = cls(settings, tts, stresser, asr)
        models._warm_up()
        return models

    def _warm_up(self) -> None:
        word = "Привет." if self.tts.name in ("silero", "festival", "rhvoice") else "Hello."
        self.tts.synthesize(self.stresser(word) if self.stresser else word,
                            self.tts.check_voice(self.settings.voice))
        if self.asr is not None:
            self.asr.regions(np.zeros(ASR_RATE // 2, dtype=np.float32))

    def language_of(self, text: str, detected: str | None = None) -> str:
        """The language a phrase is read in: VOICE_DAEMON_LANGUAGE, or with ``auto`` the recognised
        one (else Russian for Cyrillic text, English otherwise)."""
        lang = self.settings.language.strip().lower()
        if lang != "auto":
            return lang
        return detected or ("ru" if has_cyrillic(text) else "en")

    def prepare_text(self, text: str, language: str) -> tuple[str, str, str]:
        """(normalised, stressed, spoken) for ``text``: numbers and abbreviations as words (Russian
        always, other languages where the voice skips digits), then stress marks where the stresser
        runs; ``spoken`` is what the voice is given."""
        written = normalize(text, language) if language == "ru" or not self.tts.reads_digits else text
        stressed = self.stresser(written) if self.stresser and has_cyrillic(written) else written
        return written, stressed, stressed if self.tts.reads_stress else written

    def describe(self, *, recognition: bool = True) -> list[dict[str, Any]]:
        """name, kind, path, sha256 of each model (for sidecars); ``recognition``: with the
        recogniser and its VAD, which reading a text aloud does not use."""
        refs = [self.tts.ref]
        if self.stresser:
            refs.append(self.stresser.ref)
        if self.asr and recognition:
            refs += [self.asr.ref, registry.vad_ref(self.settings)]
        return [{k: v for k, v in registry.describe(r).items() if k in ("name", "kind", "path", "sha256")}
                for r in refs]
