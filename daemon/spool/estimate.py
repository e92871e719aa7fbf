"""How much space a job will take, known before it starts: from the input's length, the output's
sample rate and format.

``output``: the finished file in the outbox.  ``work``: what the job writes in the state folder
while it runs (the decoded audio and the stitched output as raw float32, the encoded output before
it is published).  The input itself is already there once claimed, so it is not counted.  The
figures are upper bounds with a margin: a job that fits by them fits, one that does not may still
wait a little longer than it had to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Bytes a second of mono output takes, per format, at ``rate`` Hz (bit rates are the encoders'
#: settings in ``daemon/audio/outputs.py``, ``mp3.py``, ``aac.py``; FLAC is at most PCM_16).
OUTPUT_BYTES_PER_SECOND = {
    "wav": lambda rate: 2 * rate,
    "flac": lambda rate: 2 * rate,
    "mp3": lambda rate: 128_000 // 8,
    "m4a": lambda rate: 192_000 // 8,
    "ogg": lambda rate: 256_000 // 8,  # Vorbis q4 averages ~128 kbit/s; peaks stay under twice that
    "opus": lambda rate: 64_000 // 8,
}
MARGIN = 1.1
HEADROOM = 64 << 10  # headers, a last frame, the sidecar


@dataclass(frozen=True)
class Need:
    output: int  # bytes in the outbox
    work: int    # bytes in the state folder while it runs

    def of(self, folder: str) -> int:
        return self.output if folder == "outbox" else self.work


def need(seconds: float, rate: int, ext: str) -> Need:
    per_second = OUTPUT_BYTES_PER_SECOND.get(ext, OUTPUT_BYTES_PER_SECOND["wav"])(rate)
    output = int(seconds * per_second * MARGIN) + HEADROOM
    work = int(seconds * rate * 4 * 2 * MARGIN) + output + HEADROOM  # decoded + stitched float32, the encoded file
    return Need(output, work)


def need_of_file(path: Path, rate: int, ext: str) -> Need | None:
    """``need`` for the audio file at ``path``; None when its header cannot be read (the job will
    fail on it with a clear reason, which is not this module's to give)."""
    from daemon.audio.io import probe
    from daemon.errors import InputError

    try:
        info = probe(path)
    except (InputError, OSError, ValueError, RuntimeError):
        return None
    return need(info.duration, rate, ext)


def human(n: int | float) -> str:
    """Bytes for people: 3.8 MB, 640 kB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"
