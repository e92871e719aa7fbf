"""Read a text aloud (a ``.txt`` input with no audio): sentences with pauses, no timeline."""

from __future__ import annotations

import re

import numpy as np

from daemon.engines.resynth.fit import match_level, trim_silence
from daemon.engines.resynth.text import has_cyrillic, sentences
from daemon.models import registry

SENTENCE_PAUSE = 0.4
PARAGRAPH_PAUSE = 0.8
EDGE = 0.2
LEVEL_RMS = 0.08

# (tts, stresser) per model configuration, so a warm worker reuses its engine's models.
_STACKS: dict[tuple, tuple] = {}


def _key(settings) -> tuple:
    return (settings.tts, settings.tts_model, settings.tts_model_sha256, settings.piper_voice,
            settings.stress, settings.language, settings.sample_rate, str(settings.model_dir))


def remember(settings, tts, stresser) -> None:
    _STACKS[_key(settings)] = (tts, stresser)


def _stack(settings):
    key = _key(settings)
    if key not in _STACKS:
        from daemon.engines.resynth.stress import Stresser, stress_needed
        from daemon.engines.resynth.tts import load_backend
        from daemon.models.loaders import _set_threads

        tts = load_backend(settings)
        stresser = Stresser(settings) if stress_needed(settings) else None
        _set_threads(settings.torch_threads)
        _STACKS[key] = (tts, stresser)
    return _STACKS[key]


def synthesize_text(text: str, settings, voice: str | None = None) -> tuple[np.ndarray, dict]:
    """Mono float32 at ``settings.sample_rate`` and ``{"phrases": [...], "models": [...]}``."""
    from daemon.engines.resynth.engine import resample

    tts, stresser = _stack(settings)
    speaker = tts.check_voice(voice or settings.voice)
    rate = settings.sample_rate
    parts: list[np.ndarray] = [np.zeros(int(EDGE * rate), np.float32)]
    pos = len(parts[0])
    phrases = []
    for p_i, para in enumerate(p for p in re.split(r"\n\s*\n", text) if p.strip()):
        for s_i, sentence in enumerate(sentences(para)):
            if phrases:
                gap = np.zeros(int((PARAGRAPH_PAUSE if s_i == 0 else SENTENCE_PAUSE) * rate), np.float32)
                parts.append(gap)
                pos += len(gap)
            stressed = stresser(sentence) if stresser and has_cyrillic(sentence) else sentence
            audio = tts.synthesize(stressed if tts.reads_stress else sentence, speaker)
            audio = match_level(trim_silence(resample(audio, tts.rate, rate), rate), LEVEL_RMS)
            phrases.append({"start": round(pos / rate, 3), "end": round((pos + len(audio)) / rate, 3),
                            "text": sentence, "stressed": stressed, "stretch": 1.0})
            parts.append(audio)
            pos += len(audio)
    parts.append(np.zeros(int(EDGE * rate), np.float32))
    refs = [tts.ref] + ([stresser.ref] if stresser else [])
    models = [{k: v for k, v in registry.describe(r).items() if k in ("name", "kind", "path", "sha256")}
              for r in refs]
    return np.concatenate(parts).astype(np.float32), {"phrases": phrases, "models": models}
