"""Small building blocks shared by the unlearning baselines (not a method; the registry skips `_` modules).

Each baseline is one short file; what they have in common — an optimiser, one update step (optionally
restricted to a weight mask), random relabelling, temperature-scaled distillation, frozen teachers — lives here
so that each file shows only what makes its method different.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.bundle import Part
from ..engine import runlog
from ..engine.progress import progress, stop_point
from ..engine.train import make_optimizer
from .base import UnlearnTask

Mask = dict[str, Tensor]


def optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 5e-4,
              momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD (momentum) or Adam over the model's trainable parameters."""
    return make_optimizer(model.parameters(), name, lr, momentum, weight_decay)


def step(model: nn.Module, opt: torch.optim.Optimizer, loss: Tensor, task: UnlearnTask, where: str, i: int,
         mask: Mask | None = None, weight_decay: float = 0.0) -> None:
    """One update. With a `mask`, only the masked weights move (SalUn).

    Masked updates need the optimiser built with weight_decay=0: the decay is added to the gradient here,
    before masking, so that weights outside the mask stay exactly where they were (a decayed-but-masked
    weight would otherwise drift, and a momentum buffer fed only zeros stays zero).
    """
    stop_point()
    task.check(loss, where, i)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if mask is not None:
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            if weight_decay:
                p.grad.add_(p.detach(), alpha=weight_decay)
            p.grad.mul_(mask[name])
    opt.step()


class Loop:
    """Epochs with a progress bar, a global step counter for NaN messages, and each epoch's mean loss in the
    run log (so loss curves land in metrics.json and TensorBoard like `fit()`'s)."""

    def __init__(self, task: UnlearnTask, desc: str, epochs: int) -> None:
        self.task, self.desc, self.epochs, self.i = task, desc, epochs, 0
        self._sum: Tensor | float = 0.0
        self._n = 0

    def __iter__(self) -> Iterator[int]:
        for e in progress(range(self.epochs), self.desc, self.epochs):
            self._sum, self._n = 0.0, 0
            yield e
            if self._n:
                runlog.epoch(self.desc, e + 1, self.epochs, float(self._sum) / self._n)

    def step(self, model: nn.Module, opt: torch.optim.Optimizer, loss: Tensor, mask: Mask | None = None,
             weight_decay: float = 0.0) -> None:
        step(model, opt, loss, self.task, self.desc, self.i, mask, weight_decay)
        self._sum = self._sum + loss.detach()
        self._n += 1
        self.i += 1


def batches(part: Part, batch_size: int, task: UnlearnTask, augment: bool = True) -> Iterator[tuple[Tensor, Tensor]]:
    """One shuffled, seeded pass over `part` on the task's device."""
    return part.batches(batch_size, task.device, shuffle=True, generator=task.generator, augment=augment)


def cycle(part: Part, batch_size: int, task: UnlearnTask, augment: bool = True) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled batches of `part` (the retain side of a loop driven by the forget set)."""
    return part.cycle(batch_size, task.device, task.generator, augment)


def subsample(part: Part, fraction: float, generator: torch.Generator) -> Part:
    """A seeded random share of `part` (at least one sample): the retain subset several papers use."""
    stop_point()
    if fraction >= 1.0:
        return part
    n = max(1, int(round(len(part) * fraction)))
    return part.subset(torch.sort(torch.randperm(len(part), generator=generator)[:n]).values)


UNLEARN_SHARE = 0.25  # a method's default work: at most this share of the original's training (epochs, passes)


def retain_share(fraction: float | None, original_epochs: int, epochs: int) -> float:
    """The share of the retain set each of `epochs` epochs visits: `fraction` when the user set it, else the
    share that keeps the whole run at UNLEARN_SHARE of the original's training epochs (at most 1, at least 1%).

    Why: a retain-set epoch costs about an epoch of retraining, so a method that makes the papers' 10 full
    passes after a 3-epoch original is three times slower than the retraining it should save (issue 22). The
    papers' schedule (epochs, decays) stays; each epoch sees a random share of the retain set instead.
    """
    if fraction is not None:
        return fraction
    return min(1.0, max(0.01, UNLEARN_SHARE * original_epochs / max(1, epochs)))


def capped(default: int, passes_each: float, task: UnlearnTask) -> int:
    """A default count of a method's units of work (epochs, iterations, steps), lowered so that the whole run makes
    at most UNLEARN_SHARE of the sample passes the original's training made (its epochs x its training images).

    `passes_each` is the forward-backward sample passes one unit makes (an epoch on a 2,500-image clean set:
    2,500). Why: the backdoor defences' published budgets (100 epochs of fine-tuning on the clean set, 2,000 ANP
    iterations) were set against a 100-epoch CIFAR-10 model, where they are a twentieth of its training; after
    a 3-epoch Fashion-MNIST model, 100 epochs on 2,500 images cost more than training the model again (issue
    22). At the references' own settings the cap does not bind. Unknown training work (`train_size` 0): no cap.
    """
    if task.train_size <= 0 or passes_each <= 0:
        return default
    budget = UNLEARN_SHARE * task.train_config.epochs * task.train_size
    return max(1, min(default, int(budget // passes_each)))


def per_class(part: Part, n: int, generator: torch.Generator) -> Part:
    """At most `n` seeded samples of each class of `part` (UNSIR's retain subset: 1,000 per class)."""
    keep = []
    for c in torch.unique(part.y).tolist():
        idx = (part.y == c).nonzero().flatten()
        keep.append(idx[torch.randperm(len(idx), generator=generator)[:n]])
    return part.subset(torch.sort(torch.cat(keep)).values)


def random_labels(y: Tensor, num_classes: int, generator: torch.Generator, avoid: list[int] | None = None,
                  other: bool = True) -> Tensor:
    """Random labels for the forget samples.

    `other=True` draws a label different from the true one and outside `avoid` (the forgotten classes),
    so that relabelling never teaches a forgotten class again; `other=False` is the reference code's
    uniform draw over all classes.
    """
    if not other:
        return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)
    allowed = torch.ones(len(y), num_classes, dtype=torch.bool)
    allowed[torch.arange(len(y)), y.cpu()] = False
    if avoid:
        allowed[:, avoid] = False
    allowed[allowed.sum(1) == 0] = True  # nothing left (two classes, one forgotten): fall back to uniform
    weights = allowed.float()
    return torch.multinomial(weights, 1, generator=generator).flatten().to(y.device)


def distill_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(teacher || student) on temperature-softened outputs, times T² (Hinton et al. 2015; RepDistiller)."""
    t = temperature
    log_p = F.log_softmax(student_logits / t, dim=1)
    q = F.softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean") * t * t


def frozen(model: nn.Module) -> nn.Module:
    """An eval-mode copy with gradients off: the original model as a teacher or an attack oracle."""
    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))
