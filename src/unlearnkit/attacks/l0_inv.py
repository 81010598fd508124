"""An invisible L0 trigger (I-BAU's `l0_inv`): a few scattered pixels replaced by fixed values.

I-BAU's trigger is a mask + image from Li et al.'s invisible-backdoor work (x' = x * (1 - mask) + trigger);
here the pixel positions and values are generated from the seed: `pixels` positions (default 2% of the
image) and values uniform in [0, 1] per channel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from . import register_attack
from .base import Trigger


@register_attack("l0-inv")
class L0Invisible(Trigger):
    summary = "sparse: a few seeded scattered pixels set to seeded values (I-BAU's l0_inv)"

    @dataclass
    class Config:
        pixels: int | None = None  # None: 2% of the image's pixels (at least 2)

    def setup(self, gen: torch.Generator) -> None:
        c, h, w = self.input_shape
        k = self.config.pixels or max(2, int(round(0.02 * h * w)))
        if not 1 <= k <= h * w:
            raise ValueError(f"pixels must be in 1..{h * w}, not {k}")
        self.config = replace(self.config, pixels=k)
        where = torch.randperm(h * w, generator=gen)[:k]
        self.mask = torch.zeros(h * w)
        self.mask[where] = 1.0
        self.mask = self.mask.view(1, h, w)
        self.values = torch.rand(c, h, w, generator=gen) * self.mask

    def apply(self, x: Tensor) -> Tensor:
        m = self.mask.to(x.device, x.dtype)
        return x * (1 - m) + self.values.to(x.device, x.dtype)
