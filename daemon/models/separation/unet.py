"""Spleeter's 2-stems U-Net (Deezer, MIT) as a PyTorch module, with the weights of its TensorFlow checkpoint.

A port of ``spleeter/model/functions/unet.py``: per stem, six 5×5 stride-2 convolutions (16…512 filters;
batch norm, leaky ReLU 0.2), six 5×5 stride-2 transposed convolutions (ReLU, then batch norm; dropout is
off at inference) whose inputs are concatenated with the encoder's raw convolution outputs, and a 4×4
convolution dilated by 2 with a sigmoid: a mask that multiplies the input magnitude. Tensors are
(batch, 2 channels, time frames, frequency bins); TensorFlow's are (batch, time, bins, channels).

Keras ``padding="same"`` with stride 2 pads one more at the end than at the start, which PyTorch's
symmetric padding cannot say: the encoder pads explicitly, the decoder crops its transposed outputs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from daemon.models.separation.checkpoint import Checkpoint

FILTERS = (16, 32, 64, 128, 256, 512)
BN_EPS = 1e-3           # Keras' BatchNormalization default
STEMS = ("vocals", "accompaniment")  # the checkpoint's order: the vocals net's layers come first


def _conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """TF (kh, kw, in, out) -> torch (out, in, kh, kw); for a transposed conv TF's (kh, kw, out, in)
    becomes torch's (in, out, kh, kw): the same permutation."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


class _BatchNorm(nn.Module):
    """Inference batch norm folded to a scale and shift per channel."""

    def __init__(self, ckpt: Checkpoint, name: str):
        super().__init__()
        scale = ckpt[f"{name}/gamma"] / np.sqrt(ckpt[f"{name}/moving_variance"] + BN_EPS)
        shift = ckpt[f"{name}/beta"] - ckpt[f"{name}/moving_mean"] * scale
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)).view(1, -1, 1, 1))
        self.register_buffer("shift", torch.from_numpy(shift.astype(np.float32)).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x, self.scale)


def _suffix(i: int) -> str:
    return f"_{i}" if i else ""


class UNet(nn.Module):
    """One stem's U-Net. ``first`` is the index of its first layer of each kind in the checkpoint
    (TensorFlow numbers layers in creation order: the vocals net takes 0.., the accompaniment's follow)."""

    def __init__(self, ckpt: Checkpoint, stem: int):
        super().__init__()
        conv0, deconv0, bn0 = 7 * stem, 6 * stem, 12 * stem

        def param(name: str, i: int, kind: str) -> nn.Parameter:
            value = ckpt[f"{name}{_suffix(i)}/{kind}"]
            return nn.Parameter(_conv_weight(value) if kind == "kernel" else torch.from_numpy(value),
                                requires_grad=False)

        self.enc_w = nn.ParameterList(param("conv2d", conv0 + i, "kernel") for i in range(6))
        self.enc_b = nn.ParameterList(param("conv2d", conv0 + i, "bias") for i in range(6))
        self.dec_w = nn.ParameterList(param("conv2d_transpose", deconv0 + i, "kernel") for i in range(6))
        self.dec_b = nn.ParameterList(param("conv2d_transpose", deconv0 + i, "bias") for i in range(6))
        # Batch norms 0-4 follow encoder convs 1-5 (the sixth one's output is never used), 6-11 the decoder.
        self.enc_bn = nn.ModuleList(_BatchNorm(ckpt, f"batch_normalization{_suffix(bn0 + i)}") for i in range(5))
        self.dec_bn = nn.ModuleList(_BatchNorm(ckpt, f"batch_normalization{_suffix(bn0 + 6 + i)}")
                                    for i in range(6))
        self.out_w = param("conv2d", conv0 + 6, "kernel")
        self.out_b = param("conv2d", conv0 + 6, "bias")

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(batch, 2, T, 1024) magnitudes, T a multiple of 64 -> the stem's estimated magnitudes."""
        skips, x = [], mag
        for i in range(6):
            # "same" for a 5x5 kernel at stride 2 on an even size: 1 before, 2 after.
            conv = F.conv2d(F.pad(x, (1, 2, 1, 2)), self.enc_w[i], self.enc_b[i], stride=2)
            skips.append(conv)
            if i < 5:
                x = F.leaky_relu(self.enc_bn[i](conv), 0.2)
        x = skips[5]
        for i in range(6):
            up = F.conv_transpose2d(x, self.dec_w[i], self.dec_b[i], stride=2)
            # The full transposed output is 2n+3 long; "same" keeps 2n, starting where the forward pad ended.
            up = self.dec_bn[i](F.relu(up[:, :, 1:-2, 1:-2]))
            x = torch.cat([skips[4 - i], up], dim=1) if i < 5 else up
        mask = torch.sigmoid(F.conv2d(F.pad(x, (3, 3, 3, 3)), self.out_w, self.out_b, dilation=2))
        return mask * mag


class TwoStems(nn.Module):
    """The vocals and accompaniment U-Nets of a Spleeter 2-stems checkpoint."""

    def __init__(self, ckpt: Checkpoint):
        super().__init__()
        self.vocals = UNet(ckpt, 0)
        self.accompaniment = UNet(ckpt, 1)

    def forward(self, mag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vocals(mag), self.accompaniment(mag)
