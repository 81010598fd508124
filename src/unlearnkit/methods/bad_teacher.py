"""`bad-teacher`: distil the original on retain samples, a random network on forget samples (Chundawat et al. 2023).

Two teachers: the competent one is the frozen original model, the incompetent one a freshly initialised
network of the same architecture. The student (the model being unlearned) minimises KL(teacher || student)
on a shuffled mix of the forget set and a random share of the retain set, the teacher chosen per sample.
Forget samples come to look like the output of a model that knows nothing, retained knowledge is copied
back from the original; no labels are needed. Defaults from the reference code: 1 epoch, Adam lr 1e-4,
batch 256, KL temperature 1, 30% of the retain set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.bundle import Part
from . import _steps as S
from ._tuning import TunableConfig, TunableMethod
from .base import UnlearnTask, register_method


def forget_flagged(forget: Part, retain: Part) -> Part:
    """Forget and retain samples in one Part whose 'label' is 1 for forget, 0 for retain (the teacher switch)."""
    x = torch.cat([forget.x, retain.x])
    flag = torch.cat([torch.ones(len(forget), dtype=torch.long), torch.zeros(len(retain), dtype=torch.long)])
    return Part(x, flag, torch.cat([forget.idx, retain.idx]), forget.augment)


@register_method("bad-teacher")
class BadTeacher(TunableMethod):
    """Chundawat et al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks Using an Incompetent
    Teacher", AAAI 2023."""

    needs = frozenset({"forget", "retain"})
    summary = "distil the original on retain, a random-init teacher on forget samples (Chundawat et al. 2023)"
    search_space = {"lr": (3e-5, 1e-4, 3e-4)}

    @dataclass
    class Config(TunableConfig):
        epochs: int = 1
        retain_fraction: float = 0.3
        lr: float = 1e-4
        optimizer: str = "adam"
        temperature: float = 1.0
        batch_size: int = 256
        weight_decay: float = 0.0

    def run(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        assert task.new_model is not None
        c = self.config
        good = S.frozen(model)
        bad = S.frozen(task.new_model().to(task.device))
        opt = S.optimizer(model, c.optimizer, c.lr, c.weight_decay)
        loop = S.Loop(task, "bad-teacher", c.epochs)
        for _ in loop:
            data = forget_flagged(task.forget, S.subsample(task.retain, c.retain_fraction, task.generator))
            model.train()
            for x, is_forget in S.batches(data, c.batch_size, task):
                with torch.no_grad():
                    t = torch.where(is_forget[:, None].bool(), bad(x), good(x))
                loop.step(model, opt, S.distill_kl(model(x), t, c.temperature))
        return model.eval()
