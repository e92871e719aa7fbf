"""`voice-daemon convert`.

One job's orchestration is ``daemon.stream.run_job`` (re-exported here): it is given a backend's
``submit`` (``daemon.backends.Backend``: the warm pool, a Dask cluster, or ``InlineRunner`` to run
every stage in this process) and leaves the finished output in the job's work folder.  Without a
spool (`convert`, the benchmark) ``publish_job`` puts it at its name; ``convert_file`` does both.
``convert_command`` is `voice-daemon convert`, given the backend to use by the composition root
(``daemon/app.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

from daemon import log
from daemon.audio import io as aio
from daemon.audio.publish import publish_file, write_rttm, write_sidecar_content
from daemon.backends import Backend
from daemon.capabilities import Capabilities
from daemon.engines import abilities
from daemon.errors import InputError, OutputError
from daemon.stream import Steps, run_job

__all__ = ["check_paths", "convert_command", "convert_file", "job_runner", "publish_job", "run_job"]


def job_runner(settings, capabilities: Capabilities | None = None) -> Callable[..., dict]:
    """``run_job`` as the settings want it: an engine that understands transcripts is given the
    one found beside the input.  The VAD may run as far ahead of the chunks as the workers can use."""
    caps = capabilities or abilities(settings.engine)
    return partial(run_job, transcripts=caps.reads_transcripts, parallelism=settings.workers)


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
    if not abilities(settings.engine).has_voices:
        return  # VOICE_DAEMON_VOICE is only a label there
    explicit = "voice" in settings.model_fields_set
    if (problem := voice_problem(settings, settings.voice, explicit=explicit)) is not None:
        raise SettingsError(settings.env_name("voice"), settings.voice, "must be a voice the engine has: " + problem)


def convert_command(settings, args, make_runner: Callable[[], Backend]) -> int:
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
            fig = publish_job(job_runner(settings)(runner.submit, inp, out, work, voice=args.voice or None,
                                                   progress=bar.update if bar else None), out)
    finally:
        if bar:
            bar.close()
        runner.close()
    log.get().info("convert.done", **{k: v for k, v in fig.items() if k != "source"})
    print(summary(inp, fig, startup))
    return 0


def publish_job(fig: dict, output: str | Path, steps: Steps | None = None) -> dict:
    """The finished output ``run_job`` left in the work folder to ``output``, durably, and its
    sidecar (``NAME.json``) beside it; the figures with where they went.  ``steps``: told of the
    publish (the benchmark's timeline)."""
    t0 = time.time()
    out = publish_file(fig["output"], output)
    content = fig.get("sidecar")
    sidecar = None
    if content:
        sidecar = out.with_suffix(".json")
        write_sidecar_content(sidecar, out.name, content)
    rttm = write_rttm(out, fig["rttm"]) if fig.get("rttm") else None
    if steps is not None:
        steps.published(t0, time.time())
    return {**fig, "output": str(out), "sidecar": str(sidecar) if sidecar else None,
            **({"rttm": rttm} if "rttm" in fig else {})}


def convert_file(submit, input: str | Path, output: str | Path, work_dir: str | Path, *,
                 steps: Steps | None = None, **options) -> dict:
    """``run_job``, then ``publish_job``: ``input`` converted to ``output``."""
    return publish_job(run_job(submit, input, output, work_dir, steps=steps, **options), output, steps)


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
