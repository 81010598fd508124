"""`retrain`: the gold standard — train from scratch on the retain set with the original recipe."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from ..engine.train import fit
from .base import Method, UnlearnTask, register_method


@register_method("retrain")
class Retrain(Method):
    """Fresh initialisation, the original training recipe, the forget set left out."""

    needs = frozenset({"retain"})
    summary = "train from scratch without the forget set (the gold standard every result is compared to)"

    @dataclass
    class Config:
        epochs: int | None = None  # None: the original run's epochs
        lr: float | None = None

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        assert task.new_model is not None
        fresh = task.new_model().to(task.device)
        cfg = task.train_config
        cfg = replace(cfg, epochs=self.config.epochs or cfg.epochs, lr=self.config.lr or cfg.lr)
        fit(fresh, task.retain, cfg, task.device, task.generator, desc="retrain", checkpoint=task.checkpoint)
        return fresh
