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


def draw_augment(n: int, mode: str, side: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The random choices of `augment_batch` for n images at once, drawn on the CPU from `generator`.

    Why: drawn per batch and copied to the GPU, three small host-to-device copies per step each made the CPU wait
    for the GPU (a copy from pageable memory synchronises the stream), so the GPU idled between steps; an
    epoch's choices are drawn once and moved in one copy (`Part.batches`)."""
    out: dict[str, Tensor] = {}
    if mode in ("crop", "crop-flip"):
        pad = max(1, side // 8)
        out["oy"] = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        out["ox"] = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    if mode in ("flip", "crop-flip"):
        out["flip"] = torch.rand(n, generator=generator) < 0.5
    return out


def apply_augment(x: Tensor, mode: str, params: dict[str, Tensor]) -> Tensor:
    """Apply drawn choices (`draw_augment`, one row per image of x): 'none', 'flip', 'crop' (pad 1/8 of the side,
    per-image offsets) or 'crop-flip'."""
    if "oy" in params:
        x = _crop(x, max(1, x.shape[-1] // 8), params["oy"].to(x.device), params["ox"].to(x.device))
    if "flip" in params:
        x = torch.where(params["flip"].to(x.device)[:, None, None, None], x.flip(3), x)
    return x


def _crop(x: Tensor, pad: int, oy: Tensor, ox: Tensor) -> Tensor:
    """Per-sample crop after zero padding, as one gather instead of a Python loop."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows, cols]


def augment_batch(x: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """Apply the dataset's augmentation to one batch: 'none', 'flip', 'crop' or 'crop-flip'."""
    if mode == "none":
        return x
    return apply_augment(x, mode, draw_augment(x.shape[0], mode, x.shape[-1], generator))
