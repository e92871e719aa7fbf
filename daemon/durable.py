"""Durable writes: the one way a file that must survive a crash is written.

    temp name in the same folder → write → fsync the file → rename over the target → fsync the folder

A reader sees the old file or the new one, never half of one; once the call returns, a power cut
cannot take the new contents back.  An exception before the rename (a failed encoder, a full disk,
Ctrl-C) removes the temp file and leaves the old file as it was.  Only a kill -9 can leave a temp
file behind, under a hidden name the next write to the same target reuses.

Every writer of such a file uses these helpers: the spool (manifests, error reports, every move of
a file, ``move``: a rename or a copy across filesystems), the pipeline (encoded outputs, sidecars), the model registry (downloads) and
``install-service`` (the unit and env files).  A leaf: imports nothing from the package, so every
layer may use it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator


def temp_path(path: Path, tag: str = "tmp", *, unique: bool = False) -> Path:
    """A hidden name beside ``path``, short whatever its length (NAME_MAX).

    Fixed per target by default, so a write after a crash reuses and replaces the
    leftover; ``unique`` for writers that may race each other on one target.
    """
    path = Path(path)
    key = hashlib.sha1(os.fsencode(path.name)).hexdigest()[:16]
    if unique:
        key += f"-{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".vd-{key}.{tag}")


@contextmanager
def replacing(path: Path, *, tmp: Path | None = None, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a producer to fill (an encoder, a copy); when the
    block ends, make it durable under ``path`` (``mode``: its permission bits)."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else temp_path(path)
    try:
        yield tmp
        if not os.path.islink(tmp):  # a copied symlink: nothing to sync, nor to chmod
            fsync_file(tmp)
            if mode is not None:
                os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    fsync_dir(path.parent)


@contextmanager
def open_replacing(path: Path, mode: str = "wb", *, tmp: Path | None = None, encoding: str | None = None,
                   perm: int | None = None) -> Iterator[IO]:
    """``open()`` for writing whose file replaces ``path`` durably when the block ends."""
    with replacing(path, tmp=tmp, mode=perm) as t, open(t, mode, encoding=encoding) as f:
        yield f


def write_bytes(path: Path, data: bytes, *, tmp: Path | None = None, mode: int | None = None) -> None:
    with open_replacing(path, "wb", tmp=tmp, perm=mode) as f:
        f.write(data)


def write_text(path: Path, text: str, *, encoding: str = "utf-8", tmp: Path | None = None,
               mode: int | None = None) -> None:
    with open_replacing(path, "w", tmp=tmp, encoding=encoding, perm=mode) as f:
        f.write(text)


def copy(src: Path, dest: Path, *, tmp: Path | None = None) -> None:
    """Copy ``src`` (a symlink stays a link) durably to ``dest`` (through ``tmp``, by default a
    hidden name of its own beside ``dest``)."""
    with replacing(dest, tmp=tmp if tmp is not None else temp_path(dest, "copy")) as t:
        shutil.copy2(src, t, follow_symlinks=False)


def move(src: Path, dest: Path, *, before_copy: Callable[[], None] | None = None,
         copy_tmp: Path | None = None) -> None:
    """Move ``src`` to ``dest``: a rename, or across filesystems a durable copy, then ``src`` unlinked.

    The one such move in the house.  A crash in the middle leaves ``src`` alone (the copy is
    still under a hidden temp name) or ``dest`` whole beside ``src``; the same call again finishes
    it either way.  ``before_copy``: called when a copy is needed, before it starts (the spool
    records that the file it claims is a copy); ``copy_tmp``: the copy's temp name (one its owner
    knows to clean up after a crash).  A full disk while copying is the destination's: the error
    names ``dest`` (shutil would name the source)."""
    try:
        os.rename(src, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    if before_copy is not None:
        before_copy()
    try:
        copy(src, dest, tmp=copy_tmp)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err.errno, err.strerror, os.fspath(dest)) from err
        raise
    os.unlink(src)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; a filesystem that cannot sync folders is let be."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
