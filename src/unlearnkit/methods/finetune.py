"""`finetune`: continue training on the retain set (unlearning) or on the clean set (backdoor removal).

Relies on catastrophic forgetting; the weakest sensible baseline (Golatkar et al. 2020; Liu et al. 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..engine.train import TrainConfig, fit
from .base import Method, UnlearnTask, register_method


@register_method("finetune")
class FineTune(Method):
    needs = frozenset({"retain"})
    backdoor_needs = frozenset({"clean"})
    summary = "fine-tune on the retain set (or the clean set, for backdoors); relies on catastrophic forgetting"

    @dataclass
    class Config:
        epochs: int = 10
        lr: float = 0.01
        batch_size: int = 128
        optimizer: str = "sgd"
        weight_decay: float = 5e-4

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        c = self.config
        data = task.clean if task.scenario == "backdoor" else task.retain
        cfg = TrainConfig(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, optimizer=c.optimizer,
                          weight_decay=c.weight_decay, augment=True)
        fit(model, data, cfg, task.device, task.generator, desc="finetune")
        return model
