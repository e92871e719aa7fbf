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


def chunk_hints(phrases: list[dict], start_s: float, end_s: float) -> dict | None:
    """Transcript phrases that start inside [start_s, end_s), re-timed to the chunk's start.

    Untimed phrases (a ``.txt`` transcript) go to every chunk whole: the resynth
    engine aligns them to what it recognises in the chunk and uses its part."""
    if any(p.get("start") is None for p in phrases):
        return {"phrases": phrases}
    inside = [{**p, "start": p["start"] - start_s, "end": min(p["end"], end_s) - start_s}
              for p in phrases if start_s <= p["start"] < end_s]
    return {"phrases": inside} if inside else None


def run_job(submit: Submit, input: str | Path, output: str | Path, work_dir: str | Path, *,
            voice: str | None = None, group: str = "", transcripts: bool = False,
            progress: Callable[[str, float], None] | None = None) -> dict:
    """Convert ``input`` to ``output`` through ``submit``; return figures.

    ``transcripts``: read a transcript beside the input (``.srt``, ``.vtt``, ``.txt``) and hand
    each chunk its phrases.  ``progress(stage, audio_seconds_done, chunks_done=, chunks_total=,
    audio_seconds_total=)`` is called after prepare ("prepared"), after each chunk ("chunk") and
    before the stitch and encode ("finishing").
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
    total = {"chunks_total": len(plan["chunks"]), "audio_seconds_total": round(plan["duration"], 3)}
    if progress:
        progress("prepared", 0.0, chunks_done=0, **total)
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
                progress("chunk", done_s, chunks_done=len(results), **total)
    except BaseException:
        for fut in futures:
            fut.cancel()
        # Chunks already running cannot be cancelled: let them end before the caller retries in
        # the same work folder (they would write the same chunk paths).
        wait(futures)
        raise
    ordered = [results[i] for i in range(len(plan["chunks"]))]
    if progress:
        progress("finishing", done_s, chunks_done=len(results), **total)
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
    _check_writable(output)
    return info


def _check_writable(output: Path) -> None:
    """Create (and remove) a file where the output will go: the only true test (root passes
    ``os.access`` even on /proc, a read-only mount or a full disk)."""
    try:
        fd, probe = tempfile.mkstemp(dir=output.parent, prefix=f".{output.stem[:40]}.", suffix=".probe")
    except OSError as exc:
        raise OutputError(output, f"cannot create a file in {output.parent} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def check_voice(settings, flag: str | None = None) -> None:
    """A voice the engine does not have, found before any model loads and named as the user
    gave it: ``--voice`` (UsageError), or VOICE_DAEMON_VOICE (SettingsError)."""
    from daemon.engines import voice_problem
    from daemon.errors import UsageError
    from daemon.settings import SettingsError

    if flag:
        if (problem := voice_problem(settings, flag)) is not None:
            raise UsageError(f"--voice {flag}: {problem}")
        return
    if settings.engine == "shift":
        return  # VOICE_DAEMON_VOICE is only a label there
    explicit = "voice" in settings.model_fields_set
    if (problem := voice_problem(settings, settings.voice, explicit=explicit)) is not None:
        raise SettingsError(settings.env_name("voice"), settings.voice, "must be a voice the engine has: " + problem)


def convert_command(settings, args, make_runner: Callable[[], Runner]) -> int:
    """`voice-daemon convert INPUT OUTPUT`: ``make_runner()`` gives what runs the tasks (something
    with ``submit`` and ``close``), built once the paths are known to be good."""
    inp, out = Path(args.input), Path(args.output)
    info = check_paths(inp, out, args.overwrite)
    check_voice(settings, args.voice)
    t0 = time.monotonic()
    runner = make_runner()
    startup = time.monotonic() - t0
    # Drawn once the workers are warm, so their start-up lines do not cut through it.
    bar = _progress_bar(info.duration if info else 0.0, enabled=bool(info) and not args.no_progress and sys.stderr.isatty())
    try:
        with tempfile.TemporaryDirectory(prefix="voice-daemon-") as work:
            fig = job_runner(settings)(runner.submit, inp, out, work, voice=args.voice or None,
                                       progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
        runner.close()
    log.get().info("convert.done", **{k: v for k, v in fig.items() if k != "source"})
    print(summary(inp, fig, startup))
    return 0


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 chunk``, ``3 chunks``."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def summary(inp: Path, fig: dict, startup: float) -> str:
    """The line `convert` ends with."""
    return (f"{inp} -> {fig['output']}: {fig['audio_seconds']:.1f} s of audio in {fig['wall_seconds']:.1f} s "
            f"(real-time factor {fig['rtf']}, {plural(fig['chunks'], 'chunk')}, "
            f"{plural(len(fig['worker_pids']), 'process', 'processes')}; models loaded in {startup:.1f} s before that)")


class _Bar:
    """tqdm on stderr, labelled by stage; this process's log lines are printed above it, not into it."""

    LABELS = {"prepared": "converting: ", "chunk": "converting: ", "finishing": "encoding: "}

    def __init__(self, total: float):
        from tqdm import tqdm

        # With no terminal size known (a pty of 0×0) tqdm reads -1 rows and draws nothing: the
        # size falls back to 80×24.
        columns, rows = _terminal_size()
        self._bar = tqdm(total=round(total, 1), unit="s", desc="decoding: ", file=sys.stderr, ncols=columns, nrows=rows,
                         bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]")
        self._stream = _AboveBar(self._bar)
        log.redirect(self._stream)

    def update(self, stage: str, done: float, **_info) -> None:
        self._bar.n = round(min(done, self._bar.total), 1)
        # set_description would add a second ": " (the "converting: :" of old)
        self._bar.set_description_str(self.LABELS.get(stage, stage + ": "), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        log.redirect(None)
        self._bar.close()


class _AboveBar:
    """A file for log lines while the bar is drawn: clear the bar, write whole lines, draw it again."""

    def __init__(self, bar):
        self._bar, self._pending = bar, ""

    def write(self, text: str) -> int:
        self._pending += text  # print() writes the line and its newline separately
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self._bar.clear()
            sys.stderr.write(lines + "\n")
            sys.stderr.flush()
            self._bar.refresh()
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _terminal_size() -> tuple[int, int]:
    """stderr's (columns, rows); 80×24 where the terminal does not say (0, or no size at all)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        columns, rows = size.columns, size.lines
    except (OSError, ValueError):
        columns = rows = 0
    return columns if columns > 0 else 80, rows if rows > 0 else 24


def _progress_bar(total: float, enabled: bool) -> _Bar | None:
    return _Bar(total) if enabled else None
