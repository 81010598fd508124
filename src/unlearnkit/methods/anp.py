"""`anp`: Adversarial Neuron Pruning (Wu & Wang, NeurIPS 2021).

Backdoor neurons are the ones whose small perturbation most easily flips the model. Every BatchNorm neuron
gets a mask m in [0, 1] (initially 1) and multiplicative noise on its scale and shift (|noise| <= eps):
scale * (m + noise), shift * (1 + noise_b). Each iteration on a clean batch: (1) noise is drawn uniformly,
then moved one signed-gradient step (size eps / steps) to increase the loss; (2) the masks take an SGD step
(momentum 0.9) on alpha * CE(clean model) + (1 - alpha) * CE(perturbed model), and are clipped to [0, 1].
Afterwards the neurons whose mask is at most `threshold` are pruned (their BatchNorm scale set to 0) in the
original model, everything else untouched.

Defaults are BackdoorBench's CIFAR-10 run (config/defense/anp/cifar10.yaml): eps 0.4, one step, alpha 0.2,
mask lr 0.01 (the paper: 0.2), 2000 iterations (by default at most a quarter of the original's sample passes,
counting the noise and the mask gradient: `_steps.capped`), batch 256 (the paper: 128), the model in train
mode, and the noise left where its signed step puts it (within 2 eps, as in both reference codes;
`clip_noise=true` keeps it within eps).

Which neurons to prune: BackdoorBench sweeps thresholds 0, 0.05, ..., 0.9 and keeps the model with the lowest
*test* ASR among those within 10% (relative) of the unpruned *test* accuracy. The defender has neither, so
`prune_by=auto` (default) sweeps the same thresholds upwards on the guard's held-out clean slice and stops
before the first whose held-out accuracy falls more than `acc_ratio` (relative) below the unpruned model's: the
most pruning the clean data tolerates, since the backdoor neurons' masks are the first to fall. Without a held-out slice
(a tiny clean set, or `--no-guard`) it falls back to the paper's fixed threshold 0.2.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine.progress import progress
from ..errors import UserError
from ._steps import capped
from .base import Method, Unlearned, UnlearnTask, register_method

ITERATIONS = 2000  # BackdoorBench's mask-optimisation iterations


class _NeuronNoise:
    """Mask and noise of one BatchNorm layer, swapped in by overriding that module's forward."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        n = bn.num_features
        dev = bn.weight.device
        self.bn = bn
        self.mask = torch.ones(n, device=dev, requires_grad=True)
        self.noise = torch.zeros(n, device=dev, requires_grad=True)
        self.noise_bias = torch.zeros(n, device=dev, requires_grad=True)
        self.perturbed = False
        bn.forward = self.forward  # the module is a private copy: overriding its forward is harmless

    def forward(self, x: Tensor) -> Tensor:
        bn = self.bn
        if self.perturbed:
            w, b = bn.weight * (self.mask + self.noise), bn.bias * (1.0 + self.noise_bias)
        else:
            w, b = bn.weight * self.mask, bn.bias
        return F.batch_norm(x, bn.running_mean, bn.running_var, w, b, bn.training,
                            bn.momentum if bn.momentum is not None else 0.1, bn.eps)


@register_method("anp")
class ANP(Method):
    needs = frozenset()
    backdoor_needs = frozenset({"clean"})
    scenarios = frozenset()
    summary = "Adversarial Neuron Pruning: prune BatchNorm neurons sensitive to adversarial noise (Wu & Wang 2021)"

    @dataclass
    class Config:
        iterations: int | None = None  # None: 2000, at most a quarter of the original's sample passes
        batch_size: int = 256
        eps: float = 0.4
        steps: int = 1
        alpha: float = 0.2
        lr: float = 0.01  # mask learning rate (BackdoorBench; the paper: 0.2)
        clip_noise: bool = False
        prune_by: str = "auto"  # "auto" (threshold chosen on held-out clean data), "threshold" or "number"
        threshold: float = 0.2  # prune_by=threshold: masks <= this are pruned
        number: int = 0  # prune_by=number: prune this many lowest-mask neurons
        acc_ratio: float = 0.1  # prune_by=auto: the largest relative drop of held-out clean accuracy allowed

        def validate(self) -> None:
            if self.prune_by not in PRUNE_BY:
                raise UserError(f"anp prune_by {self.prune_by!r} is unknown: use {', '.join(PRUNE_BY)}")
            if not 0 < self.acc_ratio < 1:
                raise UserError(f"anp acc_ratio {self.acc_ratio} must be in (0, 1): e.g. 0.1")
            if (self.iterations is not None and self.iterations < 1) or self.steps < 1 or self.eps < 0 \
                    or not 0 <= self.alpha <= 1:
                raise UserError("anp needs iterations, steps >= 1, eps >= 0 and alpha in [0, 1]")

    def iterations(self, task: UnlearnTask) -> int:
        """The set iterations, else 2000 capped (an iteration: `steps` noise gradients and one mask gradient)."""
        c = self.config
        return c.iterations if c.iterations is not None else capped(ITERATIONS, (c.steps + 1) * c.batch_size, task)

    def learn_masks(self, model: nn.Module, task: UnlearnTask) -> dict[str, Tensor]:
        """Optimise the neuron masks on a private copy of `model`; returns {BatchNorm name: mask}."""
        c, gen = self.config, task.generator
        work = copy.deepcopy(model)
        for p in work.parameters():
            p.requires_grad_(False)
        layers = {name: _NeuronNoise(m) for name, m in work.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine}
        if not layers:
            raise UserError("anp perturbs BatchNorm neurons but the model has none: choose a model with BatchNorm")
        masks = [s.mask for s in layers.values()]
        noises = [t for s in layers.values() for t in (s.noise, s.noise_bias)]
        mask_opt = torch.optim.SGD(masks, lr=c.lr, momentum=0.9)
        work.train()
        batches = task.clean.cycle(c.batch_size, task.device, gen)
        n = self.iterations(task)
        for it in progress(range(n), "anp", n):
            x, y = next(batches)
            if c.eps > 0:
                with torch.no_grad():
                    for t in noises:
                        t.copy_((torch.rand(t.shape, generator=gen) * 2 - 1).mul_(c.eps))
                for s in layers.values():
                    s.perturbed = True
                for _ in range(c.steps):
                    grads = torch.autograd.grad(F.cross_entropy(work(x), y), noises)
                    with torch.no_grad():
                        for t, g in zip(noises, grads, strict=True):
                            t.add_(g.sign(), alpha=c.eps / c.steps)
                            if c.clip_noise:
                                t.clamp_(-c.eps, c.eps)
                loss_rob = F.cross_entropy(work(x), y)
            else:
                loss_rob = torch.zeros((), device=x.device)
            for s in layers.values():
                s.perturbed = False
            loss = c.alpha * F.cross_entropy(work(x), y) + (1 - c.alpha) * loss_rob
            task.check(loss, "anp", it)
            mask_opt.zero_grad(set_to_none=True)
            loss.backward()
            mask_opt.step()
            with torch.no_grad():
                for m in masks:
                    m.clamp_(0.0, 1.0)
        return {name: s.mask.detach().cpu() for name, s in layers.items()}

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        c = self.config
        masks = self.learn_masks(model, task)
        flat = torch.cat(list(masks.values()))
        sweep: list[dict] = []
        if c.prune_by == "number":
            cut = float(flat.sort().values[min(c.number, len(flat)) - 1]) if c.number > 0 else -1.0
        elif c.prune_by == "auto" and task.guard is not None:
            cut, sweep = self.choose_threshold(model, masks, task)
        else:
            cut = c.threshold
        pruned = prune(model, masks, cut)
        figures = {"neurons": len(flat), "pruned": pruned, "iterations": self.iterations(task),
                   "threshold": round(cut, 4),
                   "mask_quantiles": [round(float(q), 4) for q in
                                      torch.quantile(flat, torch.tensor([0.0, 0.01, 0.05, 0.5]))]}
        if sweep:
            figures["sweep"] = sweep
        model.eval()
        return Unlearned(model, figures)

    def choose_threshold(self, model: nn.Module, masks: dict[str, Tensor], task: UnlearnTask) -> tuple[float, list]:
        """The last threshold of BackdoorBench's sweep, going up, before held-out clean accuracy falls more than
        `acc_ratio` (relative) below the unpruned model's (0: prune nothing), with the sweep's accuracies."""
        assert task.guard is not None
        base = task.guard.accuracy(model)
        chosen, sweep = 0.0, []
        for cut in THRESHOLDS:
            trial = copy.deepcopy(model)
            n = prune(trial, masks, cut)
            d = task.guard.drop(trial)
            sweep.append({"threshold": cut, "pruned": n, "clean_acc": round(d.acc, 2)})
            if d.beyond(self.config.acc_ratio * base):
                break  # pruning is cumulative: deeper thresholds only remove more
            chosen = cut
        return chosen, sweep


PRUNE_BY = ("auto", "threshold", "number")
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 19))  # BackdoorBench's sweep, 0.05 ... 0.9


@torch.no_grad()
def prune(model: nn.Module, masks: dict[str, Tensor], cut: float) -> int:
    """Zero the BatchNorm scale of every neuron whose mask is at most `cut`; returns how many."""
    pruned = 0
    for name, mask in masks.items():
        bn = model.get_submodule(name)
        drop = (mask <= cut).to(bn.weight.device)
        bn.weight[drop] = 0.0
        pruned += int(drop.sum())
    return pruned
