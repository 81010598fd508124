"""`grad-ascent`: gradient ascent on the forget set (Thudi et al. 2022; Graves et al. 2021).

Maximises the cross-entropy of the forget samples and nothing else, so nothing protects the retained
knowledge: the result depends sharply on the learning rate and the number of steps, which is why it is a
baseline. Defaults from SalUn's / Sparse-unlearning's reference code for CIFAR-10: 5 epochs, SGD lr 1e-4,
momentum 0.9, weight decay 5e-4 (their search range 1e-5 .. 1e-3 is this method's search space).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from . import _steps as S
from ._tuning import TunableConfig, TunableMethod
from .base import UnlearnTask, register_method


@register_method("grad-ascent")
class GradAscent(TunableMethod):
    """Thudi et al., "Unrolling SGD: Understanding Factors Influencing Machine Unlearning", EuroS&P 2022."""

    needs = frozenset({"forget"})
    summary = "gradient ascent on the forget set's loss; no retain-set protection (Thudi et al. 2022)"
    search_space = {"lr": (1e-5, 1e-4, 1e-3)}

    @dataclass
    class Config(TunableConfig):
        epochs: int = 5
        lr: float = 1e-4
        batch_size: int = 128
        optimizer: str = "sgd"
        weight_decay: float = 5e-4

    def run(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        c = self.config
        opt = S.optimizer(model, c.optimizer, c.lr, c.weight_decay)
        loop = S.Loop(task, "grad-ascent", c.epochs)
        for _ in loop:
            model.train()
            for x, y in S.batches(task.forget, c.batch_size, task):
                loop.step(model, opt, -F.cross_entropy(model(x), y))
        return model.eval()
