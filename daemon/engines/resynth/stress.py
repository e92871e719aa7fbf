"""Russian stress marks and homographs with silero-stress (ships in its package).

``замок`` becomes ``з+амок`` (castle) or ``зам+ок`` (lock) from context; Silero
reads the ``+`` before a vowel as the stress.  Applied per sentence.
"""

from __future__ import annotations

from daemon import log
from daemon.engines.resynth import text as textmod


def stress_needed(settings) -> bool:
    """``auto``: only where the synthesiser reads the marks (Silero) and the text may be Russian."""
    if settings.stress == "on":
        return True
    if settings.stress == "off":
        return False
    from daemon.models.voices import tts_of

    return tts_of(settings) == "silero" and settings.language in ("ru", "auto")


class Stresser:
    def __init__(self, settings):
        from daemon.models.loaders import load_accentor

        self.model, self.ref = load_accentor(settings)

    def __call__(self, text: str) -> str:
        """``text`` with ``+`` before each stressed vowel; non-Russian text comes back unchanged."""
        if not textmod.has_cyrillic(text):
            return text
        out = []
        for sentence in textmod.sentences(text):
            try:
                out.append(self.model(sentence))
            except Exception as exc:  # a model hiccup on odd text should not lose the phrase
                log.get().warning("stress.failed", text=sentence[:80], error=f"{type(exc).__name__}: {exc}")
                out.append(sentence)
        return " ".join(out)
