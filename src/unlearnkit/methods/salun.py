"""`salun`: random-label unlearning restricted to the weights most salient for the forget set (Fan et al. 2024).

The saliency of a weight is |d loss_forget / d weight|, the gradient of the forget set's cross-entropy summed
over the whole forget set at the original weights. The top `mask_ratio` share of all weights (k = 50% in
the paper's hard-threshold variant; one global threshold across layers, as in the reference code's
`generate_mask.py`) may move; the others keep their exact values. Then `random-label` runs with updates
masked. Fewer moving weights: forgetting concentrates where the forget set lives and the retained
knowledge elsewhere survives, which is why SalUn closes most of the gap to retraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.bundle import Part
from . import _steps as S
from .base import UnlearnTask, register_method
from .random_label import RandomLabel


def saliency_mask(model: nn.Module, forget: Part, ratio: float, device: torch.device,
                  batch_size: int = 256) -> S.Mask:
    """1 for the `ratio` share of parameters with the largest |gradient of the forget loss|, else 0."""
    was_training = model.training
    model.eval()  # the reference code scores saliency in eval mode: BatchNorm statistics stay put
    params = dict(model.named_parameters())
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    for x, y in forget.batches(batch_size, device):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for n, p in params.items():
            if p.grad is not None:
                grads[n] += p.grad
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    flat = torch.cat([g.abs().flatten() for g in grads.values()])
    keep = torch.zeros_like(flat)
    k = int(round(ratio * flat.numel()))
    if k > 0:
        keep[torch.topk(flat, k, sorted=False).indices] = 1.0
    out, start = {}, 0
    for n, g in grads.items():
        out[n] = keep[start:start + g.numel()].view_as(g)
        start += g.numel()
    return out


@register_method("salun")
class SalUn(RandomLabel):
    """Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency", ICLR 2024."""

    summary = "random labels, updates masked to the weights most salient for the forget set (Fan et al. 2024)"

    @dataclass
    class Config(RandomLabel.Config):
        mask_ratio: float = 0.5

    def weight_mask(self, model: nn.Module, task: UnlearnTask) -> S.Mask:
        return saliency_mask(model, task.forget, self.config.mask_ratio, task.device)
