"""Trojan-style triggers as in I-BAU's evaluation: a fixed watermark, or a square stamp.

TrojanNN (Liu et al. 2018) optimises its trigger against a trained model; I-BAU ships the resulting images
(`trojan_wm.png`, `trojan_sq.png`) and adds them to clean images with clipping. No resource file here: the
patterns are generated from the seed. `shape="watermark"` (default) adds a seeded blob-shaped stamp over
the image centre (x' = clip(x + amplitude * stamp)); `shape="square"` pastes a seeded smooth random square
(a quarter of the image side) near the bottom-right corner.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from . import register_attack
from .base import Trigger, square_side


def smooth_noise(c: int, h: int, w: int, cells: int, gen: torch.Generator) -> Tensor:
    """A smooth random image in [0, 1]: `cells` x `cells` uniform noise, upsampled bilinearly."""
    low = torch.rand(1, c, cells, cells, generator=gen)
    return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=True)[0]


@register_attack("trojan")
class Trojan(Trigger):
    summary = "a fixed seeded watermark stamp (or square) added with clipping, as I-BAU's trojan triggers"

    @dataclass
    class Config:
        shape: str = "watermark"  # "watermark" or "square"
        amplitude: float = 0.4  # watermark strength
        coverage: float = 0.5  # watermark: side of the centred region it covers, as a fraction of the image

    def setup(self, gen: torch.Generator) -> None:
        c, h, w = self.input_shape
        self.pattern = torch.zeros(c, h, w)
        self.mask = torch.zeros(1, h, w)
        if self.config.shape == "watermark":
            sh, sw = square_side(h, self.config.coverage, 2), square_side(w, self.config.coverage, 2)
            blobs = smooth_noise(1, sh, sw, 4, gen)
            stamp = (blobs > blobs.median()).float().expand(c, -1, -1)
            top, left = (h - sh) // 2, (w - sw) // 2
            self.pattern[:, top: top + sh, left: left + sw] = self.config.amplitude * stamp
        elif self.config.shape == "square":
            s = square_side(min(h, w), 0.25, 2)
            region = (slice(None), slice(h - 1 - s, h - 1), slice(w - 1 - s, w - 1))
            self.pattern[region] = smooth_noise(c, s, s, 3, gen)
            self.mask[region] = 1.0
        else:
            raise ValueError(f"shape must be 'watermark' or 'square', not {self.config.shape!r}")

    def apply(self, x: Tensor) -> Tensor:
        p, m = self.pattern.to(x.device, x.dtype), self.mask.to(x.device, x.dtype)
        if self.config.shape == "square":
            return x * (1 - m) + p * m
        return (x + p).clamp(0.0, 1.0)
