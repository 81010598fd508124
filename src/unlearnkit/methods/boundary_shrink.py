"""`boundary-shrink`: relabel each forget sample to the class of its nearest adversarial neighbour (Chen et al. 2023).

For every forget sample, one FGSM step of size `bound` (0.1 in pixel space, the paper's) on the *original*
model finds the nearest other decision region; the sample is then fine-tuned towards that region's label.
The forgotten class's boundary shrinks onto its neighbours, which is close to what a model that never saw
the class does with those images. Only the forget set is used, so it is fast. Defaults follow the reference
code: 10 epochs, SGD lr 1e-5, momentum 0.9 (SalUn's reference code searches the learning rate, as here).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _steps as S
from ._tuning import TunableConfig, TunableMethod
from .base import UnlearnTask, register_method


def neighbour_labels(oracle: nn.Module, x: Tensor, y: Tensor, bound: float) -> Tensor:
    """The original model's prediction on x + bound * sign(grad CE), clamped and rounded to 8-bit pixels."""
    x_adv = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        grad, = torch.autograd.grad(F.cross_entropy(oracle(x_adv), y), x_adv)
    x_adv = (x + bound * grad.sign()).clamp(0.0, 1.0).mul(255).round().div(255)
    with torch.no_grad():
        return oracle(x_adv).argmax(1)


@register_method("boundary-shrink")
class BoundaryShrink(TunableMethod):
    """Chen et al., "Boundary Unlearning: Rapid Forgetting of Deep Networks via Shifting the Decision Boundary",
    CVPR 2023."""

    needs = frozenset({"forget"})
    summary = "fine-tune forget samples towards the label of their FGSM neighbour (Chen et al. 2023)"
    search_space = {"lr": (1e-5, 1e-4, 1e-3)}

    @dataclass
    class Config(TunableConfig):
        epochs: int = 10
        lr: float = 1e-5
        bound: float = 0.1
        batch_size: int = 128
        optimizer: str = "sgd"
        weight_decay: float = 5e-4

    def run(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        c = self.config
        oracle = S.frozen(model)
        opt = S.optimizer(model, c.optimizer, c.lr, c.weight_decay)
        loop = S.Loop(task, "boundary-shrink", c.epochs)
        for _ in loop:
            model.train()
            for x, y in S.batches(task.forget, c.batch_size, task):
                target = neighbour_labels(oracle, x, y, c.bound)
                loop.step(model, opt, F.cross_entropy(model(x), target))
        return model.eval()
