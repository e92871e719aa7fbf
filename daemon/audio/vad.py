"""Silero VAD over the working WAV, streamed: speech probability per 32 ms window.

Runs only inside worker children (imports torch through silero-vad).
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr

VAD_RATE = 16000
WINDOW = 512  # samples at 16 kHz = 32 ms
_MODEL = None


def new_model():
    """A fresh Silero VAD model from the silero-vad package (offline)."""
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=False)


def load_model():
    """The process's Silero VAD, loaded once."""
    global _MODEL
    if _MODEL is None:
        _MODEL = new_model()
    return _MODEL


def speech_probabilities(wav_path: str, model=None, block_seconds: float = 30.0) -> tuple[np.ndarray, float]:
    """Return (probabilities, window seconds in the WAV's time) for the whole file, block by block.

    The model keeps recurrent state: one model must not serve two threads at once.
    """
    import torch

    model = model or load_model()
    model.reset_states()
    probs: list[float] = []
    pending = np.zeros(0, dtype=np.float32)
    with sf.SoundFile(wav_path) as f:
        rate = f.samplerate
        resampler = soxr.ResampleStream(rate, VAD_RATE, 1, dtype="float32") if rate != VAD_RATE else None
        block_frames = int(block_seconds * rate)
        with torch.inference_mode():
            while True:
                block = f.read(block_frames, dtype="float32")
                last = len(block) < block_frames
                if resampler is not None:
                    block = resampler.resample_chunk(block, last=last)
                pending = np.concatenate([pending, block])
                n = len(pending) // WINDOW
                if last and len(pending) % WINDOW:
                    pending = np.concatenate([pending, np.zeros(WINDOW - len(pending) % WINDOW, np.float32)])
                    n += 1
                windows = torch.from_numpy(pending[: n * WINDOW].copy()).reshape(n, WINDOW)
                for w in windows:
                    probs.append(float(model(w.unsqueeze(0), VAD_RATE)))
                pending = pending[n * WINDOW:]
                if last:
                    break
    model.reset_states()
    return np.asarray(probs, dtype=np.float32), WINDOW / VAD_RATE
