"""`hyperforget`: answer a class-forgetting request with a head sampled from a trained HyperForget.

The method sees no data at all (`needs` is empty): what it knows about forgetting was learned once, by
`unlearnkit hyperforget train`, for this very model. This puts HyperForget in the same tables as every other
method: `unlearnkit forget RUN --method hyperforget --set hypernet=DIR --forget-class C [--reference REF]`.
Its `seconds` include loading the hypernetwork; `unlearnkit hyperforget sample` writes many samples at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .base import Method, Unlearned, UnlearnTask, register_method


@register_method("hyperforget")
class HyperForgetMethod(Method):
    needs = frozenset()
    scenarios = frozenset({"class"})
    summary = "sample the head from a diffusion hypernetwork trained once for this model (no data per request)"

    @dataclass
    class Config:
        hypernet: str = ""  # a directory written by `unlearnkit hyperforget train` for this model
        sample: int = 0  # which random stream: sample i of seed s draws with seed s * 1000 + i
        start: str | None = None  # scratch (like retraining) or original (like unlearning the given head)
        forget_loss: float | None = None
        retain_loss: float | None = None
        steps: int | None = None
        temperature: float | None = None

        def validate(self) -> None:
            if not self.hypernet:
                raise UserError("method hyperforget needs --set hypernet=DIR: a directory written by "
                                "`unlearnkit hyperforget train` for this model")

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        from ..hyperforget import HyperForget
        from ..hyperforget.heads import get_head, set_head
        from ..hyperforget.sample import generate

        c = self.config
        hf = HyperForget.load(c.hypernet)
        if not torch.allclose(get_head(model), hf.original, atol=1e-6):
            raise UserError(f"{c.hypernet} was trained for another model: train one for this model with "
                            f"`unlearnkit hyperforget train RUN --out DIR`")
        if len(task.forget_classes) != 1 or task.forget_classes[0] not in hf.meta.classes:
            raise UserError(f"hyperforget answers one class per request, among those it was trained for "
                            f"({', '.join(map(str, hf.meta.classes))}): pass one of them to --forget-class")
        heads, config, _ = generate(hf, task.forget_classes[0], 1, start=c.start, forget_loss=c.forget_loss,
                                    retain_loss=c.retain_loss, steps=c.steps, temperature=c.temperature,
                                    seed=task.seed * 1000 + c.sample)
        return Unlearned(set_head(model, heads[0]), dict(config))
