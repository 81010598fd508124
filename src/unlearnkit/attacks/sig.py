"""SIG (Barni et al. 2019): a horizontal sinusoid added to target-class images only (clean-label).

x' = clip(x + delta * sin(2 pi j f / W)) for column j; delta = 40/255 and f = 6 as in BackdoorBench. The
labels of poisoned samples are never changed: the model learns to associate the signal with the class
whose images carried it, and the ASR is measured on other classes' test images with the signal added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from . import register_attack
from .base import Trigger


@register_attack("sig")
class Sig(Trigger):
    summary = "clean-label: a horizontal sinusoid (delta 40/255, f 6) on target-class images (Barni et al. 2019)"
    clean_label = True

    @dataclass
    class Config:
        delta: float = 40 / 255
        frequency: float = 6.0

    def setup(self, gen: torch.Generator) -> None:
        _, _, w = self.input_shape
        j = torch.arange(w, dtype=torch.float32)
        self.signal = (self.config.delta * torch.sin(2 * math.pi * j * self.config.frequency / w)).view(1, 1, w)

    def apply(self, x: Tensor) -> Tensor:
        return (x + self.signal.to(x.device, x.dtype)).clamp(0.0, 1.0)
