"""WaNet (Nguyen & Tran 2021): an imperceptible smooth warp of the whole image, applied with `grid_sample`.

The warp field: a seeded k x k random field in [-1, 1], scaled so its mean magnitude is 1, upsampled
bicubically to the image size; grid = clamp((identity + s * field / H) * grid_rescale, -1, 1). Defaults are
BackdoorBench's (k = 4, s = 0.5, grid_rescale = 1).

"Noise mode": besides the poisoned samples, `cross_ratio` x ratio of the training set (2x by default) are
"cross" samples warped with the backdoor field plus per-sample random noise, keeping their true labels, so
the model must learn the exact warp rather than any warp. The original attack redraws the poison and cross
samples every batch; here both sets are fixed by the spec (indices and per-sample noise seeded), so a
poisoned dataset is rebuilt exactly from meta.json.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from . import register_attack
from .base import LabelMap, Trigger, stamp


@register_attack("wanet")
class WaNet(Trigger):
    summary = "a smooth seeded warping field (k 4, s 0.5) with noise-mode cross samples (Nguyen & Tran 2021)"

    @dataclass
    class Config:
        k: int = 4
        s: float = 0.5
        grid_rescale: float = 1.0
        cross_ratio: float = 2.0  # cross (noise-mode) samples, as a multiple of the poison ratio

    def setup(self, gen: torch.Generator) -> None:
        _, h, w = self.input_shape
        k = self.config.k
        if k < 2 or self.config.cross_ratio < 0:
            raise ValueError("k must be >= 2 and cross_ratio >= 0")
        ins = torch.rand(1, 2, k, k, generator=gen) * 2 - 1
        ins = ins / ins.abs().mean()
        noise = F.interpolate(ins, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        rows, cols = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        identity = torch.stack((cols, rows), 2)[None]
        self.grid = ((identity + self.config.s * noise / h) * self.config.grid_rescale).clamp(-1, 1)

    def warp(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        grid = self.grid.to(x.device, x.dtype).expand(len(x), -1, -1, -1)
        if noise is not None:
            grid = (grid + noise.to(x.device, x.dtype) / x.shape[-2]).clamp(-1, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True).clamp(0, 1)

    def apply(self, x: Tensor) -> Tensor:
        return self.warp(x)

    def select(self, y: Tensor, candidates: Tensor, label_map: LabelMap, ratio: float,
               gen: torch.Generator) -> dict[str, list[int]]:
        chosen = super().select(y, candidates, label_map, ratio, gen)
        rest = candidates[~torch.isin(candidates, torch.tensor(chosen["indices"], dtype=torch.long))]
        n = min(len(rest), int(round(self.config.cross_ratio * ratio * len(candidates))))
        cross = rest[torch.randperm(len(rest), generator=gen)[:n]]
        return {**chosen, "cross_indices": torch.sort(cross).values.tolist()}

    def poison(self, x: Tensor, y: Tensor, spec: dict, label_map: LabelMap, device: torch.device) -> None:
        super().poison(x, y, spec, label_map, device)
        cross = torch.tensor(spec.get("cross_indices", []), dtype=torch.long)
        if len(cross):
            _, h, w = self.input_shape
            gen = torch.Generator().manual_seed(int(spec["seed"]) + 7)
            noise = torch.rand(len(cross), h, w, 2, generator=gen) * 2 - 1
            x[cross] = stamp(_CrossWarp(self, noise), x[cross], device, chunk=len(cross))


class _CrossWarp:
    """The backdoor warp plus each cross sample's own noise (labels untouched)."""

    def __init__(self, wanet: WaNet, noise: Tensor) -> None:
        self.wanet, self.noise = wanet, noise

    def apply(self, x: Tensor) -> Tensor:
        return self.wanet.warp(x, self.noise)
