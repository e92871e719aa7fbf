"""The real watcher (watchdog observer + rescan + settle) on temporary folders.

Files arrive the ways users deliver them: cp, mv from a sibling folder, an
rsync-style hidden temp name renamed at the end, a folder moved in, a slow writer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

from daemon.settings import Settings
from daemon.watcher import Watcher
from helpers import wait_until


class Collector:
    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, cand):
        with self.lock:
            # the size on disk when handed over: a slow copy must be complete by then
            self.items.append((cand, cand.path.stat().st_size if cand.path.exists() else -1, time.monotonic()))

    def rels(self):
        with self.lock:
            return sorted(c.rel for c, _, _ in self.items)

    def by_rel(self, rel):
        with self.lock:
            return [(c, size, t) for c, size, t in self.items if c.rel == rel]


@pytest.fixture(params=["auto", "polling"])
def watching(request, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = Settings(inbox=inbox, outbox=tmp_path / "out", failed_dir=tmp_path / "failed",
                        state_dir=tmp_path / "state", settle_seconds=0.3, rescan_seconds=3600,
                        observer=request.param)
    got = Collector()
    w = Watcher(settings, got)
    w.start()
    try:
        yield w, got, inbox, tmp_path
    finally:
        w.stop()


def test_files_present_before_start_are_found(tmp_path, speech_dir):
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    shutil.copyfile(speech_dir / "silero_vad_ru_num.wav", inbox / "sub" / "early.wav")
    got = Collector()
    w = Watcher(Settings(inbox=inbox, settle_seconds=0.3, rescan_seconds=3600), got)
    w.start()
    try:
        wait_until(lambda: got.rels() == ["sub/early.wav"], 20)
    finally:
        w.stop()


def test_cp_mv_and_rsync_style_rename(watching, speech_dir):
    w, got, inbox, tmp = watching
    subprocess.run(["cp", str(speech_dir / "fw_jfk.flac"), str(inbox / "copied.flac")], check=True)
    sibling = tmp / "sibling"
    sibling.mkdir()
    shutil.copyfile(speech_dir / "silero_vad_test.mp3", sibling / "moved.mp3")
    subprocess.run(["mv", str(sibling / "moved.mp3"), str(inbox / "moved.mp3")], check=True)
    shutil.copyfile(speech_dir / "silero_vad_ru_num.wav", inbox / ".rsynced.wav.Xy12Zq")
    os.rename(inbox / ".rsynced.wav.Xy12Zq", inbox / "rsynced.wav")
    wait_until(lambda: got.rels() == ["copied.flac", "moved.mp3", "rsynced.wav"], 20, message=str(got.rels()))
    assert all(c.verdict == "ready" for c, _, _ in got.items)


def test_a_folder_moved_in_is_scanned(watching, speech_dir):
    w, got, inbox, tmp = watching
    batch = tmp / "batch"
    (batch / "deeper").mkdir(parents=True)
    shutil.copyfile(speech_dir / "silero_vad_ru_num.wav", batch / "one.wav")
    shutil.copyfile(speech_dir / "fw_hotwords.mp3", batch / "deeper" / "two.mp3")
    os.rename(batch, inbox / "batch")
    wait_until(lambda: got.rels() == ["batch/deeper/two.mp3", "batch/one.wav"], 20, message=str(got.rels()))


def test_a_slow_writer_is_not_taken_early(watching, speech_dir):
    w, got, inbox, _ = watching
    data = (speech_dir / "silero_vad_en.wav").read_bytes()
    piece = len(data) // 25
    target = inbox / "slow.wav"
    with open(target, "wb") as f:  # a header first, then the rest bit by bit: decodable all along
        for i in range(0, len(data), piece):
            f.write(data[i:i + piece])
            f.flush()
            time.sleep(0.1)  # the writer's pace (shorter than the settle time), not a wait on a condition
            assert got.by_rel("slow.wav") == [], "taken before the writer finished"
    finished = time.monotonic()
    wait_until(lambda: got.by_rel("slow.wav"), 20)
    (cand, size, at), = got.by_rel("slow.wav")
    assert size == len(data) and cand.size == len(data) and at >= finished


def test_ignored_names_and_bad_files(watching, speech_dir, tmp_path):
    w, got, inbox, _ = watching
    for name in ("a.wav.part", ".hidden.wav", "~lock.wav", "notes.pdf", "lone.txt", "x.mp3.crdownload"):
        (inbox / name).write_bytes(b"data")
    (inbox / "dir.wav").mkdir()
    (inbox / "fake.wav").write_bytes(b"this is not audio")
    (inbox / "empty.mp3").write_bytes(b"")
    (inbox / "link.wav").symlink_to(speech_dir / "fw_jfk.flac")
    shutil.copyfile(speech_dir / "silero_vad_ru_num.wav", inbox / "dir.wav" / "inside.wav")
    wait_until(lambda: len(got.rels()) == 4, 20, message=str(got.rels()))
    verdicts = {c.rel: c.verdict for c, _, _ in got.items}
    assert verdicts == {"fake.wav": "not_audio", "empty.mp3": "empty", "link.wav": "symlink",
                        "dir.wav/inside.wav": "ready"}


def test_the_rescan_finds_what_events_missed(tmp_path, speech_dir):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    got = Collector()
    # A polling observer with a long interval stands for a mount where events never come.
    w = Watcher(Settings(inbox=inbox, settle_seconds=0.2, rescan_seconds=0.5, observer="polling"), got)
    w._start_observer = lambda: None  # no observer at all: only the rescan can find the file
    w.start()
    try:
        shutil.copyfile(speech_dir / "silero_vad_ru_num.wav", inbox / "quiet.wav")
        wait_until(lambda: got.rels() == ["quiet.wav"], 20)
    finally:
        w.stop()


def test_a_finished_copy_is_taken_long_before_the_full_settle(tmp_path, speech_dir):
    """inotify's close-after-write (cp) and a rename in (rsync) let a whole file go after the short
    settle: with a full settle of 10 minutes, only that path can hand these over within the test."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    got = Collector()
    w = Watcher(Settings(inbox=inbox, settle_seconds=600, closed_settle_seconds=0.2, rescan_seconds=3600,
                         observer="inotify"), got)
    w.start()
    try:
        subprocess.run(["cp", str(speech_dir / "silero_vad_en.wav"), str(inbox / "copied.wav")], check=True)
        shutil.copyfile(speech_dir / "fw_jfk.flac", inbox / ".synced.flac.Qx81")
        os.rename(inbox / ".synced.flac.Qx81", inbox / "synced.flac")
        wait_until(lambda: got.rels() == ["copied.wav", "synced.flac"], 60, message=str(got.rels()))
        sizes = {c.rel: size for c, size, _ in got.items}
        assert sizes == {"copied.wav": (speech_dir / "silero_vad_en.wav").stat().st_size,
                         "synced.flac": (speech_dir / "fw_jfk.flac").stat().st_size}
    finally:
        w.stop()
