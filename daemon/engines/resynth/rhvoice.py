"""RHVoice as a TTS backend: the library loaded once per worker, each phrase synthesised in-process.

RHVoice (Debian non-free: librhvoice5, rhvoice-russian, rhvoice-english) has Russian and English
voices of both sexes at 24 kHz and speaks 7 s in a few tenths of a second, so the worker calls its
C API directly (through ``rhvoice_wrapper``'s ctypes bindings, synchronously: no threads, no
processes) and collects raw 16-bit samples from the callback (RHVoice's own WAV output carries a
placeholder length).  The speaking rate is native (``relative_rate``), so slots far from the
spoken length are re-synthesised at another rate, as with Piper.

Any installed voice may be asked for on each call (a voice per phrase); a Silero speaker name
(the default ``kseniya``) means the default RHVoice voice of that speaker's sex.  Each voice is
paired with one of the same sex in the other language (``anna+slt``), so a Latin word in Russian
text is read in English rather than spelled out.
"""

from __future__ import annotations

import time

import numpy as np

from daemon import log
from daemon.engines.resynth import text as textmod
from daemon.engines.resynth.pieces import join_pieces
from daemon.errors import ModelError
from daemon.models import registry, system_tts, voices

RHVOICE_RATE = 24000
RHVOICE_MAX_CHARS = 1000
#: RHVoice's accepted relative rate (rhvoice_wrapper checks the same bounds).
RATE_BOUNDS = (0.25, 2.5)


class RHVoiceTTS:
    name = "rhvoice"
    reads_stress = False     # silero-stress marks are stripped; RHVoice has its own stress dictionary
    reads_digits = False     # numbers are written out first (case agreement in Russian)
    supports_length = True   # relative_rate changes the speaking rate natively

    def __init__(self, settings):
        self.settings = settings
        self.variable = settings.env_name("voice")
        if (problem := voices.problem(settings, "rhvoice")) is not None:
            raise ModelError(problem)
        self.installed = system_tts.rhvoice_voices(settings.rhvoice_data)
        self.voice = self.check_voice(settings.voice)
        self.ref = registry.ModelRef("tts", "rhvoice", str(self.installed[self.voice].folder),
                                     settings.env_name("tts"), weights=self.installed[self.voice].weights)
        self.rate = RHVOICE_RATE
        self.max_chars = RHVOICE_MAX_CHARS
        self._samples: list[np.ndarray] = []
        if self.voice != settings.voice.strip().lower():
            log.get().info("tts.voice_mapped", asked=settings.voice, voice=self.voice,
                           sex=self.installed[self.voice].sex, why="a Silero voice: RHVoice's voice of the same sex")
        t0 = time.perf_counter()
        self._engine = _start_engine(settings, self._play, self._set_rate)
        log.get().info("model.loaded", model="tts", kind="rhvoice", voice=self.voice,
                       licence=self.installed[self.voice].licence, path=self.ref.path,
                       seconds=round(time.perf_counter() - t0, 3))

    def speakers(self) -> list[str]:
        return sorted(self.installed)

    def check_voice(self, voice: str, language: str | None = None) -> str:
        name = voices.rhvoice_for(self.settings, voice, language)
        if name is None:
            raise ModelError(f"{self.variable}={voice}: not an installed RHVoice voice; "
                             f"valid: {', '.join(self.speakers())} (or a Silero name: its sex is kept)")
        return name

    def synthesize(self, text: str, voice: str, *, length: float = 1.0, language: str | None = None) -> np.ndarray:
        name = self.check_voice(voice, language)
        rate = float(np.clip(1.0 / max(length, 1e-3), *RATE_BOUNDS))
        params = self._engine.params.copy_with({"voice_profile": self._profile(name), "relative_rate": rate})
        pieces = textmod.split_text(textmod.strip_stress(text), self.max_chars)
        return join_pieces([self._piece(p, params) for p in pieces], self.rate)

    def _profile(self, name: str) -> list[str]:
        """``name`` and a voice of the same sex in the other language, when one is installed."""
        me = self.installed[name]
        other = "en" if me.language == "ru" else "ru"
        pair = [v for v in voices.RHVOICE_DEFAULTS.get((other, me.sex), ()) if v in self.installed]
        return [name, *pair[:1]]

    def _piece(self, piece: str, params) -> np.ndarray:
        self._samples = []
        self._engine.generate(piece, params)
        if not self._samples:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self._samples).astype(np.float32) / 32768.0

    def _play(self, samples, count, _user) -> int:
        self._samples.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 1

    def _set_rate(self, rate, _user) -> int:
        if rate != self.rate:  # every installed voice has 24 kHz data; say so if one has not
            log.get().warning("rhvoice.rate", rate=int(rate), expected=self.rate)
            self.rate = int(rate)
        return 1

    def close(self) -> None:
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None:
            engine.exterminate()


def _start_engine(settings, play, set_rate):
    from rhvoice_wrapper.rhvoice_proxy import Engine

    try:
        engine = Engine(system_tts.rhvoice_lib())
        engine.init(play, set_rate, data_path=str(settings.rhvoice_data), config_path=str(system_tts.RHVOICE_CONFIG))
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"RHVoice could not start ({exc}): as root run `{system_tts.RHVOICE_INSTALL}`") from exc
    return engine
