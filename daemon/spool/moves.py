"""How the spool moves files: rename (or a durable copy across filesystems), publish without
overwriting, and free names.  Each step is repeatable, so recovery can redo one a crash cut short."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from daemon import durable


def move(src: Path, dest: Path) -> None:
    """rename, or copy + unlink across filesystems (repeatable: a crash midway redoes it)."""
    try:
        os.rename(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        if os.path.islink(src):
            os.symlink(os.readlink(src), dest)
        else:
            durable.copy(src, dest)
        os.unlink(src)


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
    try:
        p.unlink()
    except FileNotFoundError:
        pass


def free_name(root: Path, rel: str, *, overwrite: bool, reserve_suffix: str = "") -> str:
    """``rel`` if free (or overwrite), else ``stem (1).ext``, ``stem (2).ext``…"""
    if overwrite:
        return rel
    return free_path(root / rel, reserve_suffix).relative_to(root).as_posix()


def free_path(path: Path, reserve_suffix: str = "") -> Path:
    def taken(p: Path) -> bool:
        return os.path.lexists(p) or (reserve_suffix and os.path.lexists(p.with_name(p.name + reserve_suffix)))

    if not taken(path):
        return path
    stem, ext = path.stem, path.suffix
    n = 1
    while taken(candidate := path.with_name(f"{stem} ({n}){ext}")):
        n += 1
    return candidate


def join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name
