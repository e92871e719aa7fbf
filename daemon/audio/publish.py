"""Put a finished file at its name durably, and its sidecar beside it.

Readers of the folder see the old file or the whole new one, never half of one
(``daemon.durable``): the file is moved (or, across filesystems, copied) to a hidden
temporary name beside its name, synced, and renamed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from daemon import durable
from daemon.audio import io as aio
from daemon.audio import verify
from daemon.errors import OutputError


def _temp_beside(out: Path) -> Path:
    # Keep the real extension last: libsndfile and ffmpeg pick the codec from it.
    return out.with_name(f".{out.stem}.voice-daemon-{os.getpid()}.tmp{out.suffix}")


def publish(wav: str, output: str | Path, rate: int, *, frames: int | None = None,
            speech_seconds: float = 0.0, name: str | Path | None = None) -> tuple[Path, dict]:
    """Encode ``wav`` to a temporary name beside ``output``, check it (``audio/verify.py``: ``frames``
    long, finite, not silent if the input had speech), then rename durably: readers never see half
    a file, nor a broken one.  Returns the output and the check's figures.  ``name``: what errors
    call the file (the name it will be published under), by default ``output``."""
    out = Path(output)
    named = Path(name) if name is not None else out
    hidden = _temp_beside(out)
    try:
        with durable.replacing(out, tmp=hidden) as tmp:
            aio.encode(wav, str(tmp), rate)
            check = verify.check_output(tmp, frames=frames, sample_rate=rate, speech_seconds=speech_seconds,
                                        name=named)
    except OutputError as exc:  # named by the file the user asked for, not the hidden one written first
        raise OutputError(named, exc.cause.replace(str(hidden), str(named))) from exc
    return out, check


def publish_file(src: str | Path, output: str | Path) -> Path:
    """Move the finished ``src`` (in the job's work folder) to ``output`` durably."""
    out = Path(output)
    with durable.replacing(out, tmp=_temp_beside(out)) as tmp:
        durable.move(src, tmp)
    return out


def sidecar_content(phrases: list[dict], models: list[dict], background: dict | None = None,
                    speakers: dict | None = None) -> dict | None:
    """What an output's sidecar holds: the phrases an engine reports (resynth), a kept bed
    (``background``: ``audio/bed.py``'s summary) and the speakers found (``speakers``: its
    ``speakers`` and ``turns`` lists); None: no sidecar."""
    if not phrases and not models and not background and not speakers:
        return None
    content = {**(speakers or {}), "phrases": phrases, "models": models}
    if background:
        content["background"] = background
    return content


def write_sidecar_content(path: Path, output_name: str, content: dict) -> None:
    """The sidecar ``path`` (durably), naming the output it belongs to."""
    path = Path(path)
    durable.write_text(path, json.dumps({"output": output_name, **content}, ensure_ascii=False, indent=2),
                       tmp=path.with_name(f".{path.name}.tmp"))


def write_sidecar(out: Path, phrases: list[dict], models: list[dict], background: dict | None = None,
                  speakers: dict | None = None) -> str | None:
    """``NAME.json`` beside the output (see ``sidecar_content``)."""
    content = sidecar_content(phrases, models, background, speakers)
    if content is None:
        return None
    path = Path(out).with_suffix(".json")
    write_sidecar_content(path, Path(out).name, content)
    return str(path)


def write_rttm(out: Path, text: str) -> str:
    """``NAME.rttm`` beside the output (the speakers' turns, NIST RTTM)."""
    path = Path(out).with_suffix(".rttm")
    durable.write_text(path, text, tmp=path.with_name(f".{path.name}.tmp"))
    return str(path)
