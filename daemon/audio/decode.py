"""Decode any supported input once into the working WAV: mono float32 at the processing rate."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr

from daemon.audio.io import TRUNCATION_TOLERANCE, AudioInfo, read_blocks
from daemon.errors import InputError


def decode_to_wav(info: AudioInfo, out_wav: str, sample_rate: int, *, max_seconds: float | None = None) -> int:
    """Write ``info``'s audio to ``out_wav`` (mono float32, ``sample_rate``); return its frame count.

    Streaming: one block in memory at a time.  Channels are averaged.
    """
    if max_seconds is not None and info.duration > max_seconds:
        raise InputError(info.path, f"is {info.duration:.0f} s long; the limit is {max_seconds:.0f} s "
                                    "(VOICE_DAEMON_MAX_INPUT_SECONDS)")
    resampler = None
    if info.sample_rate != sample_rate:
        resampler = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality="HQ")
    decoded = written = 0
    limit = None if max_seconds is None else int(max_seconds * info.sample_rate) + info.sample_rate
    with sf.SoundFile(out_wav, "w", samplerate=sample_rate, channels=1, format="WAV", subtype="FLOAT") as out:
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
            out.write(mono)
            written += len(mono)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            out.write(tail)
            written += len(tail)
        # Resampling rounds; make the length exactly the input's duration at the new rate.
        want = int(round(decoded * sample_rate / info.sample_rate))
        if written < want:
            out.write(np.zeros(want - written, dtype=np.float32))
            written = want
    if written > want:
        with sf.SoundFile(out_wav, "r+") as f:
            f.truncate(want)
        written = want
    if decoded == 0:
        raise InputError(info.path, "contains no audio samples (zero length)")
    if info.reader != "av" and decoded < info.frames * TRUNCATION_TOLERANCE:
        raise InputError(info.path, f"is truncated or damaged: decoded {decoded / info.sample_rate:.2f} s "
                                    f"of the {info.duration:.2f} s its header declares")
    return written
