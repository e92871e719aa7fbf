"""Read a text aloud (a ``.txt`` input with no audio): sentences with pauses, no timeline."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from daemon.audio.resample import resample
from daemon.engines.resynth.fit import trim_silence
from daemon.engines.resynth.loudness import to_rms
from daemon.engines.resynth.text import sentences

if TYPE_CHECKING:
    from daemon.engines.resynth.bundle import ResynthModels

SENTENCE_PAUSE = 0.4
PARAGRAPH_PAUSE = 0.8
EDGE = 0.2
LEVEL_RMS = 0.08


def synthesize_text(text: str, models: "ResynthModels", voice: str | None = None) -> tuple[np.ndarray, dict]:
    """Mono float32 at the settings' sample rate and ``{"phrases": [...], "models": [...]}``, spoken
    with the worker's ``models`` (the ones its resynth engine uses)."""
    tts, settings = models.tts, models.settings
    speaker = tts.check_voice(voice or settings.voice)
    rate = settings.sample_rate
    parts: list[np.ndarray] = [np.zeros(int(EDGE * rate), np.float32)]
    pos = len(parts[0])
    phrases = []
    for para in (p for p in re.split(r"\n\s*\n", text) if p.strip()):
        for s_i, sentence in enumerate(sentences(para)):
            if phrases:
                gap = np.zeros(int((PARAGRAPH_PAUSE if s_i == 0 else SENTENCE_PAUSE) * rate), np.float32)
                parts.append(gap)
                pos += len(gap)
            lang = models.language_of(sentence)
            written, stressed, spoken = models.prepare_text(sentence, lang)
            audio = tts.synthesize(spoken, speaker, language=lang)
            audio = to_rms(trim_silence(resample(audio, tts.rate, rate), rate), rate, LEVEL_RMS)
            phrases.append({"start": round(pos / rate, 3), "end": round((pos + len(audio)) / rate, 3),
                            "text": sentence, "stressed": stressed, "stretch": 1.0,
                            **({"normalized": written} if written != sentence else {})})
            parts.append(audio)
            pos += len(audio)
    parts.append(np.zeros(int(EDGE * rate), np.float32))
    return np.concatenate(parts).astype(np.float32), {"phrases": phrases,
                                                      "models": models.describe(recognition=False)}
