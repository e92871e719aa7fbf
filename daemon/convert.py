"""Orchestration of one file: prepare → chunks in parallel → finish.

``run_job`` knows nothing about processes: it is given a ``submit(Task) ->
Future`` function (the warm pool's, or ``InlineRunner.submit`` to run every stage
in this process).  ``convert_command`` is `voice-daemon convert`, given the runner
to use by the composition root (``daemon/app.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import Future, as_completed, wait
from functools import partial
from pathlib import Path
from typing import Callable, Protocol

from daemon import log
from daemon.audio import io as aio
from daemon.errors import InputError, OutputError
from daemon.jobs import Task, TaskResult, resolve

Submit = Callable[[Task], Future]
CHARS_PER_SECOND = 15  # rough speaking rate: scales a text job's deadline


class Runner(Protocol):
    """What runs a job's tasks: the warm pool, or ``InlineRunner``."""

    def submit(self, task: Task) -> Future: ...

    def close(self, grace: float = ...) -> None: ...


class InlineRunner:
    """Runs every task at once in this process (``--sequential``; the benchmark's baseline)."""

    def __init__(self, settings):
        from daemon.pipeline import init_worker

        init_worker(settings)
        self._funcs: dict[str, Callable] = {}

    def submit(self, task: Task) -> Future:
        fut: Future = Future()
        t0 = time.perf_counter()
        try:
            func = self._funcs.get(task.func) or resolve(task.func)
            self._funcs[task.func] = func
            value = func(**task.kwargs)
        except BaseException as exc:  # delivered through the future, like the pool does
            fut.set_exception(exc)
        else:
            fut.set_result(TaskResult(value, os.getpid(), 1, time.perf_counter() - t0))
        return fut

    def close(self, grace: float = 0.0) -> None:
        pass


def job_runner(settings) -> Callable[..., dict]:
    """``run_job`` as the settings want it: the resynth engine speaks the words of a transcript
    found beside the input; the other engines take no transcript."""
    return partial(run_job, transcripts=settings.engine == "resynth")


def find_transcript(input: Path) -> Path | None:
    for ext in aio.TRANSCRIPT_EXTENSIONS:
        p = input.with_suffix(ext)
        if p != input and p.is_file() and not p.is_symlink():
            return p
    return None


def read_transcript(input: Path) -> list[dict] | None:
    """The phrases of the transcript beside ``input`` (same stem), or None; InputError if it is bad."""
    if (path := find_transcript(input)) is None:
        return None
    from daemon.engines.resynth.transcript import load_transcript

    phrases = load_transcript(path)
    log.get().info("convert.transcript", path=str(path), phrases=len(phrases))
    return phrases


def chunk_hints(phrases: list[dict], start_s: float, end_s: float) -> dict:
    """Transcript phrases that start inside [start_s, end_s), re-timed to the chunk's start.

    Untimed phrases (a ``.txt`` transcript) go to every chunk whole: the resynth
    engine aligns them to what it recognises in the chunk and uses its part.  A timed
    transcript replaces recognition in every chunk (``timed``), one without a cue too."""
    if any(p.get("start") is None for p in phrases):
        return {"phrases": phrases}
    inside = [{**p, "start": p["start"] - start_s, "end": min(p["end"], end_s) - start_s}
              for p in phrases if start_s <= p["start"] < end_s]
    return {"phrases": inside, "timed": True}


def run_job(submit: Submit, input: str | Path, output: str | Path, work_dir: str | Path, *,
            voice: str | None = None, group: str = "", transcripts: bool = False,
            progress: Callable[[str, float], None] | None = None) -> dict:
    """Convert ``input`` to ``output`` through ``submit``; return figures.

    ``transcripts``: read a transcript beside the input (``.srt``, ``.vtt``, ``.txt``) and hand
    each chunk its phrases.  ``progress(stage, audio_seconds_done)`` is called after prepare and
    after each chunk.
    """
    t0 = time.monotonic()
    work = Path(work_dir)
    (work / "chunks").mkdir(parents=True, exist_ok=True)
    if Path(input).suffix.lower() == ".txt":  # a text alone is itself the job
        return _speak(submit, input, output, work, voice=voice, group=group, t0=t0)
    transcript = read_transcript(Path(input)) if transcripts else None
    # Scales the deadline of decode + VAD without parsing the file here: bytes / 4000 is the length
    # at 32 kbit/s, an upper bound for any codec we read (so the deadline errs on the long side).
    try:
        seconds = os.path.getsize(input) / 4000
    except OSError:
        seconds = 0.0  # prepare reports the missing file with a clear reason
    prep: TaskResult = submit(Task("daemon.pipeline:prepare", {"input": str(input), "work_dir": str(work)},
                                   group=group, audio_seconds=seconds)).result()
    plan = prep.value
    rate = plan["sample_rate"]
    if progress:
        progress("prepared", 0.0)
    futures: dict[Future, dict] = {}
    for c in plan["chunks"]:
        seconds = (c["end"] - c["start"]) / rate
        hints = chunk_hints(transcript, c["start"] / rate, c["end"] / rate) if transcript else None
        kwargs = {"wav": plan["wav"], "index": c["index"], "start": c["start"], "end": c["end"],
                  "out": str(work / "chunks" / f"{c['index']:05d}.wav"), "voice": voice, "hints": hints}
        futures[submit(Task("daemon.pipeline:run_chunk", kwargs, group=group, audio_seconds=seconds))] = c
    results: dict[int, TaskResult] = {}
    done_s = 0.0
    try:
        for fut in as_completed(futures):
            res = fut.result()
            results[res.value["index"]] = res
            done_s += res.value["audio_seconds"]
            if progress:
                progress("chunk", done_s)
    except BaseException:
        for fut in futures:
            fut.cancel()
        # Chunks already running cannot be cancelled: let them end before the caller retries in
        # the same work folder (they would write the same chunk paths).
        wait(futures)
        raise
    ordered = [results[i] for i in range(len(plan["chunks"]))]
    fin = submit(Task("daemon.pipeline:finish", {
        "wav": plan["wav"], "plan": plan, "chunk_outs": [r.value["out"] for r in ordered],
        "output": str(output), "chunk_infos": [r.value.get("info") for r in ordered]},
        group=group, audio_seconds=plan["duration"])).result()
    wall = time.monotonic() - t0
    return {
        "input": str(input),
        "output": fin.value["output"],
        "sidecar": fin.value.get("sidecar"),
        "audio_seconds": round(plan["duration"], 3),
        "wall_seconds": round(wall, 3),
        "rtf": round(wall / plan["duration"], 4) if plan["duration"] else None,
        "chunks": len(ordered),
        "compute_seconds": round(sum(r.value["compute_seconds"] for r in ordered), 3),
        "worker_pids": sorted({r.worker_pid for r in ordered} | {prep.worker_pid, fin.worker_pid}),
        "attempts": max([prep.attempts, fin.attempts, *(r.attempts for r in ordered)]),
        "source": plan["source"],
    }


def _speak(submit: Submit, input, output, work: Path, *, voice, group, t0) -> dict:
    res: TaskResult = submit(Task("daemon.pipeline:speak_text", {
        "input": str(input), "work_dir": str(work), "output": str(output), "voice": voice},
        group=group, audio_seconds=os.path.getsize(input) / CHARS_PER_SECOND)).result()
    v, wall = res.value, time.monotonic() - t0
    return {"input": str(input), "output": v["output"], "sidecar": v["sidecar"],
            "audio_seconds": round(v["duration"], 3), "wall_seconds": round(wall, 3),
            "rtf": round(wall / v["duration"], 4) if v["duration"] else None, "chunks": 1,
            "compute_seconds": round(v["compute_seconds"], 3), "worker_pids": [res.worker_pid],
            "attempts": res.attempts, "source": {"path": str(input), "format": "text"}}


def check_paths(input: Path, output: Path, overwrite: bool) -> aio.AudioInfo | None:
    """Fail early, in the parent, with a one-line cause (no model is loaded yet)."""
    if input.suffix.lower() == ".txt":
        if not input.is_file():
            raise InputError(input, "no such file" if not input.exists() else "is not a regular file")
        info = None
    else:
        info = aio.probe(input)
    aio.writer_for(output)
    if output.exists() and output.resolve() == input.resolve():
        raise OutputError(output, "is the input file; choose another output name")
    if output.is_dir():
        raise OutputError(output, "is a directory; give a file name such as out.wav")
    if output.exists() and not overwrite:
        raise OutputError(output, "exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise OutputError(output, f"folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK):
        raise OutputError(output, f"folder {output.parent} is not writable")
    return info


def convert_command(settings, args, make_runner: Callable[[], Runner]) -> int:
    """`voice-daemon convert INPUT OUTPUT`: ``make_runner()`` gives what runs the tasks (something
    with ``submit`` and ``close``), built once the paths are known to be good."""
    inp, out = Path(args.input), Path(args.output)
    info = check_paths(inp, out, args.overwrite)
    bar = _progress_bar(info.duration if info else 0.0, enabled=bool(info) and not args.no_progress and sys.stderr.isatty())
    t0 = time.monotonic()
    runner = make_runner()
    startup = time.monotonic() - t0
    try:
        with tempfile.TemporaryDirectory(prefix="voice-daemon-") as work:
            fig = job_runner(settings)(runner.submit, inp, out, work, voice=args.voice or None,
                                       progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
        runner.close()
    log.get().info("convert.done", **{k: v for k, v in fig.items() if k != "source"})
    print(f"{inp} -> {fig['output']}: {fig['audio_seconds']:.1f} s of audio in {fig['wall_seconds']:.1f} s "
          f"(real-time factor {fig['rtf']}, {fig['chunks']} chunks, {len(fig['worker_pids'])} process(es); "
          f"models loaded in {startup:.1f} s before that)")
    return 0


class _Bar:
    def __init__(self, total: float):
        from tqdm import tqdm

        self._bar = tqdm(total=round(total, 1), unit="s", desc="converting", file=sys.stderr,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]")

    def update(self, stage: str, done: float) -> None:
        self._bar.n = round(min(done, self._bar.total), 1)
        self._bar.set_description("decoded, converting" if stage == "prepared" else "converting")
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _progress_bar(total: float, enabled: bool) -> _Bar | None:
    return _Bar(total) if enabled else None
