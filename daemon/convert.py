"""`voice-daemon convert`, and what runs a job's tasks in this process.

One job's orchestration is ``daemon.stream.run_job`` (re-exported here): it is given a
``submit(Task) -> Future`` function (the warm pool's, or ``InlineRunner.submit`` to run every
stage in this process).  ``convert_command`` is `voice-daemon convert`, given the runner to use
by the composition root (``daemon/app.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Callable, Protocol

from daemon import log
from daemon.audio import io as aio
from daemon.errors import InputError, OutputError
from daemon.jobs import Task, TaskResult, resolve
from daemon.stream import run_job

__all__ = ["InlineRunner", "Runner", "check_paths", "convert_command", "job_runner", "run_job"]


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
    found beside the input; the other engines take no transcript.  The VAD may run as far ahead
    of the chunks as the workers can use."""
    return partial(run_job, transcripts=settings.engine == "resynth", parallelism=settings.workers)


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
