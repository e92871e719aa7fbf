"""Silero VAD: speech probability per 32 ms window, whole-file or one segment at a time.

Runs only inside worker children (imports torch through silero-vad).

Silero VAD is a stateless front end (STFT and four convolutions, ~85 % of its cost: each
window's 128 features depend only on that window and the 64 samples before it) followed by
one LSTM cell whose state runs through the whole file.  ``SplitVad`` runs the two halves
apart: the front end for a segment of the file in one batched call, on any worker, in any
order (``segment_features``); the LSTM over the segments in order, carrying its state
(``probabilities``).  The probabilities therefore equal the whole-file pass (within 1e-3,
float rounding) wherever the file is split, which is what keeps the chunk cuts where the
whole-file VAD puts them.
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr

VAD_RATE = 16000
WINDOW = 512  # samples at 16 kHz = 32 ms
CONTEXT = 64  # samples of the previous window the model sees again
#: Windows per VAD segment: 60 s, a multiple of 125 windows (4 s), so every segment starts on a
#: whole frame at any integer sample rate.
SEGMENT_WINDOWS = 1875
#: Frames of resampler context read on each side of a segment (in seconds of audio).
RESAMPLE_MARGIN_S = 1
_MODEL = None
_SPLIT = None


def new_model():
    """A fresh Silero VAD model from the silero-vad package (offline).

    The ONNX build: three times faster per 32 ms window than the JIT one here
    (RTF 0.0055 against 0.0175 on one thread), same model, one onnxruntime thread.
    """
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)


def load_model():
    """The process's Silero VAD (ONNX), loaded once."""
    global _MODEL
    if _MODEL is None:
        _MODEL = new_model()
    return _MODEL


class SplitVad:
    """The JIT build of Silero VAD, its stateless front end and its LSTM run separately."""

    BATCH = 2048  # windows per front-end call: one call per 60 s segment

    def __init__(self):
        import torch
        from silero_vad import load_silero_vad

        model = load_silero_vad(onnx=False)._model  # the 16 kHz network
        self._torch = torch
        self._stft, self._encoder = model.stft, model.encoder
        cell, self._head = model.decoder.rnn, model.decoder.decoder
        # nn.LSTM runs the same recurrence as the model's LSTMCell, one C++ loop per segment
        # instead of one Python call per window.
        self._lstm = torch.nn.LSTM(128, 128, batch_first=True)
        with torch.no_grad():
            for mine, theirs in (("weight_ih_l0", "weight_ih"), ("weight_hh_l0", "weight_hh"),
                                 ("bias_ih_l0", "bias_ih"), ("bias_hh_l0", "bias_hh")):
                getattr(self._lstm, mine).copy_(getattr(cell, theirs))
        self._lstm.eval()

    def features(self, audio16: np.ndarray, context: np.ndarray) -> np.ndarray:
        """(windows, 128) front-end features of ``audio16`` (a whole number of windows), given
        the ``CONTEXT`` samples before it."""
        torch = self._torch
        n = len(audio16) // WINDOW
        padded = np.concatenate([context.astype(np.float32), audio16[: n * WINDOW]])
        idx = np.arange(n)[:, None] * WINDOW + np.arange(WINDOW + CONTEXT)[None, :]
        frames = torch.from_numpy(padded[idx])
        out = []
        with torch.inference_mode():
            for i in range(0, n, self.BATCH):
                out.append(self._encoder(self._stft(frames[i:i + self.BATCH])).squeeze(-1))
        if not out:
            return np.zeros((0, 128), np.float32)
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def probabilities(self, features: np.ndarray, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Speech probabilities of consecutive windows and the LSTM state after them
        (``state``: (2, 128) h and c from the previous segment, None at the file's start)."""
        torch = self._torch
        if not len(features):
            return np.zeros(0, np.float32), (state if state is not None else np.zeros((2, 128), np.float32))
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None]
            if state is None:
                h, (hn, cn) = self._lstm(x)
            else:
                st = torch.from_numpy(np.asarray(state, dtype=np.float32))
                h, (hn, cn) = self._lstm(x, (st[0][None, None], st[1][None, None]))
            probs = self._head(h[0].unsqueeze(-1))[:, 0, 0]
        return probs.numpy().astype(np.float32), torch.stack([hn[0, 0], cn[0, 0]]).numpy()


def load_split() -> SplitVad:
    """The process's split Silero VAD, loaded once."""
    global _SPLIT
    if _SPLIT is None:
        _SPLIT = SplitVad()
    return _SPLIT


# ---- segments --------------------------------------------------------------------------------------
def segment_count(frames: int, rate: int) -> int:
    return max(1, -(-window_count(frames, rate) // SEGMENT_WINDOWS))


def window_count(frames: int, rate: int) -> int:
    """Windows of the whole file: its 16 kHz length, the last window padded with zeros."""
    return -(-int(round(frames * VAD_RATE / rate)) // WINDOW)


def segment_frames(index: int, rate: int) -> tuple[int, int]:
    """Frames [start, end) at ``rate`` that segment ``index`` covers (the last may end earlier)."""
    per = SEGMENT_WINDOWS * WINDOW * rate // VAD_RATE
    return index * per, (index + 1) * per


def read_span(index: int, rate: int, total: int | None) -> tuple[int, int]:
    """Frames to read for segment ``index``: its own plus ``RESAMPLE_MARGIN_S`` each side
    (clipped to the file; ``total`` None while the file's length is not known yet)."""
    start, end = segment_frames(index, rate)
    hi = end + RESAMPLE_MARGIN_S * rate
    return max(0, start - RESAMPLE_MARGIN_S * rate), hi if total is None else min(hi, total)


def segment_audio(audio: np.ndarray, rate: int, index: int, lo: int, total: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Segment ``index`` at 16 kHz and the ``CONTEXT`` samples before it, from ``audio``: the
    frames read from ``lo`` on (``read_span``).  Pure: arrays in, arrays out."""
    start, _ = segment_frames(index, rate)
    x = np.asarray(audio, dtype=np.float32)
    x16 = soxr.resample(x, rate, VAD_RATE, quality="HQ").astype(np.float32) if rate != VAD_RATE else x
    # lo is a whole number of seconds before start, so this offset is exact
    offset = (start - lo) * VAD_RATE // rate
    windows = SEGMENT_WINDOWS
    if total is not None:
        windows = min(windows, window_count(total, rate) - index * SEGMENT_WINDOWS)
        end16 = int(round(total * VAD_RATE / rate)) - index * SEGMENT_WINDOWS * WINDOW
    else:
        end16 = windows * WINDOW
    seg = x16[offset:offset + min(end16, windows * WINDOW)]
    seg = np.concatenate([seg, np.zeros(windows * WINDOW - len(seg), np.float32)])
    context = x16[max(0, offset - CONTEXT):offset]
    context = np.concatenate([np.zeros(CONTEXT - len(context), np.float32), context])
    return seg, context


# ---- the whole file in one pass (the reference the segmented plan is measured against) ----------------
def speech_probabilities(wav_path: str, model=None, block_seconds: float = 30.0) -> tuple[np.ndarray, float]:
    """Return (probabilities, window seconds in the WAV's time) for the whole file, block by block,
    through the ONNX model window after window.

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
            if block.ndim > 1:
                block = block.mean(axis=1, dtype=np.float32)
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
