"""Silero VAD over the working WAV, streamed: speech probability per 32 ms window.

Runs only inside worker children (imports torch through silero-vad).
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr

VAD_RATE = 16000
WINDOW = 512  # samples at 16 kHz = 32 ms
CONTEXT = 64  # samples of the previous window the model sees again
_MODEL = None


def new_model():
    """A fresh Silero VAD model from the silero-vad package (offline).

    The ONNX build: three times faster per 32 ms window than the JIT one here
    (RTF 0.0055 against 0.0175 on one thread), same model, one onnxruntime thread.
    """
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)


def load_model():
    """The process's Silero VAD, loaded once."""
    global _MODEL
    if _MODEL is None:
        _MODEL = new_model()
    return _MODEL


def speech_probabilities(wav_path: str, model=None, block_seconds: float = 30.0) -> tuple[np.ndarray, float]:
    """Return (probabilities, window seconds in the WAV's time) for the whole file, block by block.

    Drives the ONNX session directly with numpy (the wrapper's per-window torch
    conversions cost more than the model itself).  The model keeps recurrent
    state: one model must not serve two threads at once.
    """
    session = (model or load_model()).session
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros(CONTEXT, dtype=np.float32)
    sr = np.array(VAD_RATE, dtype=np.int64)
    probs: list[float] = []
    pending = np.zeros(0, dtype=np.float32)
    with sf.SoundFile(wav_path) as f:
        rate = f.samplerate
        resampler = soxr.ResampleStream(rate, VAD_RATE, 1, dtype="float32") if rate != VAD_RATE else None
        block_frames = int(block_seconds * rate)
        while True:
            block = f.read(block_frames, dtype="float32")
            last = len(block) < block_frames
            if resampler is not None:
                block = resampler.resample_chunk(block, last=last)
            pending = np.concatenate([pending, block])
            if last and len(pending) % WINDOW:
                pending = np.concatenate([pending, np.zeros(WINDOW - len(pending) % WINDOW, np.float32)])
            n = len(pending) // WINDOW
            for i in range(n):
                window = pending[i * WINDOW:(i + 1) * WINDOW]
                x = np.concatenate([context, window])[None, :]
                out, state = session.run(None, {"input": x, "state": state, "sr": sr})
                probs.append(float(out[0, 0]))
                context = window[-CONTEXT:]
            pending = pending[n * WINDOW:]
            if last:
                break
    return np.asarray(probs, dtype=np.float32), WINDOW / VAD_RATE
