"""The check of every output before it is published: the file on disk is what was meant.

Peers have published outputs cut short and called them done.  So the encoded file, still under
its temporary name, is read back before the rename makes it visible:

- it decodes, first block to last, with the readers used for inputs;
- its sample rate is the one it was written at;
- its length is the input's, ±10 ms, plus the codec's known padding (AAC in M4A ends on a whole
  1024-sample frame; libsndfile's WAV, FLAC, MP3, Vorbis and Opus decode to exactly the frames
  written, measured at 8–48 kHz);
- every sample is a finite number;
- it is not silent (peak under −60 dBFS) when the input had speech.

One block is in memory at a time, whatever the length: the cost is one decode of the output.
A failed check raises ``OutputCheckError``: an attempt that failed, so the daemon retries it,
then quarantines the input with the check's reason.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from daemon.audio import io as aio
from daemon.errors import InputError, OutputCheckError

TOLERANCE_SECONDS = 0.010
#: Frames a codec may add at the end beyond TOLERANCE_SECONDS (measured; see the module doc).
PADDING_FRAMES = {"m4a": 2048}
SILENT_PEAK_DBFS = -60.0
#: Less speech than this (Silero VAD seconds) may be a click the VAD took for speech: no sound required.
MIN_SPEECH_SECONDS = 0.5


def check_output(path: str | Path, *, frames: int | None, sample_rate: int, speech_seconds: float = 0.0,
                 name: str | Path | None = None) -> dict:
    """Read ``path`` back and check it against what was written: ``frames`` at ``sample_rate``
    (None: length unknown, not checked), ``speech_seconds`` of speech in the input.

    Returns the check's figures; raises ``OutputCheckError`` naming ``name`` (default ``path``)."""
    t0 = time.perf_counter()
    label = str(name or path)
    ext = aio.writer_for(path)
    decoded, peak, bad = _read_back(path, label, sample_rate, expect_empty=frames is not None
                                    and frames <= TOLERANCE_SECONDS * sample_rate)
    figures = {
        "decoded_seconds": round(decoded / sample_rate, 3),
        "difference_ms": None if frames is None else round((decoded - frames) / sample_rate * 1000, 1),
        "allowed_ms": round((TOLERANCE_SECONDS + PADDING_FRAMES.get(ext, 0) / sample_rate) * 1000, 1),
        "peak_dbfs": round(20 * math.log10(peak), 1) if peak > 0 else None,
        "non_finite": bad,
    }
    if frames is not None:
        short, long = frames - decoded, decoded - frames
        if short > TOLERANCE_SECONDS * sample_rate or long > TOLERANCE_SECONDS * sample_rate + PADDING_FRAMES.get(ext, 0):
            raise OutputCheckError(label, f"it decodes to {decoded / sample_rate:.3f} s, not the input's "
                                          f"{frames / sample_rate:.3f} s (allowed: {figures['allowed_ms']} ms)")
    if bad:
        raise OutputCheckError(label, f"{bad} of its samples are not finite numbers (NaN or infinity)")
    silent = peak <= 10 ** (SILENT_PEAK_DBFS / 20)
    if silent and speech_seconds >= MIN_SPEECH_SECONDS:
        level = "no signal at all" if peak == 0 else f"peak {figures['peak_dbfs']} dBFS"
        raise OutputCheckError(label, f"it is silent ({level}) though the input has {speech_seconds:.1f} s "
                                      "of speech")
    figures["seconds"] = round(time.perf_counter() - t0, 3)
    return figures


def _read_back(path, label: str, sample_rate: int, *, expect_empty: bool) -> tuple[int, float, int]:
    """(frames, peak, non-finite samples) of ``path``, decoded block by block."""
    try:
        info = aio.probe(path)
    except InputError as exc:
        if expect_empty and "no audio samples" in exc.cause:
            return 0, 0.0, 0  # an output of a few samples: AAC may hold no whole frame of it
        raise OutputCheckError(label, f"it {exc.cause}") from exc
    if info.sample_rate != sample_rate:
        raise OutputCheckError(label, f"it is {info.sample_rate} Hz, not the {sample_rate} Hz it was written at")
    frames, peak, bad = 0, 0.0, 0
    try:
        for block in aio.read_blocks(info):
            frames += len(block)
            finite = np.isfinite(block)
            if not finite.all():
                bad += int(block.size - np.count_nonzero(finite))
                block = np.where(finite, block, 0.0)
            if len(block):
                peak = max(peak, float(np.max(np.abs(block))))
    except InputError as exc:
        raise OutputCheckError(label, f"it {exc.cause}") from exc
    return frames, peak, bad
