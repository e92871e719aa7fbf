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
