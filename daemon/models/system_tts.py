"""Synthesisers installed as Debian packages: Festival (with festvox-ru), espeak-ng and RHVoice.

Their "models" are voice folders on disk, found without starting any program
(``festival_voices``, ``rhvoice_voices``), or with one quick ``espeak-ng --voices`` call.
Light: the parent and ``voice-daemon models`` may use it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from daemon.settings import SILERO_SPEAKERS

FESTIVAL_VOICE_ROOTS = (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices"))
#: The Russian voice of the Debian package festvox-ru (male, unit selection from recordings).
FESTIVAL_RUSSIAN = "msu_ru_nsh_clunits"
FESTIVAL_PACKAGES = "festival festvox-ru"
ESPEAK_DATA = (Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data"), Path("/usr/lib/aarch64-linux-gnu/espeak-ng-data"),
               Path("/usr/share/espeak-ng-data"), Path("/usr/local/share/espeak-ng-data"))


def festival_voices() -> dict[str, Path]:
    """Installed Festival voices: name -> folder (``<root>/<language>/<voice>/festvox/<voice>.scm``)."""
    found = {}
    for root in FESTIVAL_VOICE_ROOTS:
        for scm in sorted(root.glob("*/*/festvox/*.scm")) if root.is_dir() else []:
            voice_dir = scm.parent.parent
            if scm.stem == voice_dir.name:
                found.setdefault(voice_dir.name, voice_dir)
    return found


def festival_voice(settings) -> str:
    """The Festival voice to use: VOICE_DAEMON_VOICE when it names one, else the Russian voice.

    A Silero speaker name (the default ``kseniya``) means "not chosen"; any other unknown name is
    kept, so that the backend can refuse it with the list of installed voices."""
    voice = settings.voice.strip()
    if voice in festival_voices() or voice not in SILERO_SPEAKERS:
        return voice
    return FESTIVAL_RUSSIAN


def festival_scm(voice: str) -> str:
    folder = festival_voices().get(voice)
    return str(folder / "festvox" / f"{voice}.scm") if folder else ""


def festival_command() -> str | None:
    return shutil.which("festival")


def espeak_command() -> str | None:
    return shutil.which("espeak-ng")


def espeak_data() -> Path | None:
    for d in ESPEAK_DATA:
        if (d / "phontab").is_file():
            return d
    return None


@functools.lru_cache(maxsize=1)
def espeak_voices() -> tuple[tuple[str, str], ...]:
    """(language code, voice name) of every espeak-ng voice, e.g. ("ru", "Russian")."""
    exe = espeak_command()
    if exe is None:
        return ()
    try:
        out = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    voices = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 4:
            voices.append((cols[1], cols[3]))
    return tuple(voices)


def espeak_voice(name: str) -> str | None:
    """The language code espeak-ng takes for ``name`` (a code such as ``ru`` or ``en-us``, or a voice
    name such as ``Russian``), or None."""
    low = name.strip().lower()
    for code, voice in espeak_voices():
        if low in (code.lower(), voice.lower()):
            return code
    return None


def espeak_dict(language: str) -> str:
    """The espeak-ng dictionary file of ``language`` (what `voice-daemon models` hashes)."""
    data = espeak_data()
    if data is None:
        return ""
    return str(data / f"{language.split('-')[0]}_dict")


# --- RHVoice (Debian non-free: librhvoice5, rhvoice-russian, rhvoice-english) -------------------

RHVOICE_LIBS = (Path("/usr/lib/x86_64-linux-gnu/libRHVoice.so.5"), Path("/usr/lib/aarch64-linux-gnu/libRHVoice.so.5"),
                Path("/usr/lib/libRHVoice.so.5"), Path("/usr/local/lib/libRHVoice.so"))
RHVOICE_CONFIG = Path("/etc/RHVoice")
RHVOICE_PACKAGES = "librhvoice5 rhvoice-russian rhvoice-english"
#: The exact fix on Debian bookworm (as root): the voices live in the non-free component.
RHVOICE_INSTALL = ("sed -i -E '/^Components:/{/ non-free( |$)/!s/$/ non-free/}' /etc/apt/sources.list.d/debian.sources"
                   f" && apt-get update && apt-get install -y {RHVOICE_PACKAGES}")
#: Each voice's licence, from Debian's copyright file (/usr/share/doc/rhvoice-russian/copyright):
#: the voices it names have their own; every other one falls under the package's LGPL-2.1+.
RHVOICE_LICENCES = {"aleksandr-hq": "CC-BY-SA-4.0",
                    **dict.fromkeys(("arina", "artemiy", "evgeniy-rus", "evgeniy-eng", "lyubov", "mikhail", "pavel",
                                     "tatiana", "victoria", "vitaliy", "yuriy"), "CC-BY-NC-ND-4.0")}
RHVOICE_PACKAGE_LICENCE = "LGPL-2.1+"
_LANGUAGE_CODES = {"russian": "ru", "english": "en", "ukrainian": "uk", "tatar": "tt", "kyrgyz": "ky",
                   "polish": "pl", "esperanto": "eo", "macedonian": "mk", "albanian": "sq",
                   "brazilian-portuguese": "pt", "georgian": "ka", "uzbek": "uz"}


@dataclass(frozen=True)
class RHVoiceInfo:
    name: str       # lower case, as RHVoice's voice folder and its voice profiles spell it
    language: str   # ru, en, …
    sex: str        # female, male
    folder: Path

    @property
    def licence(self) -> str:
        return RHVOICE_LICENCES.get(self.name, RHVOICE_PACKAGE_LICENCE)

    @property
    def weights(self) -> str:
        """The voice's largest data file at 24 kHz (what sidecars and `voice-daemon models` hash)."""
        files = [p for p in (self.folder / "24000").glob("*") if p.is_file()] or [self.folder / "voice.info"]
        return str(max(files, key=lambda p: p.stat().st_size))


def rhvoice_lib() -> str | None:
    for path in RHVOICE_LIBS:
        if path.is_file():
            return str(path)
    return None


def rhvoice_voices(data: Path) -> dict[str, RHVoiceInfo]:
    """The RHVoice voices installed under ``data`` (``voices/<name>/voice.info``), by name."""
    found = {}
    for info in sorted(Path(data).glob("voices/*/voice.info")):
        try:
            fields = dict(line.split("=", 1) for line in info.read_text("utf-8").splitlines() if "=" in line)
        except (OSError, ValueError):
            continue
        lang = fields.get("language", "").strip().lower()
        name = info.parent.name.lower()
        found[name] = RHVoiceInfo(name, _LANGUAGE_CODES.get(lang, lang[:2]), fields.get("gender", "").strip(),
                                  info.parent)
    return found


def rhvoice_problem(data: Path, variable: str) -> str | None:
    """Why RHVoice cannot speak here, with the command that fixes it; None when it can."""
    if rhvoice_lib() is None:
        return f"RHVoice is not installed (no libRHVoice.so.5): as root run `{RHVOICE_INSTALL}` (or `make sysdeps`)"
    if not rhvoice_voices(data):
        return (f"RHVoice has no voices in {data} ({variable}): as root run `{RHVOICE_INSTALL}` "
                f"(or `make sysdeps`), or set {variable} to RHVoice's data folder")
    return None
