"""The projection of a larger cluster from one Dask run (``daemon/bench/scale.py``)."""

from __future__ import annotations

import pytest

from daemon.bench import scale

RUN = {"tasks": 100, "task_seconds_mean": 2.0, "gap_seconds_mean": 0.005, "audio_seconds": 1000.0,
       "parent_cpu_seconds": 3.0, "scheduler_cpu_seconds": 1.0}


def test_a_local_clusters_scheduler_is_taken_out_of_the_daemons_cpu():
    proj = scale.expect({**RUN, "scheduler_in_this_process": True}, workers=2)
    assert proj["scheduler_cpu_per_task"] == pytest.approx(0.01)
    assert proj["daemon_cpu_per_task"] == pytest.approx(0.02)  # (3 - 1) / 100


def test_a_scheduler_apart_leaves_the_daemons_cpu_whole():
    """With an external scheduler the daemon's process holds none of the scheduler's CPU: taking it
    out would read the daemon's own cost as nothing."""
    proj = scale.expect({**RUN, "parent_cpu_seconds": 0.8, "scheduler_in_this_process": False}, workers=2)
    assert proj["daemon_cpu_per_task"] == pytest.approx(0.008)
    assert proj["scheduler_cpu_per_task"] == pytest.approx(0.01)
    limits = {row["nodes"]: row["limit"] for row in proj["nodes"]}
    assert limits[8] == "workers" and limits[128] == "scheduler"  # 1/0.01 = 100 tasks/s < 1/0.008


def test_no_tasks_no_projection():
    assert scale.expect({**RUN, "tasks": 0}, workers=2) is None
