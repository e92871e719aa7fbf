"""Speech synthesis backends: Silero (torch.package) and Piper (onnxruntime); RHVoice, Festival and
espeak-ng live beside them (``rhvoice.py``, ``festival.py``, ``espeak.py``).

A backend turns text into mono float32 audio at its native rate.  Text goes to
the model in pieces below its per-call limit (``text.split_text``), joined by a
short pause (``pieces.join_pieces``).  ``speakers()`` lists the voices; ``check_voice`` raises a
ModelError listing them.
"""

from __future__ import annotations

import numpy as np

from daemon import log
from daemon.engines.resynth import text as textmod
from daemon.engines.resynth.pieces import join_pieces
from daemon.errors import ModelError
from daemon.settings import SILERO_RATES


class SileroTTS:
    name = "silero"
    reads_stress = True      # Silero reads "+" before a vowel as its stress
    reads_digits = False     # Silero skips digits (snakers4/silero-models#220)
    supports_length = False  # speaking rate is left to time-stretching

    def __init__(self, settings):
        from daemon.models.loaders import load_silero_tts

        self.model, self.ref = load_silero_tts(settings)
        self.variable = settings.env_name("voice")
        want = settings.sample_rate
        self.rate = want if want in SILERO_RATES else 48000
        self.max_chars = textmod.SILERO_MAX_CHARS

    def speakers(self) -> list[str]:
        return [str(s) for s in getattr(self.model, "speakers", [])]

    def check_voice(self, voice: str) -> str:
        names = self.speakers()
        if names and voice not in names:
            raise ModelError(f"{self.variable}={voice}: not a speaker of {self.ref.path}; "
                             f"valid: {', '.join(names)}")
        return voice

    def synthesize(self, text: str, voice: str, *, length: float = 1.0, language: str | None = None) -> np.ndarray:
        return join_pieces([self._piece(p, voice, self.max_chars) for p in textmod.split_text(text, self.max_chars)],
                           self.rate)

    def _piece(self, piece: str, voice: str, limit: int) -> np.ndarray:
        import torch

        try:
            with torch.inference_mode():
                audio = self.model.apply_tts(text=piece, speaker=voice, sample_rate=self.rate)
        except Exception as exc:
            # Silero fails on text over its per-call limit, which is lower for some
            # speakers than the documented one: halve the pieces and try again.
            smaller = max(1, min(limit, len(piece)) // 2)
            parts = textmod.split_text(piece, smaller)
            if smaller < 40 or len(parts) < 2:
                raise
            log.get().debug("tts.split_retry", chars=len(piece), limit=smaller, error=str(exc)[:200])
            return join_pieces([self._piece(p, voice, smaller) for p in parts], self.rate)
        return np.asarray(audio.detach().cpu().numpy() if hasattr(audio, "detach") else audio,
                          dtype=np.float32).reshape(-1)


class PiperTTS:
    name = "piper"
    reads_stress = False     # Piper phonemises with espeak-ng, which ignores stress marks
    reads_digits = True      # …and reads numbers by its own rules
    supports_length = True   # Piper's length_scale changes the speaking rate natively

    def __init__(self, settings):
        from daemon.models.loaders import load_piper

        self.voice, self.ref = load_piper(settings)
        self.variable = settings.env_name("voice")
        self.rate = int(self.voice.config.sample_rate)
        self.max_chars = textmod.PIPER_MAX_CHARS
        self._ids = dict(self.voice.config.speaker_id_map or {})
        self._logged_single = False

    def speakers(self) -> list[str]:
        if self._ids:
            return list(self._ids)
        return [_voice_label(self.ref.path)]

    def check_voice(self, voice: str) -> str:
        """Multi-speaker voices pick a speaker by name; a one-speaker voice ignores the name
        (VOICE_DAEMON_VOICE defaults to a Silero speaker, and PIPER_VOICE already chose the voice)."""
        if not self._ids:
            return self.speakers()[0]
        if voice not in self._ids:
            raise ModelError(f"{self.variable}={voice}: not a speaker of the Piper voice {self.ref.path}; "
                             f"valid: {', '.join(self._ids)}")
        return voice

    def synthesize(self, text: str, voice: str, *, length: float = 1.0, language: str | None = None) -> np.ndarray:
        from piper.config import SynthesisConfig

        base = self.voice.config.length_scale or 1.0
        # No noise: the voice's random draws come from one generator per onnxruntime session that
        # no seed resets, so with noise a phrase would sound different after other jobs (or on
        # another worker).  Without it the same text always gives the same samples.
        cfg = SynthesisConfig(speaker_id=self._ids.get(voice), length_scale=base * length,
                              noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
        parts = []
        for piece in textmod.split_text(textmod.strip_stress(text), self.max_chars):
            for chunk in self.voice.synthesize(piece, cfg):
                parts.append(np.asarray(chunk.audio_float_array, dtype=np.float32))
        return join_pieces(parts, self.rate)


def _voice_label(path: str) -> str:
    from pathlib import Path

    stem = Path(path).name.removesuffix(".onnx")
    return stem or "piper"


def load_backend(settings):
    """The synthesiser VOICE_DAEMON_TTS names, or the one ``auto`` picks here (logged as ``tts.chosen``)."""
    from daemon.models.voices import choose

    tts, why = choose(settings)
    log.get().info("tts.chosen", tts=tts, why=why, voice=settings.voice)
    if tts == "rhvoice":
        from daemon.engines.resynth.rhvoice import RHVoiceTTS

        return RHVoiceTTS(settings)
    if tts == "festival":
        from daemon.engines.resynth.festival import FestivalTTS

        return FestivalTTS(settings)
    if tts == "espeak":
        from daemon.engines.resynth.espeak import EspeakTTS

        return EspeakTTS(settings)
    return PiperTTS(settings) if tts == "piper" else SileroTTS(settings)
