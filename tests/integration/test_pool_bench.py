"""`voice-daemon bench` on a tiny workload: every mode runs, figures are sane, outputs agree.

Real engine (shift) and real Silero VAD in real processes; only the workload is
small.  No timing is asserted: figures on a shared machine are not stable.
"""

from __future__ import annotations

import argparse
import json
import os

import pytest

from daemon import app, bench
from daemon.settings import load_settings


def test_tree_rss_counts_this_process():
    assert bench.tree_rss(os.getpid()) > 10 * 2**20


@pytest.mark.slow
def test_bench_runs_every_mode_and_reports(tmp_path, monkeypatch, capsys, speech_dir):
    monkeypatch.setitem(bench.WORKLOADS, "quick", [("tiny", 8.0, 2), ("longer", 20.0, 1)])
    settings = load_settings(workers=2, sample_rate=16000, chunk_seconds=5.0, log_level="warning")
    out = tmp_path / "bench.json"
    args = argparse.Namespace(modes=",".join(bench.MODES), quick=True, json=str(out), speech_dir=str(speech_dir))

    assert app.cli_bench(settings, args) == 0

    report = json.loads(out.read_text())
    table = capsys.readouterr().out
    assert report["engine"] == "shift" and report["cores"] >= 1 and report["audio_seconds"] == 36.0
    by = {r["mode"]: r for r in report["results"]}
    assert list(by) == ["sequential", "sequential-unpinned", "threads", "reload", "pool", "dask"]
    for r in by.values():
        assert "error" not in r, r
        assert r["audio_seconds"] == pytest.approx(36.0, abs=0.01)
        assert r["wall_seconds"] > 0 and r["peak_rss_mb"] > 50 and r["speedup"] > 0
        assert r["max_diff_from_sequential"] <= 1e-4  # same chunks, same deterministic engine
        assert f"| {r['mode']} |" in table
    assert by["sequential"]["model_loads"] == 1 and by["sequential-unpinned"]["model_loads"] == 1
    assert by["threads"]["model_loads"] == 2 and by["pool"]["model_loads"] == 2
    # dask on a local cluster passes paths: its 2 workers, no third model-holding process on this host
    assert by["dask"]["model_loads"] == 2
    chunks = by["pool"]["chunks"]
    # every task loads the models: per file open, decode, a VAD segment and an LSTM pass at least, and the chunks
    assert chunks >= 3 and by["reload"]["model_loads"] >= chunks + 4 * 3
    assert "pool vs sequential" in table and "pool vs reload" in table and "pool vs sequential-unpinned" in table
    assert "dask vs pool" in table


@pytest.mark.slow
def test_bench_long_runs_both_modes_and_accounts_for_the_stages(tmp_path, monkeypatch, capsys, speech_dir):

    settings = load_settings(workers=2, chunk_seconds=10.0, log_level="warning")
    out = tmp_path / "long.json"
    args = argparse.Namespace(modes="sequential,pool", json=str(out), workload="long", format="mp3", seconds=150.0,
                              speech_dir=str(speech_dir))

    assert app.cli_bench(settings, args) == 0

    report = json.loads(out.read_text())
    table = capsys.readouterr().out
    assert report["workload"] == "long" and report["format"] == "mp3" and report["sample_rate"] == 48000
    by = {r["mode"]: r for r in report["results"]}
    assert list(by) == ["sequential", "pool"]
    for r in by.values():
        assert "error" not in r, r
        assert r["audio_seconds"] == pytest.approx(150.0, abs=0.01) and r["chunks"] >= 15
        st = r["stage_seconds"]
        assert all(st[k] > 0 for k in ("decode", "vad", "lstm", "chunk", "encode", "join"))
        assert r["work_seconds"] == pytest.approx(sum(st.values()), rel=1e-3)
        assert 0 < r["serial_fraction"] <= r["critical_path_fraction"] < 1
        proj = [r["projected_speedup"][str(n)] for n in (2, 4, 8, 16, 32)]
        assert proj == sorted(proj) and proj[-1] < 1 / r["serial_fraction"]
        assert r["idle_worker_seconds"] >= 0
        assert f"| {r['mode']} |" in table
    assert by["pool"]["max_diff_from_sequential"] == 0  # the same bytes, whatever order chunks finished in
    assert "the usual script" in table and "10–12×" in table and "pool (2 workers) vs sequential" in table
