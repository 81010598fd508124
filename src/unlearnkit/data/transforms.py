"""Batched, on-device image transforms for uint8/float NCHW tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_float(x: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is returned as float32."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def to_uint8(x: Tensor) -> Tensor:
    """float [0, 1] -> uint8, rounded and clamped."""
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8)


def resize_uint8(x: Tensor, size: int) -> Tensor:
    """Resize a uint8 NCHW batch to size x size with antialiasing, in chunks to bound memory."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = [to_uint8(F.interpolate(to_float(c), size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)) for c in x.split(1024)]
    return torch.cat(out)


def random_crop(x: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample random crop after zero padding, as one gather instead of a Python loop."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows, cols]


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Horizontal flip of a random half of the batch."""
    mask = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def augment_batch(x: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """Apply the dataset's augmentation: 'none', 'flip', 'crop' (pad 1/8 of the side) or 'crop-flip'."""
    if mode == "none":
        return x
    if mode == "flip":
        return random_flip(x, generator)
    x = random_crop(x, max(1, x.shape[-1] // 8), generator)
    if mode == "crop-flip":
        x = random_flip(x, generator)
    return x
