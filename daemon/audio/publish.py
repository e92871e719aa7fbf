"""Put a finished file at its output name durably, and its sidecar beside it.

Readers of the output folder see the old file or the whole new one, never half of one
(``daemon.durable``): the file is moved (or, across filesystems, copied) to a hidden
temporary name beside the output, synced, and renamed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

from daemon import durable
from daemon.audio import io as aio
from daemon.audio import verify
from daemon.errors import OutputError


def _temp_beside(out: Path) -> Path:
    # Keep the real extension last: libsndfile and ffmpeg pick the codec from it.
    return out.with_name(f".{out.stem}.voice-daemon-{os.getpid()}.tmp{out.suffix}")


def publish(wav: str, output: str | Path, rate: int, *, frames: int | None = None,
            speech_seconds: float = 0.0) -> tuple[Path, dict]:
    """Encode ``wav`` to a temporary name beside ``output``, check it (``audio/verify.py``: ``frames``
    long, finite, not silent if the input had speech), then rename durably: readers never see half
    a file, nor a broken one.  Returns the output and the check's figures."""
    out = Path(output)
    hidden = _temp_beside(out)
    try:
        with durable.replacing(out, tmp=hidden) as tmp:
            aio.encode(wav, str(tmp), rate)
            check = verify.check_output(tmp, frames=frames, sample_rate=rate, speech_seconds=speech_seconds,
                                        name=out)
    except OutputError as exc:  # named by the file the user asked for, not the hidden one written first
        raise OutputError(out, exc.cause.replace(str(hidden), str(out))) from exc
    return out, check


def publish_file(src: str | Path, output: str | Path) -> Path:
    """Move the finished ``src`` (in the job's work folder) to ``output`` durably."""
    out = Path(output)
    with durable.replacing(out, tmp=_temp_beside(out)) as tmp:
        try:
            os.replace(src, tmp)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            try:
                shutil.copyfile(src, tmp)  # the work folder is on another filesystem
            except OSError as err:
                # shutil names the source; a full disk is the destination's (the outbox's) problem.
                if err.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise OSError(err.errno, err.strerror, os.fspath(tmp)) from err
                raise
    return out


def write_sidecar(out: Path, phrases: list[dict], models: list[dict], background: dict | None = None,
                  speakers: dict | None = None) -> str | None:
    """``NAME.json`` beside the output, for engines that report phrases (resynth), for a kept bed
    (``background``: ``audio/bed.py``'s summary) and for a file whose speakers were found (``speakers``:
    its ``speakers`` and ``turns`` lists)."""
    if not phrases and not models and not background and not speakers:
        return None
    path = Path(out).with_suffix(".json")
    body = {"output": Path(out).name, **(speakers or {}), "phrases": phrases, "models": models}
    if background:
        body["background"] = background
    durable.write_text(path, json.dumps(body, ensure_ascii=False, indent=2), tmp=path.with_name(f".{path.name}.tmp"))
    return str(path)


def write_rttm(out: Path, text: str) -> str:
    """``NAME.rttm`` beside the output (the speakers' turns, NIST RTTM)."""
    path = Path(out).with_suffix(".rttm")
    durable.write_text(path, text, tmp=path.with_name(f".{path.name}.tmp"))
    return str(path)
