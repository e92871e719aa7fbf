"""`voice-daemon bench`: one fixed workload through the ways of running it.

    sequential  one process, models loaded once, one chunk after another, on one worker's cores
    sequential-unpinned  the same, free to use every core (libraries' own threads included)
    threads     a thread pool in one process, one model instance per thread
    reload      a spawn ProcessPoolExecutor that loads the models inside every task (the usual fix)
    pool        the warm WorkerPool
    dask        the Dask backend on a local cluster of as many single-thread worker processes, or on
                VOICE_DAEMON_DASK_SCHEDULER's cluster where one is given

The workload is made from the shared speech recordings (eight one-minute files
and one ten-minute file; ``--quick``: three of 15 s and one of 60 s).  Each mode
runs in a fresh spawn process of its own, so one mode's imports and memory never
count for another; this process samples the resident memory of that process and
all its descendants.  Wall seconds are those of the batch, after start-up
(model loading), which is reported beside them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable

from daemon.bench import scale as bench_scale
from daemon.errors import InputError, UsageError, VoiceDaemonError
from daemon.jobs import Task, TaskResult, resolve
from daemon.settings import usable_cores

MODES = ("sequential", "sequential-unpinned", "threads", "reload", "pool", "dask")
#: (name, seconds, how many)
WORKLOADS = {
    "full": [("minute", 60.0, 8), ("ten-minutes", 600.0, 1)],
    "quick": [("short", 15.0, 3), ("minute", 60.0, 1)],
}
SAMPLE_EVERY = 0.2  # seconds between memory samples


class BenchFailed(VoiceDaemonError):
    """A mode failed; the table and the JSON say which and why."""


def cli_bench(settings, args, make_pool: Callable[..., Any], make_dask: Callable[..., Any] | None = None) -> int:
    """`voice-daemon bench`.  ``make_pool(settings, log_config=...)`` builds the warm pool and
    ``make_dask`` the Dask backend on a local cluster (in the mode's own process: each must be
    picklable, e.g. a module-level function or a partial of one)."""
    # A mode may repeat: ``--modes pool,dask,pool,dask,pool,dask`` interleaves them.
    modes = [m.strip() for m in (args.modes or ",".join(MODES)).split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(f"unknown mode(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}")
    workload = "quick" if args.quick else "full"
    speech = speech_folder(args)
    runners = {**RUNNERS, "pool": partial(run_pool, make_pool=make_pool),
               "dask": partial(run_pool, make_pool=make_dask)}
    if "dask" in modes and make_dask is None:
        raise UsageError("the dask mode needs the Dask backend (this build has none)")
    with tempfile.TemporaryDirectory(prefix="voice-daemon-bench-") as tmp:
        files = build_workload(speech, Path(tmp) / "in", settings.sample_rate, WORKLOADS[workload])
        results = []
        for mode in modes:
            print(f"bench: running {mode}…", file=sys.stderr, flush=True)
            results.append(measure(settings, mode, runners[mode], files, Path(tmp) / mode))
        _compare_outputs(results)
    return write_report(make_report(settings, workload, files, results), format_table, args.json)


def speech_folder(args) -> Path:
    """The recordings the workload is cut from: only where the operator says (--speech-dir)."""
    given = getattr(args, "speech_dir", None)
    if not given:
        raise UsageError("no recordings given: pass --speech-dir DIR (a folder of speech recordings, "
                         "WAV or FLAC, a minute or more in all)")
    speech = Path(given)
    if not speech.is_dir():
        raise UsageError(f"no recordings at {speech}; pass --speech-dir DIR (a folder of speech recordings)")
    return speech


def write_report(report: dict, table: Callable[[dict], str], json_path: str | None) -> int:
    """Print the table, write the JSON, and fail (after both) if a mode failed."""
    print(table(report))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"bench: wrote {json_path}", file=sys.stderr)
    failed = [r["mode"] for r in report["results"] if "error" in r]
    if failed:
        raise BenchFailed(f"mode(s) {', '.join(failed)} failed (see the table)")
    return 0


# ---- the workload -------------------------------------------------------------------------------
def build_workload(speech_dir: Path, out_dir: Path, rate: int, spec) -> list[dict]:
    """Files of the given lengths cut from the recordings laid end to end (each file starts
    elsewhere on that tape, so no two are alike), mono 16-bit WAV at ``rate``."""
    import numpy as np
    import soundfile as sf
    import soxr

    sources = sorted(p for p in speech_dir.glob("*") if p.suffix in (".wav", ".flac", ".mp3"))
    if not sources:
        raise InputError(speech_dir, "holds no speech recordings; the benchmark is made from them")
    pieces = []
    for path in sources:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
        pieces += [soxr.resample(audio.mean(axis=1), sr, rate), np.zeros(rate // 2, dtype=np.float32)]
    tape = np.concatenate(pieces)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, offset = [], 0
    for name, seconds, count in spec:
        for i in range(count):
            frames = int(seconds * rate)
            audio = np.take(tape, np.arange(offset, offset + frames), mode="wrap")
            offset += int(37.3 * rate)
            path = out_dir / f"{name}-{i + 1}.wav"
            sf.write(str(path), audio, rate, subtype="PCM_16")
            files.append({"path": str(path), "seconds": frames / rate})
    return files


# ---- one mode, in its own process ------------------------------------------------------------------
def measure(settings, mode: str, run: Callable, files: list[dict], out_dir: Path) -> dict:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_run_mode, args=(settings, mode, run, files, str(out_dir), send),
                       name=f"voice-daemon-bench-{mode}")
    cpu_before = _children_cpu()
    proc.start()
    send.close()
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            stop.wait(SAMPLE_EVERY)

    sampler = threading.Thread(target=sample, name="bench-rss", daemon=True)
    sampler.start()
    try:
        status, result = receive.recv()
    except EOFError:
        status, result = "error", f"the {mode} run died ({proc.exitcode})"
    finally:
        proc.join()
        stop.set()
        sampler.join()
        receive.close()
    if status != "ok":
        return {"mode": mode, "error": result}
    return {"mode": mode, **result, "peak_rss_mb": round(peak[0] / 2**20, 1),
            "cpu_seconds": round(_children_cpu() - cpu_before, 1)}


def _children_cpu() -> float:
    """CPU seconds of every finished descendant this process waited for (a mode's process counts
    the pool workers it joined), so the difference around one mode is that mode's CPU time."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    parents[int(entry)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - tree
        tree |= frontier
    total, page = 0, os.sysconf("SC_PAGE_SIZE")
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def _run_mode(settings, mode: str, run: Callable, files: list[dict], out_dir: str, conn) -> None:
    from daemon import log

    log.configure(settings.log_format, _quiet(settings.log_level), process=f"bench-{mode}")
    try:
        result = run(settings, files, Path(out_dir))
    except BaseException as exc:  # noqa: BLE001 - reported in the table
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    else:
        conn.send(("ok", result))
    finally:
        conn.close()


def _quiet(level: str) -> str:
    return level if level in ("warning", "error") else "warning"


def _batch(submit, files: list[dict], out_dir: Path, parallel: bool) -> tuple[list[dict], float]:
    """Every file converted: one after another, or all at once sharing ``submit``."""
    from daemon.convert import convert_file

    def one(i: int, f: dict) -> dict:
        output = out_dir / "out" / (Path(f["path"]).stem + ".wav")
        return convert_file(submit, f["path"], output, out_dir / "work" / str(i), group=f"file-{i}")

    (out_dir / "out").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if parallel:
        with ThreadPoolExecutor(len(files), thread_name_prefix="bench-job") as jobs:
            figures = list(jobs.map(one, range(len(files)), files))
    else:
        figures = [one(i, f) for i, f in enumerate(files)]
    return figures, time.monotonic() - started


def _summary(figures: list[dict], wall: float, startup: float, loads: int, workers: int, out_dir: Path) -> dict:
    return {
        "workers": workers,
        "startup_seconds": round(startup, 3),
        "wall_seconds": round(wall, 3),
        "audio_seconds": round(sum(f["audio_seconds"] for f in figures), 3),
        "chunks": sum(f["chunks"] for f in figures),
        "model_loads": loads,
        "outputs": sorted(str(out_dir / "out" / Path(f["output"]).name) for f in figures),
    }


def _set_torch_threads(n: int) -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def _call(task: Task) -> TaskResult:
    started = time.perf_counter()
    value = resolve(task.func)(**task.kwargs)
    return TaskResult(value, os.getpid(), 1, time.perf_counter() - started)


def run_sequential(settings, files, out_dir, pinned: bool = True) -> dict:
    """One process, one chunk after another.

    ``pinned``: confined to one worker's share of the cores (``threads_per_worker`` of them), so
    the pool's physical limit over it is the number of workers.  Unpinned, libraries that start
    threads of their own (Praat's pitch analysis uses two) borrow the idle core.
    """
    from daemon import pipeline
    from daemon.backends.inline import InlineRunner

    if pinned:
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cores[: max(1, settings.torch_threads)])
    started = time.monotonic()
    runner = InlineRunner(settings)
    # As many torch threads as one worker gets: the baseline is one worker's worth of the
    # machine, so the pool's physical limit over it is the number of workers.
    _set_torch_threads(settings.torch_threads)
    startup = time.monotonic() - started
    figures, wall = _batch(runner.submit, files, out_dir, parallel=False)
    return _summary(figures, wall, startup, pipeline.LOADS["count"], 1, out_dir)


def run_threads(settings, files, out_dir) -> dict:
    from daemon import pipeline

    workers = settings.workers
    started = time.monotonic()
    barrier = threading.Barrier(workers)
    with ThreadPoolExecutor(workers, thread_name_prefix="bench-model",
                            initializer=partial(pipeline.init_worker, settings, per_thread=True)) as pool:
        # Make every thread start (and load its models) before the clock starts.
        for f in [pool.submit(barrier.wait) for _ in range(workers)]:
            f.result()
        _set_torch_threads(settings.torch_threads)
        startup = time.monotonic() - started
        figures, wall = _batch(lambda task: pool.submit(_call, task), files, out_dir, parallel=True)
    return _summary(figures, wall, startup, pipeline.LOADS["count"], workers, out_dir)


def run_reload(settings, files, out_dir) -> dict:
    calls = []

    with ProcessPoolExecutor(settings.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        def submit(task: Task) -> Future:
            calls.append(task.func)
            return pool.submit(_reload_call, settings, task)

        figures, wall = _batch(submit, files, out_dir, parallel=True)
    return _summary(figures, wall, 0.0, len(calls), settings.workers, out_dir)


def _reload_call(settings, task: Task) -> TaskResult:
    """In a ProcessPoolExecutor child: load the models for this one task, as the usual fix does."""
    from daemon import log, pipeline

    if not getattr(_reload_call, "configured", False):
        log.configure(settings.log_format, _quiet(settings.log_level), process="bench-reload")
        _reload_call.configured = True
    # per_thread: fresh models for this task (the process-wide VAD would be cached between tasks)
    pipeline.init_worker(settings, per_thread=True)
    _set_torch_threads(settings.torch_threads)
    return _call(task)


def run_pool(settings, files, out_dir, make_pool: Callable[..., Any]) -> dict:
    """The warm pool, or any other backend ``make_pool`` builds (the Dask one: ``dask``)."""
    started = time.monotonic()
    pool = make_pool(settings, log_config={"fmt": settings.log_format, "level": _quiet(settings.log_level)}).start()
    costs = getattr(pool, "costs", None)  # the Dask backend measures itself (``bench_scale``)
    try:
        startup = time.monotonic() - started
        before, cpu = costs() if costs else None, time.process_time()
        figures, wall = _batch(pool.submit, files, out_dir, parallel=True)
        cpu = time.process_time() - cpu
        after = costs() if costs else None
        loads = pool.stats()["models_loaded"]
    finally:
        pool.close()
    summary = _summary(figures, wall, startup, loads, settings.workers, out_dir)
    summary["parent_cpu_seconds"] = round(cpu, 3)
    if after is not None:
        summary["dask"] = {**after, "audio_seconds": summary["audio_seconds"], "parent_cpu_seconds": cpu,
                           "scheduler_cpu_seconds": after["scheduler_cpu_seconds"] - before["scheduler_cpu_seconds"]}
    return summary


#: mode -> run(settings, files, out_dir); "pool" also needs the composition root's make_pool
RUNNERS = {"sequential": run_sequential, "sequential-unpinned": partial(run_sequential, pinned=False),
           "threads": run_threads, "reload": run_reload, "pool": run_pool}


# ---- the report ------------------------------------------------------------------------------------
def _compare_outputs(results: list[dict]) -> None:
    """Largest sample difference of each mode's outputs from the sequential ones."""
    import numpy as np
    import soundfile as sf

    base = next((r for r in results if r["mode"] == "sequential" and "error" not in r), None)
    for r in results:
        if base is None or "error" in r:
            continue
        diff = 0.0
        for a, b in zip(base["outputs"], r["outputs"]):
            x, y = sf.read(a, dtype="float32")[0], sf.read(b, dtype="float32")[0]
            diff = max(diff, float(np.max(np.abs(x - y))) if len(x) == len(y) else float("inf"))
        r["max_diff_from_sequential"] = diff
    for r in results:
        r.pop("outputs", None)


def make_report(settings, workload: str, files: list[dict], results: list[dict]) -> dict:
    seq = next((r for r in results if r["mode"] == "sequential" and "error" not in r), None)
    for r in results:
        if "error" in r:
            continue
        r["audio_per_wall_second"] = round(r["audio_seconds"] / r["wall_seconds"], 2)
        if seq:
            r["speedup"] = round(seq["wall_seconds"] / r["wall_seconds"], 2)
    return {
        "engine": settings.engine,
        "sample_rate": settings.sample_rate,
        "cores": usable_cores(),
        "workers": settings.workers,
        "threads_per_worker": settings.torch_threads,
        "workload": workload,
        "files": [{"name": Path(f["path"]).name, "seconds": f["seconds"]} for f in files],
        "audio_seconds": round(sum(f["seconds"] for f in files), 1),
        "python": sys.version.split()[0],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "results": results,
    }


def format_table(report: dict) -> str:
    counts: dict[float, int] = {}
    for f in report["files"]:
        counts[f["seconds"]] = counts.get(f["seconds"], 0) + 1
    shape = " + ".join(f"{n} × {s:g} s" for s, n in counts.items())
    lines = [
        f"engine {report['engine']} at {report['sample_rate']} Hz; {report['cores']} cores; "
        f"{report['workers']} workers × {report['threads_per_worker']} torch thread(s); "
        f"workload {shape} = {report['audio_seconds']:g} s of audio; load average at the end "
        f"{report.get('load_average')} (1, 5, 15 min)",
        "",
        "| mode | start-up s | wall s | audio s / wall s | speedup | model loads | peak RSS MB | CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['mode']} | failed: {r['error']} | | | | | | |")
            continue
        speedup = f"{r['speedup']:.2f}×" if "speedup" in r else "–"
        lines.append(f"| {r['mode']} | {r['startup_seconds']:.1f} | {r['wall_seconds']:.1f} | "
                     f"{r['audio_per_wall_second']:.1f} | {speedup} | {r['model_loads']} | {r['peak_rss_mb']:.0f} | "
                     f"{r['cpu_seconds']:.0f} |")
    by = {r["mode"]: r for r in report["results"] if "error" not in r}
    if "pool" in by and "sequential" in by:
        lines.append(f"\npool vs sequential (one process on {report['threads_per_worker']} core(s)): "
                     f"{by['pool']['speedup']:.2f}× (physical limit {report['workers']}×)")
    if "pool" in by and "sequential-unpinned" in by:
        ratio = by["sequential-unpinned"]["wall_seconds"] / by["pool"]["wall_seconds"]
        lines.append(f"pool vs sequential-unpinned (one process, free to use every core): {ratio:.2f}×")
    if "pool" in by and "reload" in by:
        saved = by["reload"]["wall_seconds"] - by["pool"]["wall_seconds"]
        lines.append(f"pool vs reload: {by['reload']['wall_seconds'] / by['pool']['wall_seconds']:.2f}× "
                     f"({saved:+.1f} s; reload loaded models {by['reload']['model_loads']} times, "
                     f"the pool {by['pool']['model_loads']} times for {by['pool']['workers']} workers)")
    return "\n".join(lines + bench_scale.lines(report))
