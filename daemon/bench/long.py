"""`voice-daemon bench --workload long`: one long recording, one core against every core.

One 30-minute file made from the shared recordings (WAV at 24 kHz; ``--format mp3``: MP3 at
128 kbit/s and 48 kHz, in and out) goes through

    sequential  every stage in one process pinned to one core (one worker's share)
    pool        the warm pool, one job
    dask        the Dask backend on a local cluster of as many worker processes, one job

each in a fresh process of its own.  Per mode the report gives the wall time, the seconds of
work in each stage, the worker-seconds spent idle while the job ran, and the **serial
fraction**: the share of the work that no number of cores could overlap, i.e. the job's
critical path (the longest chain of steps that wait on each other, from the measured times
of every step and what each waited for) divided by all its work.  Amdahl's law turns that
into the speedup to expect on 4, 8, 16 and 32 cores, printed beside the usual script's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

from daemon import bench
from daemon.bench.scale import side_by_side
from daemon.errors import UsageError

MODES = ("sequential", "pool", "dask")
SECONDS = 1800.0
FORMATS = {"wav": 24000, "mp3": 48000}  # the input's and the output's format -> sample rate
CORES = (4, 8, 16, 32)
USUAL = {2: "1.8×", 4: "3.2–3.5×", 8: "6–7×", 16: "10–12×", 32: "–"}  # what the usual script claims
BED_DB = 9.0  # --bed: the music this far below the speech (the bed's goals are measured at 6 to 12 dB)
STAGES = ("open", "decode", "vad", "lstm", "chunk", "stitch", "encode", "join", "check", "publish")


def cli_bench_long(settings, args, make_pool: Callable[..., Any], make_dask: Callable[..., Any]) -> int:
    fmt = getattr(args, "format", None) or "wav"
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: choose from {', '.join(FORMATS)}")
    modes = [m.strip() for m in (args.modes or ",".join(MODES)).split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise UsageError(f"the long workload runs the modes {', '.join(MODES)}")
    speech = bench.speech_folder(args)
    settings = settings.model_copy(update={"sample_rate": FORMATS[fmt]})
    bed = getattr(args, "bed", None)
    if bed:
        if not Path(bed).is_file():
            raise UsageError(f"--bed {bed}: no such file (a music recording to mix under the speech)")
        settings = settings.model_copy(update={"background": "keep"})
    seconds = getattr(args, "seconds", None)
    seconds = SECONDS if seconds is None else seconds
    if seconds <= 0:
        raise UsageError(f"--seconds {seconds:g}: the long workload needs a length above 0")
    runners = {"sequential": run_sequential, "pool": partial(run_pool, make_pool=make_pool),
               "dask": partial(run_pool, make_pool=make_dask)}
    with tempfile.TemporaryDirectory(prefix="voice-daemon-bench-long-") as tmp:
        files = [build_long(speech, Path(tmp) / "in", fmt, settings.sample_rate, seconds, bed=bed)]
        results = []
        for mode in modes:
            print(f"bench: running {mode} on one {seconds:g} s {fmt} file…", file=sys.stderr, flush=True)
            results.append(bench.measure(settings, mode, runners[mode], files, Path(tmp) / mode))
        bench._compare_outputs(results)
    return bench.write_report(make_report(settings, fmt, seconds, results), format_table, args.json)


def build_long(speech: Path, out_dir: Path, fmt: str, rate: int, seconds: float, bed: str | None = None) -> dict:
    """One file of ``seconds`` made from the recordings (with ``bed``, a music file looped under
    them ``BED_DB`` below); MP3 through LAME (ffmpeg) at 128 kbit/s."""
    wav = bench.build_workload(speech, out_dir, rate, [("long", seconds, 1)])[0]
    if bed:
        mix_bed(wav["path"], bed, rate)
    if fmt == "wav":
        return wav
    mp3 = Path(wav["path"]).with_suffix(".mp3")
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", wav["path"],
                    "-c:a", "libmp3lame", "-b:a", "128k", str(mp3)], check=True)
    os.unlink(wav["path"])
    return {"path": str(mp3), "seconds": wav["seconds"]}


def mix_bed(path: str, bed: str, rate: int) -> None:
    """``bed`` (any format, mono-mixed, looped) under the speech WAV ``path``, ``BED_DB`` below its level."""
    import numpy as np
    import soundfile as sf
    import soxr

    speech, _ = sf.read(path, dtype="float32")
    music, sr = sf.read(bed, dtype="float32", always_2d=True)
    music = soxr.resample(music.mean(axis=1), sr, rate).astype(np.float32)
    if not len(music) or not np.any(music):
        raise UsageError(f"--bed {bed}: holds no sound")
    music = np.resize(music, len(speech))
    level = np.sqrt(np.mean(speech.astype(np.float64) ** 2)) / np.sqrt(np.mean(music.astype(np.float64) ** 2))
    mixed = speech + music * level * 10 ** (-BED_DB / 20)
    sf.write(path, mixed / max(1.0, float(np.max(np.abs(mixed)))), rate, subtype="PCM_16")


# ---- the two modes, each in its own process ---------------------------------------------------------
def _one(submit, files, out_dir: Path, parallelism: int) -> tuple[dict, float]:
    from daemon.bench.timeline import Timeline
    from daemon.convert import convert_file

    f = files[0]
    (out_dir / "out").mkdir(parents=True, exist_ok=True)
    output = out_dir / "out" / Path(f["path"]).name
    started = time.monotonic()
    timeline = Timeline()
    fig = convert_file(submit, f["path"], output, out_dir / "work", group="long", parallelism=parallelism,
                       steps=timeline)
    return {**fig, "steps": timeline.steps}, time.monotonic() - started


def run_sequential(settings, files, out_dir) -> dict:
    from daemon.backends.inline import InlineRunner

    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cores[:1])
    started = time.monotonic()
    runner = InlineRunner(settings)
    bench._set_torch_threads(1)
    startup = time.monotonic() - started
    fig, wall = _one(runner.submit, files, out_dir, 1)
    return _summary(fig, wall, startup, 1, out_dir)


def run_pool(settings, files, out_dir, make_pool: Callable[..., Any]) -> dict:
    started = time.monotonic()
    pool = make_pool(settings, log_config={"fmt": settings.log_format, "level": bench._quiet(settings.log_level)}).start()
    try:
        startup = time.monotonic() - started
        fig, wall = _one(pool.submit, files, out_dir, settings.workers)
    finally:
        pool.close()
    return _summary(fig, wall, startup, settings.workers, out_dir)


def _summary(fig: dict, wall: float, startup: float, workers: int, out_dir: Path) -> dict:
    return {"workers": workers, "startup_seconds": round(startup, 3), "wall_seconds": round(wall, 3),
            "audio_seconds": fig["audio_seconds"], "chunks": fig["chunks"], "model_loads": workers,
            "outputs": [str(out_dir / "out" / Path(fig["output"]).name)], **analyse(fig["steps"], workers),
            "steps": fig["steps"]}


# ---- the job's critical path -------------------------------------------------------------------------
def analyse(steps: list[dict], workers: int) -> dict:
    """Work, serial fraction, critical path and idle worker time of one job's recorded steps.

    Each step ran from ``t0`` to ``t1`` after the steps in ``after``; a VAD segment also waited
    for the decoder to reach its frames (``decoded``; the decoder's progress is taken as even).
    A streamed encoder (``encoder_cpu`` on the join step) is a chain: after each stitch step it
    encodes what that step wrote, at its measured CPU time per frame; the wait for it at the
    end is its work, not the join's.

    The steps are replayed with as many cores as they can use (each starts as soon as what it
    waits for is done): the **serial fraction** is the share of the work that even then runs
    with nothing beside it (Amdahl's s; in the old pipeline, the prepare and finish stages that
    ran while the workers waited); the **critical path** is how long that replay takes, the
    bound no number of cores can beat.
    """
    by_id = {s["id"]: s for s in steps}
    dur = {s["id"]: max(0.0, s["t1"] - s["t0"]) for s in steps}
    decode = next(s for s in steps if s["stage"] == "decode")
    join = next((s for s in steps if s["stage"] == "join"), None)
    encoder_cpu = (join or {}).get("encoder_cpu") or 0.0
    if encoder_cpu:
        dur[join["id"]] = 0.0
    ef: dict[int, float] = {}  # earliest finish of each step with unlimited cores
    for sid in sorted(by_id):  # a step only ever waits on steps recorded before it
        s = by_id[sid]
        start = max((ef[a] for a in s["after"]), default=0.0)
        if "decoded" in s:
            start = max(start, ef[decode["after"][0]] + dur[decode["id"]] * s["decoded"] / decode["frames"])
        ef[sid] = start + dur[sid]
    spans = [(ef[s["id"]] - dur[s["id"]], ef[s["id"]]) for s in steps]
    if encoder_cpu:
        per_frame, done, sent = encoder_cpu / decode["frames"], 0.0, 0
        for s in (s for s in steps if s["stage"] == "stitch"):
            begin = max(done, ef[s["id"]])
            done = begin + per_frame * (s["frames"] - sent)
            spans.append((begin, done))
            sent = s["frames"]
    span = max(b for _, b in spans)
    work = sum(dur.values()) + encoder_cpu
    alone = _alone(spans)
    stages = {k: 0.0 for k in STAGES}
    for s in steps:
        stages[s["stage"]] = stages.get(s["stage"], 0.0) + dur[s["id"]]
    if encoder_cpu:
        stages["encode"] += encoder_cpu
    t_start, t_end = min(s["t0"] for s in steps), max(s["t1"] for s in steps)
    busy = sum(dur[s["id"]] for s in steps if s["where"] != "parent")
    serial = alone / work if work else 0.0
    return {
        "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
        "work_seconds": round(work, 3),
        "idle_worker_seconds": round(max(0.0, workers * (t_end - t_start) - busy), 3),
        "serial_fraction": round(serial, 4),
        "projected_speedup": {str(n): round(amdahl(serial, n), 2) for n in (2, *CORES)},
        "first_chunk_after_seconds": round(min(s["t0"] for s in steps if s["stage"] == "chunk") - t_start, 3),
        "critical_path_seconds": round(span, 3),
        "critical_path_fraction": round(span / work, 4) if work else 0.0,
    }


def _alone(spans: list[tuple[float, float]]) -> float:
    """Seconds during which exactly one of ``spans`` runs."""
    events = sorted([(a, 1) for a, b in spans if b > a] + [(b, -1) for a, b in spans if b > a])
    alone, running, last = 0.0, 0, 0.0
    for t, delta in events:
        if running == 1:
            alone += t - last
        running, last = running + delta, t
    return alone


def amdahl(serial: float, cores: int) -> float:
    return 1.0 / (serial + (1.0 - serial) / cores) if serial < 1.0 or cores == 1 else 1.0


# ---- the report --------------------------------------------------------------------------------------
def make_report(settings, fmt: str, seconds: float, results: list[dict]) -> dict:
    seq = next((r for r in results if r["mode"] == "sequential" and "error" not in r), None)
    for r in results:
        if "error" not in r and seq:
            r["speedup"] = round(seq["wall_seconds"] / r["wall_seconds"], 2)
    return {"workload": "long", "format": fmt, "seconds": seconds, "engine": settings.engine,
            "background": settings.background,
            "sample_rate": settings.sample_rate, "cores": bench.usable_cores(), "workers": settings.workers,
            "load_average": [round(x, 2) for x in os.getloadavg()], "usual_script": USUAL, "results": results}


def format_table(report: dict) -> str:
    lines = [f"engine {report['engine']}; background {report.get('background', 'auto')}; "
             f"one {report['seconds']:g} s {report['format']} file at "
             f"{report['sample_rate']} Hz; {report['cores']} cores; {report['workers']} workers; "
             f"load average {report['load_average']}", "",
             "| mode | wall s | " + " | ".join(f"{s} s" for s in STAGES) + " | idle worker-s | serial fraction | "
             + " | ".join(f"{n} cores" for n in CORES) + " | critical path |",
             "| --- | ---: |" + " ---: |" * (len(STAGES) + 3 + len(CORES))]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['mode']} | failed: {r['error']} |")
            continue
        st = r["stage_seconds"]
        proj = r["projected_speedup"]
        lines.append(f"| {r['mode']} | {r['wall_seconds']:.1f} | " + " | ".join(f"{st.get(s, 0):.2f}" for s in STAGES)
                     + f" | {r['idle_worker_seconds']:.1f} | {100 * r['serial_fraction']:.1f} % | "
                     + " | ".join(f"{proj[str(n)]:.1f}×" for n in CORES)
                     + f" | {100 * r['critical_path_fraction']:.1f} % |")
    lines.append("| the usual script | | " + " | " * (len(STAGES) + 1) + " | ".join(USUAL[n] for n in CORES) + " | |")
    lines.append("\nserial fraction: the work that runs with nothing beside it even on unlimited cores (Amdahl's "
                 "s, from which the projections); critical path: that replay's length over the work (1 / the most "
                 "any number of cores can give)")
    runs = [r for r in report["results"] if "error" not in r]
    by = {r["mode"]: r for r in runs}
    if "pool" in by and "sequential" in by:
        lines.append(f"\npool ({by['pool']['workers']} workers) vs sequential (one core, "
                     f"{side_by_side(runs, 'sequential', 'pool')} "
                     f"(limit {by['pool']['workers']}×; the usual script: {USUAL.get(by['pool']['workers'], '–')}); "
                     f"outputs differ by at most {by['pool'].get('max_diff_from_sequential', float('nan')):.2g}")
    if "pool" in by and "dask" in by:
        lines.append(f"dask vs pool (one job, {by['pool']['workers']} worker processes each, "
                     f"{side_by_side(runs, 'pool', 'dask')}")
    return "\n".join(lines)
