"""How the spool publishes and names files: publish without overwriting, free names within
NAME_MAX.  Moves are ``daemon.durable.move`` (a rename, or a durable copy across filesystems).
Each step is repeatable, so recovery can redo one a crash cut short."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def link_or_replace(tmp: Path, final: Path, overwrite: bool) -> None:
    """Publish atomically.  Without overwrite a hard link never replaces a file that
    appeared meanwhile; after a crash between link and unlink both names are one inode,
    which recovery recognises."""
    if overwrite:
        os.replace(tmp, final)
        return
    if not final.exists():
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise
        except OSError:  # filesystems without hard links (FAT, some network mounts)
            os.replace(tmp, final)
            return
    os.unlink(tmp)


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def unlink(p: Path) -> None:
    """Remove ``p`` if it is there (a path through a file is not there either)."""
    try:
        p.unlink()
    except (FileNotFoundError, NotADirectoryError):
        pass


#: the longest file name (one path component) in bytes on Linux filesystems
NAME_MAX = 255


def fit(stem: str, tail: str, limit: int = NAME_MAX) -> str:
    """``stem + tail`` within ``limit`` bytes: the stem is cut at a character boundary if need be
    (bytes that are not UTF-8 count one each and survive, as surrogate escapes)."""
    room = limit - len(os.fsencode(tail))
    raw = os.fsencode(stem)
    if len(raw) <= room:
        return stem + tail
    raw = raw[:max(0, room)]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":  # a character cut in half at the end
            raw = raw[:exc.start]
    return os.fsdecode(raw) + tail


def fits(rel: str) -> bool:
    """Every part of ``rel`` is within NAME_MAX bytes."""
    return all(len(os.fsencode(part)) <= NAME_MAX for part in rel.split("/"))


def blocking_file(root: Path, rel_dir: str) -> Path | None:
    """The first part of ``root/rel_dir`` that exists but is not a folder (a link counts as one
    that blocks: the spool never follows links), or None."""
    path = root
    for part in rel_dir.split("/") if rel_dir else []:
        path = path / part
        if os.path.lexists(path) and (os.path.islink(path) or not path.is_dir()):
            return path
    return None


def free_name(root: Path, rel: str, *, overwrite: bool, companion: Callable[[Path], Path] | None = None,
              unblock: bool = False) -> str:
    """``rel`` if free (or overwrite), else ``stem (1).ext``, ``stem (2).ext``…, every part within
    NAME_MAX.  ``companion(path)``: a file that goes with the name (its error report), which must
    be free too.  ``unblock``: a folder part taken by a file is renamed the same way."""
    rel_dir, _, name = rel.rpartition("/")
    if unblock:
        parts = []
        for part in rel_dir.split("/") if rel_dir else []:
            base = root.joinpath(*parts)
            if blocking_file(base, part) is not None:
                part = free_path(base / part, taken=lambda p: blocking_file(p.parent, p.name) is not None).name
            parts.append(part)
        rel_dir = "/".join(parts)
    rel = join(rel_dir, fit(Path(name).stem, Path(name).suffix))
    if overwrite:
        return rel
    return free_path(root / rel, companion).relative_to(root).as_posix()


def free_path(path: Path, companion: Callable[[Path], Path] | None = None, *,
              taken: Callable[[Path], bool] | None = None) -> Path:
    """``path``, or the first of ``stem (1).ext``, ``stem (2).ext``… that is free, within NAME_MAX."""
    def default_taken(p: Path) -> bool:
        return os.path.lexists(p) or (companion is not None and os.path.lexists(companion(p)))

    taken = taken or default_taken
    stem, ext = path.stem, path.suffix
    candidate = path.with_name(fit(stem, ext))
    n = 0
    while taken(candidate):
        n += 1
        candidate = path.with_name(fit(stem, f" ({n}){ext}"))
    return candidate


def join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name
