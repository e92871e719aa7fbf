"""Where each setting comes from, and the service's own values for the commands an operator runs.

The service's folders are set by the installed unit's ``Environment=`` lines (and the env file):
`status`, `config` and `retry`, run from a shell, read those lines too, below the env files and
the environment, as systemd ranks them.  `convert` and the other user-level commands keep what they
fetch in the user's cache folder (``$XDG_CACHE_HOME/voice-daemon``), not the current folder.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from daemon.deploy.install import SYSTEM_UNIT_DIR, UNIT_NAME
from daemon.settings import PREFIX, Settings, env_files

#: Commands that look at the installed service (its folders), and those a user runs for themselves.
SERVICE_COMMANDS = ("status", "config", "retry")
USER_COMMANDS = ("convert", "models", "voices", "bench")


def unit_files(unit_dir: Path = SYSTEM_UNIT_DIR, name: str = UNIT_NAME) -> list[Path]:
    """The installed unit and its drop-ins, in the order systemd reads them."""
    unit = unit_dir / name
    if not unit.is_file():
        return []
    dropins = unit_dir / (name + ".d")
    return [unit, *sorted(dropins.glob("*.conf"))] if dropins.is_dir() else [unit]


def unit_environment(files: list[Path]) -> dict[str, tuple[str, Path]]:
    """``VOICE_DAEMON_*`` variables the ``Environment=`` lines of ``files`` set: name -> (value, file)."""
    env: dict[str, tuple[str, Path]] = {}
    for path in files:
        section = ""
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[Service]" and line.startswith("Environment="):
                value = line[len("Environment="):]
                if not value:  # an empty assignment resets the list (systemd.exec)
                    env.clear()
                    continue
                try:
                    items = shlex.split(value)
                except ValueError:
                    continue
                for item in items:
                    key, sep, val = item.partition("=")
                    if sep and key.upper().startswith(PREFIX):
                        env[key.upper()] = (val, path)
    return env


def user_cache_dir(environ=None) -> Path:
    """``$XDG_CACHE_HOME/voice-daemon``, or ``~/.cache/voice-daemon``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or ""
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "voice-daemon"


def layered(command: str, flags: dict[str, object], environ=None,
            unit: list[Path] | None = None) -> tuple[dict[str, object], dict[str, str]]:
    """(values to pass to ``load_settings``, the source of each ``VOICE_DAEMON_*`` variable).

    ``flags``: field -> value given on the command line.  Sources, weakest first: ``default``,
    ``unit FILE`` (service commands only), ``env file FILE``, ``environment``, ``flag``."""
    env = os.environ if environ is None else environ
    from dotenv import dotenv_values

    source = {PREFIX + name.upper(): "default" for name in Settings.model_fields}
    values: dict[str, object] = {}
    in_files: set[str] = set()
    files = env_files(env)
    set_in_env = {k.upper() for k in env if k.upper().startswith(PREFIX)}
    if command in SERVICE_COMMANDS:
        for var, (value, path) in unit_environment(unit_files() if unit is None else unit).items():
            field = var[len(PREFIX):].lower()
            if field in Settings.model_fields:
                values[field] = value
                source[var] = f"unit {path}"
    for path in files:
        for key in dotenv_values(path, encoding="utf-8"):
            if key.upper() in source:
                in_files.add(key.upper())
                source[key.upper()] = f"env file {path}"
    for var in set_in_env & set(source):
        source[var] = "environment"
    # the unit's value only where neither the files nor the environment set one
    values = {f: v for f, v in values.items() if PREFIX + f.upper() not in in_files | set_in_env}
    if command in USER_COMMANDS and source[PREFIX + "MODEL_DIR"] == "default":
        values["model_dir"] = user_cache_dir(env) / "models"
        source[PREFIX + "MODEL_DIR"] = "default for this user"
    for field in flags:
        source[PREFIX + field.upper()] = "flag"
    return values, source


def shown(value) -> str:
    """A value as an env file would hold it: ``true``/``false``, paths and numbers as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
