"""The spool's folders: refused when they overlap, created when missing, and the names kept there."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from daemon.settings import SettingsError
from daemon.spool.moves import NAME_MAX, fit

#: settings field -> the variable a user sets it with (for error messages)
FOLDERS = (("inbox", "VOICE_DAEMON_INBOX"), ("outbox", "VOICE_DAEMON_OUTBOX"),
           ("failed_dir", "VOICE_DAEMON_FAILED_DIR"), ("state_dir", "VOICE_DAEMON_STATE_DIR"))
ERROR_SUFFIX = ".error.json"


def check_folders(settings) -> None:
    """Refuse equal or nested folders: the daemon would eat its own output or spool."""
    paths = [(var, Path(getattr(settings, f)).absolute().resolve()) for f, var in FOLDERS]
    for i, (var_a, a) in enumerate(paths):
        for var_b, b in paths[i + 1:]:
            if a == b or a in b.parents or b in a.parents:
                raise SettingsError(var_a, a, f"allowed: a folder that neither contains nor lies inside "
                                              f"{var_b}={b} (the folders must not overlap)")


def ensure_dirs(settings, dirs: Iterable[Path]) -> None:
    """Refuse overlapping folders, then create ``dirs`` (SettingsError: exit 78)."""
    check_folders(settings)
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(_var_for(settings, d), d,
                                f"allowed: a folder this user can create ({exc.strerror})") from None


def _var_for(settings, path: Path) -> str:
    for f, var in FOLDERS:
        if Path(getattr(settings, f)).absolute() in (path, *path.parents):
            return var
    return "VOICE_DAEMON_STATE_DIR"


def folder_paths(settings) -> dict[str, str]:
    return {f: str(Path(getattr(settings, f)).absolute()) for f, _ in FOLDERS}


def error_report_path(dest: Path) -> Path:
    """NAME.error.json beside NAME; when that would pass the 255-byte name limit, NAME is cut
    and a short hash of the whole name keeps two long names' reports apart."""
    name = dest.name + ERROR_SUFFIX
    if len(os.fsencode(name)) > NAME_MAX:
        digest = hashlib.sha1(os.fsencode(dest.name)).hexdigest()[:8]
        name = fit(dest.name, f"…{digest}{ERROR_SUFFIX}")
    return dest.with_name(name)
