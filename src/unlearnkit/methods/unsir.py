"""`unsir`: learn error-maximising noise for the forgotten class, impair on it, then repair (Tarun et al. 2023).

UNSIR ("unlearning by selective impair and repair") is class-level: it never looks at the forget samples,
only at the forgotten class labels. For each forgotten class it learns a batch of noise images that
maximise the original model's loss for that class (Adam lr 0.1, 5 x 8 steps, loss = -CE + 0.1 * mean squared
norm, in normalised input units). The impair step trains one epoch on that noise, labelled as the
forgotten class and repeated 20 times, shuffled with a retain subset (1,000 samples per class), Adam
lr 0.02; it wrecks the forgotten class's region. The repair step trains one epoch on the retain subset
alone, Adam lr 0.01, to recover the rest. All values from the reference notebook. (The notebook labels
every class's noise as class 0; the paper's form, each class's noise with its own label, is used here.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.bundle import Part
from ..data.transforms import to_float
from . import _steps as S
from ._tuning import TunableConfig, TunableMethod
from .base import UnlearnTask, register_method


def _stats(model: nn.Module, channels: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """The model's input normalisation (models take [0, 1] pixels), so the noise lives in normalised units."""
    mean = getattr(model, "mean", torch.zeros(1, channels, 1, 1, device=device))
    std = getattr(model, "std", torch.ones(1, channels, 1, 1, device=device))
    return mean, std


def error_max_noise(model: nn.Module, cls: int, shape: tuple[int, ...], task: UnlearnTask, lr: float,
                    steps: int, reg: float) -> Tensor:
    """A batch of pixel-space inputs that the model misclassifies away from `cls` as hard as it can."""
    was_training = model.training
    model.eval()
    mean, std = _stats(model, shape[1], task.device)
    z = torch.randn(shape, generator=task.generator).to(task.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    y = torch.full((shape[0],), cls, dtype=torch.long, device=task.device)
    for i in range(steps):
        loss = -F.cross_entropy(model(z * std + mean), y) + reg * z.square().sum(dim=(1, 2, 3)).mean()
        task.check(loss, "unsir noise", i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return (z * std + mean).detach().cpu()


@register_method("unsir")
class Unsir(TunableMethod):
    """Tarun et al., "Fast Yet Effective Machine Unlearning", IEEE TNNLS 2023."""

    needs = frozenset({"retain"})
    scenarios = frozenset({"class"})
    summary = "error-maximising noise for the forgotten class, impair then repair (Tarun et al. 2023)"
    search_space = {"impair_lr": (0.002, 0.005, 0.02)}

    @dataclass
    class Config(TunableConfig):
        noise_batch: int = 256
        noise_steps: int = 40
        noise_lr: float = 0.1
        noise_reg: float = 0.1
        noise_repeats: int = 20
        retain_per_class: int = 1000
        impair_lr: float = 0.02
        repair_lr: float = 0.01
        batch_size: int = 256
        optimizer: str = "adam"

    def run(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        c = self.config
        retain = S.per_class(task.retain, c.retain_per_class, task.generator)
        shape = (c.noise_batch, *retain.x.shape[1:])
        noise = [(error_max_noise(model, k, shape, task, c.noise_lr, c.noise_steps, c.noise_reg), k)
                 for k in task.forget_classes]
        xs = [n for n, _ in noise for _ in range(c.noise_repeats)] + [to_float(retain.x)]
        ys = [torch.full((len(n),), k, dtype=torch.long) for n, k in noise for _ in range(c.noise_repeats)]
        impair = Part(torch.cat(xs), torch.cat(ys + [retain.y]), torch.arange(sum(len(x) for x in xs)), "none")
        for part, lr, phase in ((impair, c.impair_lr, "impair"), (retain, c.repair_lr, "repair")):
            opt = S.optimizer(model, c.optimizer, lr, 0.0)
            loop = S.Loop(task, f"unsir-{phase}", 1)
            for _ in loop:
                model.train()
                for x, y in S.batches(part, c.batch_size, task, augment=False):
                    loop.step(model, opt, F.cross_entropy(model(x), y))
        return model.eval()
