"""STATE_DIR/done/ keeps archived inputs for VOICE_DAEMON_DONE_RETENTION_DAYS, on real folders."""

from __future__ import annotations

import os
import time

from daemon.settings import Settings
from daemon.spool.retention import BATCH, LOOK_EVERY, DonePruner


def job(done, name: str, age_days: float, now: float):
    d = done / name
    d.mkdir(parents=True)
    (d / "input.wav").write_bytes(b"RIFF")
    t = now - age_days * 86400
    os.utime(d, (t, t))
    return d


def test_jobs_past_the_retention_go_the_others_stay(tmp_path):
    now = time.time()
    job(tmp_path, "old", 31, now)
    job(tmp_path, "older", 40, now)
    job(tmp_path, "young", 29, now)
    (tmp_path / ".deleting-cut-short").mkdir()  # a delete a crash interrupted
    mono = [100.0]
    pruner = DonePruner(clock=lambda: mono[0], wall=lambda: now)
    assert pruner.due()
    assert pruner.prune(tmp_path, 30) == ["older", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["young"]
    assert not pruner.due()
    mono[0] += LOOK_EVERY
    assert pruner.due()


def test_zero_keeps_everything_and_a_short_retention_looks_more_often(tmp_path):
    now = time.time()
    job(tmp_path, "ancient", 3650, now)
    mono = [0.0]
    pruner = DonePruner(clock=lambda: mono[0], wall=lambda: now)
    assert pruner.prune(tmp_path, 0) == [] and (tmp_path / "ancient").is_dir()
    pruner.prune(tmp_path, 8 / 86400)  # 8 s: looked at again in 2 s
    mono[0] = 2.0
    assert pruner.due()


def test_a_big_backlog_is_deleted_in_batches(tmp_path):
    now = time.time()
    for i in range(BATCH + 3):
        job(tmp_path, f"j{i:04d}", 100, now)
    mono = [0.0]
    pruner = DonePruner(clock=lambda: mono[0], wall=lambda: now)
    assert len(pruner.prune(tmp_path, 30)) == BATCH
    mono[0] = 1.0
    assert pruner.due() and len(pruner.prune(tmp_path, 30)) == 3


def test_missing_folder_and_the_default():
    assert DonePruner().prune(__import__("pathlib").Path("/nonexistent/done"), 30) == []
    assert Settings().done_retention_days == 30.0
