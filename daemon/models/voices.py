"""Which synthesisers and voices are usable here, and which one ``VOICE_DAEMON_TTS=auto`` picks.

Light on purpose (file checks only, no model library): the parent, `voice-daemon voices`,
`config` and every worker ask it.  ``auto`` takes the best synthesiser usable now for the
recognition language: Silero where its model file is present, then RHVoice, Festival and
espeak-ng for Russian; Piper, RHVoice and espeak-ng for English.  A Silero speaker name (the
default voice ``kseniya``) keeps its sex on the offline voices: ``kseniya`` becomes a female
RHVoice voice.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.errors import ModelError
from daemon.models import registry, system_tts
from daemon.settings import SILERO_SPEAKERS

SILERO_SEX = {"aidar": "male", "baya": "female", "kseniya": "female", "xenia": "female", "eugene": "male"}
assert set(SILERO_SEX) == set(SILERO_SPEAKERS)
SILERO_LICENCE = "CC-BY-NC-SA-4.0"
#: What ``auto`` tries, best first, by recognition language (any other language: RHVoice, espeak-ng).
AUTO_ORDER = {"ru": ("silero", "rhvoice", "festival", "espeak"), "en": ("piper", "rhvoice", "espeak")}
AUTO_OTHER = ("rhvoice", "espeak")
#: RHVoice's voice for a Silero name of each sex: the freely licensed ones first (LGPL-2.1+; see
#: system_tts.RHVOICE_LICENCES), the best round-trip WER first (docs/voices.md, tools/voices_table.py).
RHVOICE_DEFAULTS = {("ru", "female"): ("anna", "elena", "irina"), ("ru", "male"): ("aleksandr", "aleksandr-hq"),
                    ("en", "female"): ("slt", "clb"), ("en", "male"): ("bdl", "alan")}


@dataclass(frozen=True)
class Voice:
    name: str
    tts: str
    language: str
    sex: str
    licence: str


def problem(settings, tts: str) -> str | None:
    """Why ``tts`` cannot speak here, with what fixes it; None when it can."""
    if tts == "silero":
        ref = registry.silero_ref(settings)
        return None if ref.present else (f"no Silero model file at {ref.path} ({ref.variable}; "
                                          "`voice-daemon models --fetch` where a network exists)")
    if tts == "rhvoice":
        return system_tts.rhvoice_problem(settings.rhvoice_data, settings.env_name("rhvoice_data"))
    if tts == "festival":
        ok = system_tts.festival_command() and system_tts.festival_voices()
        return None if ok else f"Festival is not installed: as root run `apt-get install -y {system_tts.FESTIVAL_PACKAGES}`"
    if tts == "espeak":
        ok = system_tts.espeak_command() and system_tts.espeak_data()
        return None if ok else "espeak-ng is not installed: as root run `apt-get install -y espeak-ng`"
    try:
        registry.piper_speakers(settings)
    except ModelError as exc:
        return str(exc)
    return None


def covers(settings, tts: str, language: str) -> bool:
    """Whether ``tts`` has a voice for ``language`` (``auto``: Russian or English)."""
    langs = ("ru", "en") if language == "auto" else (language,)
    if tts == "rhvoice":
        have = {v.language for v in system_tts.rhvoice_voices(settings.rhvoice_data).values()}
        return bool(have & set(langs))
    return {"silero": "ru", "festival": "ru", "piper": "en"}.get(tts, langs[0]) in langs


def choose(settings) -> tuple[str, str]:
    """(synthesiser, why): the one VOICE_DAEMON_TTS names, or what ``auto`` picks here."""
    if settings.tts != "auto":
        return settings.tts, f"{settings.env_name('tts')}={settings.tts}"
    lang = settings.language.strip().lower()
    order = AUTO_ORDER.get(lang, AUTO_OTHER)
    passed = []
    for tts in order:
        if covers(settings, tts, lang) and problem(settings, tts) is None:
            why = f"auto, language {lang}: the best usable here"
            return tts, why + (f" ({', '.join(passed)} not usable)" if passed else "")
        passed.append(tts)
    return order[-1], f"auto, language {lang}: none usable here"  # its loader says what to install


def tts_of(settings) -> str:
    return choose(settings)[0]


def rhvoice_for(settings, voice: str, language: str | None = None) -> str | None:
    """The RHVoice voice that speaks ``voice``: an installed RHVoice name as it is, a Silero name
    as the default RHVoice voice of its sex in ``language``; None if neither."""
    installed = system_tts.rhvoice_voices(settings.rhvoice_data)
    name = voice.strip().lower()
    if name in installed:
        return name
    if name not in SILERO_SEX:
        return None
    lang = (language or settings.language).strip().lower()
    lang = lang if lang in ("ru", "en") else "ru"
    sex = SILERO_SEX[name]
    prefer = [v for v in RHVOICE_DEFAULTS.get((lang, sex), ()) if v in installed]
    same = [v.name for v in installed.values() if v.language == lang and v.sex == sex]
    any_lang = [v.name for v in installed.values() if v.language == lang]
    return (prefer or same or any_lang or sorted(installed) or [None])[0]


def usable(settings, tts: str) -> list[Voice]:
    """The voices of ``tts`` usable now (none when it is not), without loading a model."""
    if problem(settings, tts) is not None:
        return []
    if tts == "silero":
        return [Voice(n, "silero", "ru", SILERO_SEX[n], SILERO_LICENCE) for n in SILERO_SPEAKERS]
    if tts == "rhvoice":
        return [Voice(v.name, "rhvoice", v.language, v.sex, v.licence)
                for v in system_tts.rhvoice_voices(settings.rhvoice_data).values()]
    if tts == "festival":
        return [Voice(n, "festival", "ru" if "_ru_" in n else "", "male" if n == system_tts.FESTIVAL_RUSSIAN else "",
                      "BSD-like" if n == system_tts.FESTIVAL_RUSSIAN else "") for n in sorted(system_tts.festival_voices())]
    if tts == "espeak":
        return [Voice(code, "espeak", code, "male", "GPL-3.0+") for code, _ in system_tts.espeak_voices()]
    return [Voice(n, "piper", "en", "", _piper_licence(settings)) for n in registry.piper_speakers(settings)]


def _piper_licence(settings) -> str:
    import importlib.metadata

    try:
        meta = importlib.metadata.metadata(settings.piper_voice.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return ""
    return meta.get("License-Expression") or meta.get("License") or ""


def folder_names(settings) -> frozenset[str]:
    """The voices an inbox subfolder may name with the synthesiser in use: those it has now."""
    return frozenset(v.name for v in usable(settings, tts_of(settings)))
