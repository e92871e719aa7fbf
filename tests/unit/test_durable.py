"""Durable writes: the new file appears whole or not at all, and a failed write leaves no trace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon import durable


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


class Recorder:
    """os with fsync / replace / open on folders recorded, in order."""

    def __init__(self, real):
        self._real, self.calls, self._dirs = real, [], {}

    def __getattr__(self, name):
        return getattr(self._real, name)

    def open(self, path, flags, *a):
        fd = self._real.open(path, flags, *a)
        if flags & self._real.O_DIRECTORY:
            self._dirs[fd] = Path(path)
        return fd

    def fsync(self, fd):
        what = self._dirs.get(fd) or Path(self._real.readlink(f"/proc/self/fd/{fd}"))
        self.calls.append(("fsync-dir" if fd in self._dirs else "fsync", what.name))
        return self._real.fsync(fd)

    def replace(self, src, dst):
        self.calls.append(("replace", Path(src).name, Path(dst).name))
        return self._real.replace(src, dst)


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder(os)
    monkeypatch.setattr(durable, "os", rec)
    return rec


def test_the_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, recorder):
    target = tmp_path / "out.json"
    durable.write_text(target, "{}")
    tmp = durable.temp_path(target).name
    assert recorder.calls == [("fsync", tmp), ("replace", tmp, "out.json"), ("fsync-dir", tmp_path.name)]
    assert target.read_text() == "{}" and listing(tmp_path) == ["out.json"]


def test_write_replaces_an_old_file_whole(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    durable.write_bytes(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new" and listing(tmp_path) == ["a.txt"]
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("failure", [RuntimeError("encoder failed"), KeyboardInterrupt()])
def test_a_failure_while_writing_keeps_the_old_file_and_leaves_no_temp(tmp_path, failure):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(type(failure)):
        with durable.open_replacing(target, "w") as f:
            f.write("half of the ne")
            raise failure
    assert target.read_text() == "old" and listing(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_failing_sync_or_rename_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, step):
    class Failing:
        def __getattr__(self, name):
            if name == step:
                def fail(*a):
                    raise OSError(5, "Input/output error")
                return fail
            return getattr(os, name)

    target = tmp_path / "a.txt"
    target.write_text("old")
    monkeypatch.setattr(durable, "os", Failing())
    with pytest.raises(OSError):
        durable.write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and listing(tmp_path) == ["a.txt"]


def test_a_producer_fills_the_temp_path_it_is_given(tmp_path):
    target = tmp_path / "song.mp3"
    chosen = tmp_path / ".song.enc.tmp.mp3"  # an encoder that picks the codec from the last extension
    with durable.replacing(target, tmp=chosen) as t:
        assert t == chosen
        t.write_bytes(b"ID3")
    assert target.read_bytes() == b"ID3" and listing(tmp_path) == ["song.mp3"]
    with pytest.raises(RuntimeError):
        with durable.replacing(target, tmp=chosen) as t:
            t.write_bytes(b"half")
            raise RuntimeError("encoder crashed")
    assert target.read_bytes() == b"ID3" and listing(tmp_path) == ["song.mp3"]


def test_a_leftover_temp_from_a_kill_is_reused(tmp_path):
    target = tmp_path / ("я" * 120 + ".json")  # the temp name stays short: no NAME_MAX trouble
    durable.temp_path(target).write_text("left by kill -9")
    durable.write_text(target, "whole")
    assert listing(tmp_path) == [target.name] and target.read_text() == "whole"
    assert durable.temp_path(target, unique=True) != durable.temp_path(target, unique=True)


def test_copy_keeps_symlinks_as_links(tmp_path):
    (tmp_path / "real.wav").write_bytes(b"RIFF")
    (tmp_path / "link.wav").symlink_to(tmp_path / "real.wav")
    (tmp_path / "out").mkdir()
    durable.copy(tmp_path / "link.wav", tmp_path / "out" / "link.wav")
    durable.copy(tmp_path / "real.wav", tmp_path / "out" / "real.wav")
    assert (tmp_path / "out" / "link.wav").is_symlink()
    assert (tmp_path / "out" / "real.wav").read_bytes() == b"RIFF"
    assert listing(tmp_path / "out") == ["link.wav", "real.wav"]


# --- every writer of a file that must survive goes through these helpers ---------------
def _publish(tmp_path: Path) -> Path:
    import numpy as np
    import soundfile as sf

    from daemon import pipeline

    wav = tmp_path / "work" / "output.wav"
    wav.parent.mkdir()
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000, subtype="FLOAT")
    (tmp_path / "out").mkdir()
    return pipeline.publish(str(wav), tmp_path / "out" / "talk.flac", 16000, frames=1600)[0]


def _sidecar(tmp_path: Path) -> Path:
    from daemon import pipeline

    return Path(pipeline._write_sidecar(tmp_path / "talk.flac", [{"start": 0.0, "end": 1.0, "text": "hi"}], []))


def _unit_file(tmp_path: Path) -> Path:
    from daemon.deploy import install

    path = tmp_path / "units" / "voice-daemon.service"
    install._write(path, "[Service]\n", mode=0o644)
    return path


def _download(tmp_path: Path) -> Path:
    from daemon.models import registry

    src = tmp_path / "served" / "v4_ru.pt"
    src.parent.mkdir()
    src.write_bytes(b"weights")
    return registry.download(src.as_uri(), tmp_path / "models" / "v4_ru.pt")


@pytest.mark.parametrize("writer", [_publish, _sidecar, _unit_file, _download])
def test_every_writer_syncs_renames_and_syncs_the_folder(tmp_path, recorder, writer):
    target = writer(tmp_path)
    assert target.is_file() and target.stat().st_size > 0
    fsync, replace, fsync_dir = recorder.calls[-3:]
    assert fsync[0] == "fsync" and replace == ("replace", fsync[1], target.name), recorder.calls
    assert fsync_dir == ("fsync-dir", target.parent.name)
    left = [n for n in listing(target.parent) if not n.endswith(".lock")]  # download's lock stays, as before
    assert left == [target.name]


# --- the one move: a rename, or a durable copy across filesystems -----------------------
OTHER_FS = Path("/dev/shm")


def _elsewhere(tmp_path: Path) -> Path:
    """A folder on another filesystem than ``tmp_path`` (a rename there fails with EXDEV)."""
    if not OTHER_FS.is_dir() or os.stat(OTHER_FS).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip(f"{OTHER_FS} is not another filesystem here")
    import tempfile

    return Path(tempfile.mkdtemp(dir=OTHER_FS, prefix="vd-test-"))


@pytest.fixture
def across(tmp_path):
    """(source folder, destination folder) on two filesystems."""
    import shutil

    dest = _elsewhere(tmp_path)
    yield tmp_path, dest
    shutil.rmtree(dest, ignore_errors=True)


def test_move_renames_within_a_filesystem(tmp_path):
    src, dest = tmp_path / "a.wav", tmp_path / "out" / "a.wav"
    dest.parent.mkdir()
    src.write_bytes(b"RIFF" * 1000)
    inode = src.stat().st_ino
    durable.move(src, dest, before_copy=lambda: pytest.fail("a rename needs no copy"))
    assert not src.exists() and dest.stat().st_ino == inode


def test_move_copies_across_filesystems_and_says_so_first(across):
    here, there = across
    src, dest, told = here / "a.wav", there / "a.wav", []
    src.write_bytes(b"RIFF" * 1000)
    durable.move(src, dest, before_copy=lambda: told.append(src.exists() and not dest.exists()))
    assert told == [True] and not src.exists() and dest.read_bytes() == b"RIFF" * 1000
    assert listing(there) == ["a.wav"]


CRASH = """
import os, sys
from pathlib import Path
from daemon import durable

src, dest, where = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real_fsync, real_unlink = durable.fsync_file, durable.os.unlink

def fsync_file(path):  # the copy's bytes are written under the temp name, not yet renamed
    if where == "copying":
        os.kill(os.getpid(), 9)
    real_fsync(path)

class Os:  # the copy is published, the source not yet unlinked
    def __getattr__(self, name):
        return getattr(os, name)
    def unlink(self, path):
        if where == "unlinking" and Path(path) == src:
            os.kill(os.getpid(), 9)
        real_unlink(path)

durable.fsync_file, durable.os = fsync_file, Os()
durable.move(src, dest)
"""


@pytest.mark.parametrize("where", ["copying", "unlinking"])
def test_a_crash_in_the_middle_of_a_move_leaves_the_old_state_or_the_new_and_the_move_again_finishes(
        across, where):
    import subprocess
    import sys

    here, there = across
    src, dest = here / "a.wav", there / "a.wav"
    data = os.urandom(3 * 2**20)
    src.write_bytes(data)
    dest.write_bytes(b"old")  # an older file under the name: replaced whole or not at all
    proc = subprocess.run([sys.executable, "-c", CRASH, str(src), str(dest), where], cwd=Path(__file__).parents[2])
    assert proc.returncode == -9, "the move was not cut short where the test meant"
    assert src.read_bytes() == data  # never half: the source stays until the copy is whole under its name
    assert dest.read_bytes() == (b"old" if where == "copying" else data)
    durable.move(src, dest)  # what recovery does: the same move again
    assert not src.exists() and dest.read_bytes() == data
    assert listing(there) == ["a.wav"]  # the dead copy's temp file was reused and is gone
