"""The coordinates the diffusion runs in: principal directions of the collected heads.

A head (K, D+1) is flattened and written in the principal directions of the collected checkpoints, keeping
the `rank` strongest, each scaled to unit variance; decoding back to parameters is one fixed linear map (a
linear autoencoder, as p-diff's latent for parameters). The coefficients are then cut into chunks of
`chunk` values, one transformer token each (G.pt's chunking, applied to these coordinates).

Why not raw parameters, as G.pt: with ~1,000 checkpoints and a denoiser small enough for 2 CPU cores, the
error of a sample is a fraction of the spread of the data in every direction it models. In raw coordinates
that is 5,130 directions, most of them run-to-run jitter (batch order, learning rate) that no prompt
predicts; here it is a few dozen. And why whole heads, not row by row: the leading directions move all class
rows together (e.g. the scale of the logits), and noise added to rows independently breaks exactly that -
on digits, 0.2 standard deviations of row-wise noise cost 13 points of retained accuracy, against 4 for the
same noise on whole-head directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class HeadBasis:
    """center (K, D+1); vectors (K*(D+1), r) with orthonormal columns; scale (r,), the std along each."""

    center: Tensor
    vectors: Tensor
    scale: Tensor

    @classmethod
    def fit(cls, heads: Tensor, rank: int, multiple: int = 1, floor: float = 1e-3) -> HeadBasis:
        """Principal directions of heads (M, K, D+1); the rank is cut to at most M-1 and to a multiple of
        `multiple` (whole tokens); scales are floored at `floor` x the largest."""
        m = heads.shape[0]
        r = min(rank, m - 1, heads[0].numel())
        r = max(multiple, r - r % multiple)
        center = heads.mean(0)
        _, s, vh = torch.linalg.svd((heads - center).flatten(1).double(), full_matrices=False)
        vectors = torch.zeros(heads[0].numel(), r)
        scale = torch.zeros(r)
        k = min(r, len(s))
        vectors[:, :k] = vh[:k].T.float()
        scale[:k] = (s[:k] / math.sqrt(max(1, m - 1))).float()
        return cls(center, vectors, scale.clamp(min=float(scale.max()) * floor + 1e-12))

    @property
    def rank(self) -> int:
        return self.vectors.shape[-1]

    def encode(self, heads: Tensor) -> Tensor:
        """Heads (..., K, D+1) -> standardised coefficients (..., r)."""
        return ((heads - self.center).flatten(-2) @ self.vectors) / self.scale

    def decode(self, z: Tensor) -> Tensor:
        """Coefficients (..., r) -> heads (..., K, D+1)."""
        return self.center + ((z * self.scale) @ self.vectors.T).view(*z.shape[:-1], *self.center.shape)

    def kept_variance(self, heads: Tensor) -> float:
        """Share of the variance of `heads` (around the center) that encoding and decoding keeps."""
        err = (self.decode(self.encode(heads)) - heads).pow(2).sum()
        return float(1 - err / (heads - self.center).pow(2).sum().clamp(min=1e-30))

    def tensors(self) -> dict[str, Tensor]:
        return {"basis.center": self.center, "basis.vectors": self.vectors, "basis.scale": self.scale}

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor]) -> HeadBasis:
        return cls(t["basis.center"], t["basis.vectors"], t["basis.scale"])
