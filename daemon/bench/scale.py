"""What the benchmark's Dask runs say about a larger cluster.

From one run on this machine: the mean seconds of a task (``d``), the idle gap a worker process
spends between finishing one task and starting the next that was already waiting for it (``g``),
the scheduler's CPU seconds per task (``s``) and the daemon's own (``c``: its process's CPU, less
the scheduler's where a local cluster's scheduler lives in it).  A node like this one
runs ``w`` single-thread worker processes, each finishing ``1 / (d + g)`` tasks a second; the
scheduler's event loop (one core) handles at most ``1 / s``, the daemon's at most ``1 / c``.
With ``n`` nodes:

    tasks per second = min(n · w / (d + g), 1 / s, 1 / c)

and whichever term is smallest is what limits the cluster first.  It assumes tasks like this
workload's (a chunk of a few seconds' audio) and that nodes, network and disks keep up; on a
busy machine ``d``, ``s`` and ``c`` are all inflated, so it is a floor for a quiet one.
"""

from __future__ import annotations

NODES = (8, 32, 128)


def expect(dask: dict, workers: int) -> dict | None:
    """The projection from one Dask run's figures (``run["dask"]``), or None without them."""
    tasks = dask.get("tasks") or 0
    if not tasks or dask.get("task_seconds_mean") is None:
        return None
    d = dask["task_seconds_mean"]
    g = dask.get("gap_seconds_mean") or 0.0
    s = max(dask["scheduler_cpu_seconds"] / tasks, 1e-9)
    inside = dask["scheduler_cpu_seconds"] if dask.get("scheduler_in_this_process", True) else 0.0
    c = max((dask["parent_cpu_seconds"] - inside) / tasks, 1e-9)
    audio = dask["audio_seconds"] / tasks
    rows = []
    for n in NODES:
        limits = {"workers": n * workers / (d + g), "scheduler": 1 / s, "daemon": 1 / c}
        first = min(limits, key=limits.get)
        rows.append({"nodes": n, "tasks_per_second": round(limits[first], 1),
                     "audio_per_wall_second": round(limits[first] * audio, 1), "limit": first,
                     "efficiency": round(limits[first] / limits["workers"], 3)})
    return {"task_seconds": round(d, 4), "gap_seconds": round(g, 5), "scheduler_cpu_per_task": round(s, 5),
            "daemon_cpu_per_task": round(c, 5), "audio_seconds_per_task": round(audio, 2), "nodes": rows}


def side_by_side(runs: list[dict], base: str, other: str) -> str | None:
    """``other``'s speed against ``base``'s over runs interleaved in one benchmark: the median wall
    time of each mode's runs against the other's, and each pair (the i-th run of one with the i-th of
    the other), e.g. "3 interleaved pair(s)): median 0.97×; each pair 0.95×, 1.01×, 0.97×"."""
    first = [r["wall_seconds"] for r in runs if r["mode"] == base]
    second = [r["wall_seconds"] for r in runs if r["mode"] == other]
    if not first or not second:
        return None
    pairs = [a / b for a, b in zip(first, second)]
    med = sorted(first)[len(first) // 2] / sorted(second)[len(second) // 2]
    return (f"{len(pairs)} interleaved pair(s)): median {med:.2f}×; each pair "
            + ", ".join(f"{x:.2f}×" for x in pairs))


def lines(report: dict) -> list[str]:
    """The pairs of pool and dask runs side by side, and the projection, for the table."""
    runs = [r for r in report["results"] if "error" not in r]
    dask = [r for r in runs if r["mode"] == "dask"]
    out = []
    compared = side_by_side(runs, "pool", "dask")
    if compared:
        out.append(f"\ndask vs pool (throughput, {report['workers']} single-thread worker processes each, "
                   f"{compared}")
    figures = [d["dask"] for d in dask if d.get("dask")]
    if not figures:
        return out
    last = figures[-1]
    proj = expect(last, report["workers"])
    if proj is None:
        return out
    gaps = ", ".join(f"{f['gap_seconds_mean'] * 1000:.1f}" for f in figures if f.get("gap_seconds_mean") is not None)
    out += [f"dask per task: {proj['task_seconds']:.3f} s of work; idle gap per worker between tasks "
            f"{proj['gap_seconds'] * 1000:.1f} ms (p95 {(last.get('gap_seconds_p95') or 0) * 1000:.1f} ms; each run: "
            f"{gaps} ms); scheduler CPU {proj['scheduler_cpu_per_task'] * 1000:.2f} ms; the daemon's own CPU "
            f"{proj['daemon_cpu_per_task'] * 1000:.1f} ms",
            f"expected with nodes of {report['workers']} worker processes like these (tasks of "
            f"{proj['audio_seconds_per_task']:g} s of audio):", "",
            "| nodes | tasks / s | audio s / wall s | limited by | of the workers' rate |",
            "| ---: | ---: | ---: | --- | ---: |"]
    out += [f"| {r['nodes']} | {r['tasks_per_second']:g} | {r['audio_per_wall_second']:g} | {r['limit']} | "
            f"{100 * r['efficiency']:.0f} % |" for r in proj["nodes"]]
    return out
