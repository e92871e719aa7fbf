"""Decode any supported input once into the working audio: raw mono float32 at the processing rate.

The working audio is written front to back while later stages already read it: a reader may
use every whole frame below the file's current size (``frames_ready``).  A decode that is run
again (a retry after its worker died) overwrites the same bytes with the same values and
never truncates below what it wrote before, so a reader never sees a frame change or vanish.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import soxr

from daemon.audio.io import TRUNCATION_TOLERANCE, AudioInfo, read_blocks
from daemon.errors import InputError

FRAME_BYTES = 4  # float32 mono
#: Resampled frames held back until the end: the resampler's last output and the length
#: correction may only change the file's tail, never frames a reader has already taken.
HOLD_BACK = 16384


def frames_ready(path: str) -> int:
    """Whole frames of the working audio on disk so far."""
    try:
        return os.stat(path).st_size // FRAME_BYTES
    except FileNotFoundError:
        return 0


def decode_stream(info: AudioInfo, out_raw: str, sample_rate: int, *, max_seconds: float | None = None,
                  tell: Callable[[int], None] = lambda frames: None) -> int:
    """Write ``info``'s audio to ``out_raw`` (mono float32, ``sample_rate``), front to back;
    return its frame count, exactly the input's duration at the new rate.  ``tell(frames)`` hears
    how many frames are on disk after each block (``progress.Teller``).

    Streaming: one block in memory at a time.  Channels are averaged.
    """
    if max_seconds is not None and info.duration > max_seconds:
        raise InputError(info.path, f"is {info.duration:.0f} s long; the limit is {max_seconds:.0f} s "
                                    "(VOICE_DAEMON_MAX_INPUT_SECONDS)")
    resampler = None
    if info.sample_rate != sample_rate:
        resampler = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality="HQ")
    decoded = written = 0
    held = np.zeros(0, dtype=np.float32)
    limit = None if max_seconds is None else int(max_seconds * info.sample_rate) + info.sample_rate
    fd = os.open(out_raw, os.O_WRONLY | os.O_CREAT, 0o644)  # no O_TRUNC: see the module's doc
    try:
        for block in read_blocks(info):
            decoded += len(block)
            if limit is not None and decoded > limit:
                raise InputError(info.path, f"is longer than the limit of {max_seconds:.0f} s "
                                            "(VOICE_DAEMON_MAX_INPUT_SECONDS)")
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            # A NaN or an infinity carries no sound: silence, not float32's largest value (which
            # would swamp the engine's DSP and clip the whole chunk).
            mono = np.nan_to_num(mono, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            if resampler is not None:
                mono = resampler.resample_chunk(mono)
            held = np.concatenate([held, mono])
            if len(held) > HOLD_BACK:
                written += _write_at(fd, written, held[:-HOLD_BACK])
                held = held[-HOLD_BACK:]
                tell(written)
        if resampler is not None:
            held = np.concatenate([held, resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)])
        if decoded == 0:
            raise InputError(info.path, "contains no audio samples (zero length)")
        # Resampling rounds; make the length exactly the input's duration at the new rate.
        want = int(round(decoded * sample_rate / info.sample_rate))
        tail = want - written
        if tail < 0:
            raise RuntimeError(f"decoder wrote {written} frames, more than the {want} the input holds")
        held = np.concatenate([held, np.zeros(max(0, tail - len(held)), np.float32)])[:tail]
        written += _write_at(fd, written, held)
        os.ftruncate(fd, written * FRAME_BYTES)
    finally:
        os.close(fd)
    if info.reader != "av" and decoded < info.frames * TRUNCATION_TOLERANCE:
        raise InputError(info.path, f"is truncated or damaged: decoded {decoded / info.sample_rate:.2f} s "
                                    f"of the {info.duration:.2f} s its header declares")
    return written


def _write_at(fd: int, frame: int, samples: np.ndarray) -> int:
    data = np.ascontiguousarray(samples, dtype=np.float32).tobytes()
    view, offset = memoryview(data), frame * FRAME_BYTES
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
    return len(samples)


def read_frames(path: str, start: int, end: int) -> np.ndarray:
    """Frames [start, end) of the working audio (or of any raw mono float32 file)."""
    data = np.fromfile(path, dtype=np.float32, count=max(0, end - start), offset=start * FRAME_BYTES)
    if len(data) != end - start:
        raise RuntimeError(f"{path} holds {frames_ready(path)} frames; frames [{start}, {end}) were asked for")
    return data
