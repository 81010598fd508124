"""`nad`: Neural Attention Distillation (Li et al., ICLR 2021).

A teacher is the backdoored model fine-tuned on the clean set (`teacher_epochs`); the student (the
backdoored model itself) is then trained on the clean set with cross-entropy plus attention-distillation
terms beta_i * MSE(A(s_i), A(t_i)) at the ends of the network's last three resolution stages, where
A(f) = sum_c |f_c|^p, L2-normalised over the spatial positions (attention transfer, p = 2). The fine-tuned
teacher's attention carries little of the trigger, and matching it erases the backdoor pathway.

Defaults are BackdoorBench's CIFAR-10 run as its code does it (defense/nad.py, config/defense/nad/cifar10.yaml):
teacher 10 epochs of fine-tuning, student 10 epochs (its loop is given `te_epochs`, not `epochs`) at a constant
lr 0.01 (its step schedule drops only after epoch 20), SGD momentum 0.9, weight decay 5e-4, batch 256, p = 2,
beta 500 on the output of ResNet's third stage and 1000 on the fourth. By default the two phases together
make at most a quarter of the original's sample passes (`_steps.capped`; binding only after a short recipe).
BackdoorBench's third term (beta 1000 on the average-pooled 1x1 map) is identically zero: a 1x1 attention map
normalised to unit length is 1 for every input. So it is left out here: `betas` weigh the last `len(betas)`
spatial stages, shallow to deep.
Stages are found from a probe forward pass: the last non-normalisation module to output each spatial size
above 1x1 (for a ResNet: the outputs of its stages).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine.progress import progress
from ..engine.train import TrainConfig, fit, make_optimizer, make_scheduler
from ..errors import UserError
from ._steps import capped
from .base import Method, Unlearned, UnlearnTask, register_method

PHASE_EPOCHS = 10  # BackdoorBench's teacher and student epochs

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


def attention_stages(model: nn.Module, x: Tensor, count: int) -> list[str]:
    """Names of the modules that end the last `count` spatial stages (resolutions above 1x1)."""
    seen: list[tuple[str, tuple[int, ...]]] = []

    def record(name: str):
        def hook(_m: nn.Module, _i: tuple, out: object) -> None:
            if isinstance(out, Tensor) and out.dim() == 4:
                seen.append((name, tuple(out.shape[-2:])))

        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
               if name and not isinstance(m, _NORMS)]
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(x)
            model.train(was)
    finally:
        for h in handles:
            h.remove()
    ends: dict[tuple[int, int], str] = {}
    for name, size in seen:
        if size != (1, 1):
            ends.pop(size, None)
            ends[size] = name  # insertion order = order in which each resolution was last seen
    if not ends:
        raise UserError("nad distils convolutional attention maps but the model has none: choose a conv model")
    return list(ends.values())[-count:]


def attention_map(f: Tensor, p: float) -> Tensor:
    """sum_c |f_c|^p, flattened and L2-normalised per sample (Zagoruyko & Komodakis 2017)."""
    a = f.abs().pow(p).sum(1).flatten(1)
    return a / (a.norm(dim=1, keepdim=True) + 1e-6)


class _Capture:
    """Forward hooks that keep the outputs of named modules during one forward pass."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        self.out: dict[str, Tensor] = {}
        self.handles = [model.get_submodule(n).register_forward_hook(self._keep(n)) for n in names]

    def _keep(self, name: str):
        def hook(_m: nn.Module, _i: tuple, out: Tensor) -> None:
            self.out[name] = out

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@register_method("nad")
class NAD(Method):
    needs = frozenset()
    backdoor_needs = frozenset({"clean"})
    scenarios = frozenset()
    summary = "Neural Attention Distillation from a clean-fine-tuned teacher (Li et al. 2021)"

    @dataclass
    class Config:
        teacher_epochs: int | None = None  # None: 10, each phase at most an eighth of the original's sample passes
        epochs: int | None = None  # None: 10, likewise (both phases together: at most a quarter)
        lr: float = 0.01
        batch_size: int = 256
        weight_decay: float = 5e-4
        betas: tuple[float, ...] = (500.0, 1000.0)  # the last len(betas) spatial stages, shallow to deep
        p: float = 2.0
        schedule: str = "constant"  # or "cosine"

        def validate(self) -> None:
            if any(n is not None and n < 1 for n in (self.teacher_epochs, self.epochs)) or self.lr <= 0 \
                    or not self.betas:
                raise UserError("nad needs teacher_epochs, epochs >= 1, lr > 0 and at least one beta")
            if self.schedule not in ("constant", "cosine"):
                raise UserError(f"nad schedule {self.schedule!r} is unknown: use constant or cosine")

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        c, dev, gen = self.config, task.device, task.generator
        clean = task.clean
        t_epochs, epochs = (n if n is not None else phase_epochs(task) for n in (c.teacher_epochs, c.epochs))
        teacher = copy.deepcopy(model)
        fit(teacher, clean, TrainConfig(epochs=t_epochs, batch_size=c.batch_size, lr=c.lr,
                                        weight_decay=c.weight_decay, schedule=c.schedule, augment=True), dev, gen,
            desc="nad teacher", checkpoint=task.checkpoint)
        teacher.eval()
        probe = next(clean.batches(2, dev))[0]
        stages = attention_stages(model, probe, len(c.betas))
        betas = list(c.betas)[-len(stages):]
        opt = make_optimizer(model.parameters(), "sgd", c.lr, 0.9, c.weight_decay)
        sched = make_scheduler(opt, c.schedule, epochs * math.ceil(len(clean) / c.batch_size))
        s_cap, t_cap = _Capture(model, stages), _Capture(teacher, stages)
        step = 0
        try:
            for epoch in progress(range(epochs), "nad", epochs):
                model.train()
                for x, y in clean.batches(c.batch_size, dev, shuffle=True, generator=gen, augment=True):
                    loss = F.cross_entropy(model(x), y)
                    with torch.no_grad():
                        teacher(x)
                    for beta, name in zip(betas, stages, strict=True):
                        loss = loss + beta * F.mse_loss(attention_map(s_cap.out[name], c.p),
                                                        attention_map(t_cap.out[name], c.p))
                    task.check(loss, "nad", step)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    step += 1
                if not task.watch(model, f"epoch {epoch + 1}"):
                    break
        finally:
            s_cap.remove()
            t_cap.remove()
        model.eval()
        return Unlearned(model, {"stages": stages, "teacher_epochs": t_epochs, "epochs": epochs})


def phase_epochs(task: UnlearnTask) -> int:
    """The default epochs of each phase (teacher, student): BackdoorBench's 10, the two together `_steps.capped`."""
    return capped(PHASE_EPOCHS, 2 * len(task.clean), task)
