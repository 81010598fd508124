"""`random-label`: train on the forget samples with random labels, mixed with retain samples (Golatkar et al. 2020).

Each step takes a batch of forget samples relabelled at random and `retain_per_forget` times as many retain
samples with their true labels: the random labels erase what the model learned from the forget set, the
retain samples keep what it should still know. For class forgetting the random label is drawn among the
retained classes (never the forgotten one, which would re-teach it); `other_labels=false` gives the SalUn
reference code's uniform draw over all classes. SalUn's reference code (CIFAR-10) trains 10 epochs of a
forget pass then a full retain pass at SGD lr ~0.01; here one epoch is one pass over the forget set with
the retain set cycling, so the cost follows the forget set rather than the whole training set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import _steps as S
from ._tuning import TunableConfig, TunableMethod
from .base import Unlearned, UnlearnTask, register_method


@register_method("random-label")
class RandomLabel(TunableMethod):
    """Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020 (random labelling as in SalUn's code)."""

    needs = frozenset({"forget", "retain"})
    summary = "fine-tune on forget samples with random labels mixed with retain samples (Golatkar et al. 2020)"
    search_space = {"lr": (0.003, 0.01, 0.03)}

    @dataclass
    class Config(TunableConfig):
        epochs: int = 2
        lr: float = 0.01
        retain_per_forget: float = 1.0
        other_labels: bool = True
        batch_size: int = 128
        optimizer: str = "sgd"
        weight_decay: float = 5e-4

    def weight_mask(self, model: nn.Module, task: UnlearnTask) -> S.Mask | None:
        """Which weights may move (None: all). SalUn overrides this with its saliency mask."""
        return None

    def run(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        c = self.config
        mask = self.weight_mask(model, task)
        wd = c.weight_decay
        opt = S.optimizer(model, c.optimizer, c.lr, 0.0 if mask is not None else wd)
        n_retain = int(round(c.batch_size * c.retain_per_forget))
        retain = S.cycle(task.retain, n_retain, task) if n_retain > 0 else None
        loop = S.Loop(task, self.name, c.epochs)
        for _ in loop:
            model.train()
            for xf, yf in S.batches(task.forget, c.batch_size, task):
                x, y = xf, S.random_labels(yf, task.num_classes, task.generator, task.forget_classes, c.other_labels)
                if retain is not None:
                    xr, yr = next(retain)
                    x, y = torch.cat([x, xr]), torch.cat([y, yr])
                loop.step(model, opt, F.cross_entropy(model(x), y), mask, wd)
        if mask is None:
            return Unlearned(model.eval())
        share = sum(float(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
        return Unlearned(model.eval(), {"mask_share": round(share, 6)})
