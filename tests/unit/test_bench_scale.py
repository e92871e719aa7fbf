"""The projection of a larger cluster from one Dask run (``daemon/bench/scale.py``)."""

from __future__ import annotations

import pytest

from daemon.bench import long, scale

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


def test_interleaved_runs_are_compared_pair_by_pair_and_by_their_medians():
    """Every run counts, not only the last of each mode (the long workload printed the last pair)."""
    runs = [{"mode": m, "wall_seconds": w} for m, w in
            (("pool", 10.0), ("dask", 20.0), ("pool", 12.0), ("dask", 12.0), ("pool", 14.0), ("dask", 7.0))]
    assert scale.side_by_side(runs, "pool", "dask") == \
        "3 interleaved pair(s)): median 1.00×; each pair 0.50×, 1.00×, 2.00×"
    assert scale.side_by_side(runs, "pool", "sequential") is None


def test_the_long_workloads_table_compares_every_pair():
    report = {"engine": "shift", "seconds": 1800, "format": "wav", "sample_rate": 24000, "cores": 2, "workers": 2,
              "load_average": [0.0, 0.0, 0.0],
              "results": [_long_run("pool", 15.0), _long_run("dask", 16.0), _long_run("pool", 14.0), _long_run("dask", 14.0)]}
    assert long.format_table(report).endswith(
        "dask vs pool (one job, 2 worker processes each, 2 interleaved pair(s)): median 0.94×; each pair 0.94×, 1.00×")


def test_the_long_workloads_speedup_over_one_core_compares_every_round():
    """Rounds of sequential,pool: each pool run against the sequential run of its own round."""
    report = {"engine": "shift", "seconds": 1800, "format": "wav", "sample_rate": 24000, "cores": 2, "workers": 2,
              "load_average": [0.0, 0.0, 0.0],
              "results": [_long_run("sequential", 106.2), _long_run("pool", 62.8), _long_run("sequential", 109.7), _long_run("pool", 68.1)]}
    assert ("pool (2 workers) vs sequential (one core, 2 interleaved pair(s)): median 1.61×; each pair 1.69×, 1.61× "
            "(limit 2×") in long.format_table(report)


def _long_run(mode: str, wall: float) -> dict:
    """One run of ``bench --workload long``, as much of it as its table reads."""
    return {"mode": mode, "workers": 2, "wall_seconds": wall, "stage_seconds": {"chunk": wall},
            "idle_worker_seconds": 0.0, "serial_fraction": 0.01, "critical_path_fraction": 0.05,
            "projected_speedup": {str(n): 1.0 for n in long.CORES}, "max_diff_from_sequential": 0.0}
