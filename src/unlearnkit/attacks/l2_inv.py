"""An invisible L2 trigger (I-BAU's `l2_inv`): a fixed full-image perturbation of small L2 norm, added.

I-BAU adds an optimised low-norm image (x' = clip(x + trigger)); here the perturbation is seeded Gaussian
noise rescaled to `rms` per pixel (default 0.05, i.e. about 13/255), its L2 norm being rms * sqrt(C*H*W).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import register_attack
from .base import Trigger


@register_attack("l2-inv")
class L2Invisible(Trigger):
    summary = "a seeded full-image perturbation of small L2 norm (rms 0.05), added (I-BAU's l2_inv)"

    @dataclass
    class Config:
        rms: float = 0.05

    def setup(self, gen: torch.Generator) -> None:
        if self.config.rms <= 0:
            raise ValueError(f"rms must be positive, not {self.config.rms}")
        noise = torch.randn(self.input_shape, generator=gen)
        self.pattern = noise * (self.config.rms / noise.pow(2).mean().sqrt())

    def apply(self, x: Tensor) -> Tensor:
        return (x + self.pattern.to(x.device, x.dtype)).clamp(0.0, 1.0)
