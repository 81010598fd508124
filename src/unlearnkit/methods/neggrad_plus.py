"""`neggrad-plus`: descend on the retain set while ascending on the forget set (Kurmanji et al. 2023).

NegGrad+ from the SCRUB paper: loss = alpha * CE(retain batch) - (1 - alpha) * CE(forget batch), one retain
and one forget batch per step. Plain gradient ascent destroys the model; the retain term holds it together,
and alpha sets the balance. The reference code loops over the retain set with the forget set cycling; here
the loop runs over the forget set with the retain set cycling, so the cost is set by the (small) forget set
and a few epochs stay far cheaper than retraining. SGD lr 0.01 as in the reference code's `negative_grad`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from . import _steps as S
from ._tuning import TunableConfig, TunableMethod
from .base import UnlearnTask, register_method


@register_method("neggrad-plus")
class NegGradPlus(TunableMethod):
    """Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023 (the NegGrad+ baseline)."""

    needs = frozenset({"forget", "retain"})
    summary = "retain-set descent plus forget-set ascent, weighted by alpha (NegGrad+, Kurmanji et al. 2023)"
    search_space = {"lr": (0.003, 0.01), "alpha": (0.95, 0.99)}

    @dataclass
    class Config(TunableConfig):
        epochs: int = 5
        lr: float = 0.01
        alpha: float = 0.99
        batch_size: int = 128
        optimizer: str = "sgd"
        weight_decay: float = 5e-4

    def run(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        c = self.config
        opt = S.optimizer(model, c.optimizer, c.lr, c.weight_decay)
        retain = S.cycle(task.retain, c.batch_size, task)
        loop = S.Loop(task, "neggrad-plus", c.epochs)
        for _ in loop:
            model.train()
            for xf, yf in S.batches(task.forget, c.batch_size, task):
                xr, yr = next(retain)
                loss = c.alpha * F.cross_entropy(model(xr), yr) - (1 - c.alpha) * F.cross_entropy(model(xf), yf)
                loop.step(model, opt, loss)
        return model.eval()
