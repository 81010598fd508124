"""Blended (Chen et al. 2017): x' = (1 - alpha) x + alpha * pattern, over the whole image.

The pattern is a fixed seeded uniform-noise image (Chen et al.'s random-pattern variant; BackdoorBench blends
a Hello-Kitty picture, which would be a resource file). alpha = 0.2 at training and test time (BackdoorBench).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import register_attack
from .base import Trigger


@register_attack("blend")
class Blend(Trigger):
    summary = "blend a fixed seeded noise image into the whole picture, alpha 0.2 (Chen et al. 2017)"

    @dataclass
    class Config:
        alpha: float = 0.2

    def setup(self, gen: torch.Generator) -> None:
        if not 0.0 < self.config.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], not {self.config.alpha}")
        self.pattern = torch.rand(self.input_shape, generator=gen)

    def apply(self, x: Tensor) -> Tensor:
        a = self.config.alpha
        return (1.0 - a) * x + a * self.pattern.to(x.device, x.dtype)
