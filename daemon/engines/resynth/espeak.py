"""espeak-ng as a TTS backend: any language it has, one short process per piece of text.

espeak-ng starts in a few milliseconds (measured: 67 ms wall for a sentence, most of it
speaking), so a call per phrase costs little and needs no process to keep alive.  Text
goes in on stdin as UTF-8; the WAV (22,050 Hz) comes back through a temp file.  The
speaking rate is native (``-s`` words per minute), so slots far from the spoken length are
re-synthesised at another rate, as with Piper.

The voice: VOICE_DAEMON_VOICE when it names an espeak-ng voice (``ru``, ``en-us``,
``Russian``…); otherwise the recognition language, or with ``LANGUAGE=auto`` the language
recognised in each chunk.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import weakref

import numpy as np

from daemon.engines.resynth import text as textmod
from daemon.engines.resynth.pieces import join_pieces
from daemon.errors import ModelError
from daemon.models import registry, system_tts
from daemon.settings import SILERO_SPEAKERS

ESPEAK_MAX_CHARS = 2000
WORDS_PER_MINUTE = 165
#: Voice by language when LANGUAGE=auto and the text's language is not known.
FALLBACK = ("ru", "en")
#: espeak-ng's female variant, added to the language for a female Silero name (the default ``kseniya``).
FEMALE = "+f3"


class EspeakTTS:
    name = "espeak"
    reads_stress = False     # silero-stress marks are stripped
    reads_digits = True      # espeak-ng reads numbers by each language's rules
    supports_length = True   # -s (words per minute) changes the speaking rate natively

    def __init__(self, settings):
        self.ref = registry.require(registry.espeak_ref(settings))
        self.exe = system_tts.espeak_command()
        self.variable = settings.env_name("voice")
        self.language = settings.language.strip().lower()
        self.rate = 22050
        self.max_chars = ESPEAK_MAX_CHARS
        self._dir = tempfile.mkdtemp(prefix="voice-daemon-espeak-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.check_voice(settings.voice)  # an unknown name stops the worker at start, with the valid ones

    def speakers(self) -> list[str]:
        return [code for code, _ in system_tts.espeak_voices()]

    def check_voice(self, voice: str) -> str:
        """An espeak-ng language code, with a ``+variant`` if one is named (``ru+f3``; ``+f3``: the
        variant in each phrase's language): a voice for each speaker; "" (by language) for a Silero
        speaker name, the default voice, with espeak-ng's female variant (``+f3``) for a female one."""
        if voice in SILERO_SPEAKERS or not voice:
            from daemon.models.voices import SILERO_SEX

            return FEMALE if SILERO_SEX.get(voice) == "female" else ""
        name, _, variant = voice.partition("+")
        code = system_tts.espeak_voice(name) if name else ""
        if code is None:
            raise ModelError(f"{self.variable}={voice}: not an espeak-ng voice; valid: a language code "
                             f"such as {', '.join(self.speakers()[:12])}… (`espeak-ng --voices` lists all)")
        if variant and variant.lower() not in _variants(self.exe):
            raise ModelError(f"{self.variable}={voice}: {variant!r} is not an espeak-ng variant; valid: "
                             f"{', '.join(sorted(_variants(self.exe))[:12])}… (`espeak-ng --voices=variant`)")
        return f"{code}+{_variants(self.exe)[variant.lower()]}" if variant else code

    def voice_for(self, voice: str, text: str, language: str | None) -> str:
        if voice and not voice.startswith("+"):
            return voice
        return self._language_voice(text, language) + voice

    def _language_voice(self, text: str, language: str | None) -> str:
        for lang in (self.language, language):
            if lang and lang != "auto" and system_tts.espeak_voice(lang):
                return system_tts.espeak_voice(lang)
        return FALLBACK[0] if textmod.has_cyrillic(text) else FALLBACK[1]

    def synthesize(self, text: str, voice: str, *, length: float = 1.0, language: str | None = None) -> np.ndarray:
        code = self.voice_for(voice, text, language)
        speed = max(80, min(450, int(round(WORDS_PER_MINUTE / max(length, 1e-3)))))
        parts = [self._piece(p, code, speed) for p in textmod.split_text(textmod.strip_stress(text), self.max_chars)]
        return join_pieces(parts, self.rate)

    def _piece(self, piece: str, code: str, speed: int) -> np.ndarray:
        import soundfile as sf

        path = os.path.join(self._dir, "piece.wav")
        proc = subprocess.run([self.exe, "-v", code, "-s", str(speed), "-b", "1", "--stdin", "-w", path],
                              input=piece.encode("utf-8"), capture_output=True, timeout=120)
        if proc.returncode != 0 or not os.path.exists(path):
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}) on {piece[:60]!r}: "
                               f"{proc.stderr.decode('utf-8', 'replace').strip()[:300]}")
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        os.unlink(path)
        self.rate = int(rate)
        return audio.mean(axis=1)

    def close(self) -> None:
        self._finalizer()


@functools.cache
def _variants(exe: str) -> dict[str, str]:
    """The variants espeak-ng knows (``f3``, ``m1``, ``Alex`` …) by their lower-case names."""
    try:
        out = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    names = [cols[-1].split("/")[-1] for line in out.splitlines()[1:]
             if (cols := line.split()) and cols[-1].startswith("!v/")]
    return {n.lower(): n for n in names}
