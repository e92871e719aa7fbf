"""Synthesisers installed as Debian packages: Festival (with festvox-ru) and espeak-ng.

Their "models" are voice folders on disk, found without starting either program
(``festival_voices``), or with one quick ``espeak-ng --voices`` call.  Light: the
parent and ``voice-daemon models`` may use it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
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
