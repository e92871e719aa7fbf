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


def _temp_beside(out: Path) -> Path:
    # Keep the real extension last: libsndfile and ffmpeg pick the codec from it.
    return out.with_name(f".{out.stem}.voice-daemon-{os.getpid()}.tmp{out.suffix}")


def publish(wav: str, output: str | Path, rate: int) -> Path:
    """Encode ``wav`` to a temporary name beside ``output``, then rename durably."""
    out = Path(output)
    with durable.replacing(out, tmp=_temp_beside(out)) as tmp:
        aio.encode(wav, str(tmp), rate)
    return out


def publish_file(src: str | Path, output: str | Path) -> Path:
    """Move the finished ``src`` (in the job's work folder) to ``output`` durably."""
    out = Path(output)
    with durable.replacing(out, tmp=_temp_beside(out)) as tmp:
        try:
            os.replace(src, tmp)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(src, tmp)  # the work folder is on another filesystem
    return out


def write_sidecar(out: Path, phrases: list[dict], models: list[dict]) -> str | None:
    """For engines that report phrases (resynth): ``NAME.json`` beside the output."""
    if not phrases and not models:
        return None
    path = Path(out).with_suffix(".json")
    durable.write_text(path, json.dumps({"output": Path(out).name, "phrases": phrases, "models": models},
                                        ensure_ascii=False, indent=2), tmp=path.with_name(f".{path.name}.tmp"))
    return str(path)
