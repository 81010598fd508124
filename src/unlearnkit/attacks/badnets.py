"""BadNets (Gu et al. 2017): a small patch stamped near the bottom-right corner.

Defaults follow BackdoorBench (a white 3x3 patch on 32x32 images, scaled with the image side) at I-BAU's
one-pixel margin; `pattern="random"` stamps a fixed seeded black-and-white pattern instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from . import register_attack
from .base import Trigger, square_side


@register_attack("badnets")
class BadNets(Trigger):
    summary = "a small white (or seeded random) patch at the bottom-right corner (Gu et al. 2017)"

    @dataclass
    class Config:
        size: int | None = None  # patch side in pixels; None: 3 on a 32-pixel image, scaled with the side
        margin: int = 1  # pixels between the patch and the image border
        pattern: str = "white"  # "white" or "random"

    def setup(self, gen: torch.Generator) -> None:
        c, h, w = self.input_shape
        size = self.config.size or square_side(min(h, w), 3 / 32, 2)
        if self.config.pattern not in ("white", "random"):
            raise ValueError(f"pattern must be 'white' or 'random', not {self.config.pattern!r}")
        if size < 1 or self.config.margin < 0 or size + self.config.margin > min(h, w):
            raise ValueError(f"a {size}-pixel patch with margin {self.config.margin} does not fit {h}x{w}")
        self.config = replace(self.config, size=size)
        if self.config.pattern == "white":
            self.patch = torch.ones(c, size, size)
        else:
            self.patch = (torch.rand(c, size, size, generator=gen) < 0.5).float()

    def apply(self, x: Tensor) -> Tensor:
        s, m = self.config.size, self.config.margin
        h, w = x.shape[-2:]
        out = x.clone()
        out[..., h - m - s: h - m, w - m - s: w - m] = self.patch.to(x.device, x.dtype)
        return out
