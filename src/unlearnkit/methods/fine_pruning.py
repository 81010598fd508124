"""`fine-pruning` (Liu et al. 2018): prune the last convolutional channels that stay dormant on clean data,
then fine-tune on the clean set.

Backdoor neurons tend to fire only on triggered inputs, so channels with the lowest mean activation on clean
data are pruned first, a step at a time, while the clean accuracy stays within `acc_ratio` (relative) of the
unpruned model's. As in BackdoorBench, a channel is pruned by masking its inputs to the first linear layer
after the last convolution (for ResNets: the pooled features feeding `fc`), and the mask holds during
fine-tuning. Defaults are BackdoorBench's (config/defense/fp/cifar10.yaml): 1% of the channels per step,
stop before a 10% relative drop, then 100 epochs of fine-tuning (lr 0.01, batch 256, cosine), by default at
most a quarter of the original's sample passes (`_steps.capped`, as `finetune`'s; the cap does not bind after a
100-epoch CIFAR-10 model). Unlike
BackdoorBench, which measures the drop on the test set, the drop is measured on the guard's held-out slice of
the clean set (on the clean set itself when there is none): the test set stays unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.bundle import Part
from ..engine.train import TrainConfig, fit, predict_logits
from ..errors import UserError
from ..metrics import accuracy
from ._steps import capped
from .base import Method, Unlearned, UnlearnTask, register_method

FT_EPOCHS = 100  # BackdoorBench's fine-tuning epochs after pruning


def pruning_layer(model: nn.Module) -> tuple[nn.Linear, int, int]:
    """(the first linear layer after the last convolution, number of channels, input features per channel)."""
    mods = list(model.modules())
    conv_at = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    if not conv_at:
        raise UserError("fine-pruning prunes convolution channels but the model has none: choose a conv model")
    channels = mods[conv_at[-1]].out_channels
    linear = next((m for m in mods[conv_at[-1]:] if isinstance(m, nn.Linear)), None)
    if linear is None or linear.in_features % channels:
        raise UserError("fine-pruning cannot map the last convolution's channels to a linear layer: "
                        "choose an architecture whose head reads the last convolution's channels")
    return linear, channels, linear.in_features // channels


def channel_activation(model: nn.Module, linear: nn.Linear, channels: int, data: Part,
                       device: torch.device) -> Tensor:
    """Mean activation of each channel over `data`, read at the input of `linear`."""
    total = torch.zeros(channels, device=device)

    def hook(_mod: nn.Module, inp: tuple[Tensor, ...]) -> None:
        total.add_(inp[0].detach().reshape(len(inp[0]), channels, -1).mean(2).sum(0))

    handle = linear.register_forward_pre_hook(hook)
    try:
        predict_logits(model, data, device)
    finally:
        handle.remove()
    return (total / len(data)).cpu()


def masked_accuracy(model: nn.Module, linear: nn.Linear, keep: Tensor, data: Part, device: torch.device) -> float:
    """Accuracy on `data` with the linear layer's inputs multiplied by `keep` (one value per input feature)."""
    keep = keep.to(device)
    handle = linear.register_forward_pre_hook(lambda _m, inp: (inp[0] * keep,))
    try:
        return accuracy(predict_logits(model, data, device), data.y)
    finally:
        handle.remove()


@register_method("fine-pruning")
class FinePruning(Method):
    needs = frozenset()
    backdoor_needs = frozenset({"clean"})
    scenarios = frozenset()
    summary = "prune last-layer channels dormant on clean data, then fine-tune (Liu et al. 2018)"

    @dataclass
    class Config:
        prune_step: float = 0.01  # share of channels pruned per step
        max_prune: float = 0.95  # never prune more than this share
        acc_ratio: float = 0.1  # stop before the held-out clean accuracy drops by this fraction (BackdoorBench)
        epochs: int | None = None  # None: 100, at most a quarter of the original's sample passes
        lr: float = 0.01
        batch_size: int = 256
        optimizer: str = "sgd"
        weight_decay: float = 5e-4

        def validate(self) -> None:
            if not (0 < self.prune_step <= 1 and 0 <= self.max_prune < 1 and self.acc_ratio > 0
                    and (self.epochs is None or self.epochs >= 0)):
                raise UserError("fine-pruning needs prune_step in (0, 1], max_prune in [0, 1), acc_ratio > 0, "
                                "epochs >= 0")

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        c, dev = self.config, task.device
        clean = task.clean
        plain = Part(clean.x, clean.y, clean.idx, "none")
        judge = task.guard.holdout if task.guard is not None else plain
        linear, channels, per = pruning_layer(model)
        order = torch.argsort(channel_activation(model, linear, channels, plain, dev))
        base = accuracy(predict_logits(model, judge, dev), judge.y)
        step = max(1, int(round(c.prune_step * channels)))
        pruned, acc_after = 0, base
        for n in range(step, int(c.max_prune * channels) + 1, step):
            keep = torch.ones(channels)
            keep[order[:n]] = 0.0
            acc = masked_accuracy(model, linear, keep.repeat_interleave(per), judge, dev)
            if base > 0 and (base - acc) / base >= c.acc_ratio:
                break
            pruned, acc_after = n, acc
        cols = torch.ones(channels)
        cols[order[:pruned]] = 0.0
        cols = cols.repeat_interleave(per).to(linear.weight.device)
        with torch.no_grad():
            linear.weight.mul_(cols)
        handle = linear.weight.register_hook(lambda g: g * cols)
        epochs = c.epochs if c.epochs is not None else default_epochs(task)
        try:
            if epochs:
                fit(model, clean, TrainConfig(epochs=epochs, batch_size=c.batch_size, lr=c.lr,
                                              optimizer=c.optimizer, weight_decay=c.weight_decay, augment=True),
                    dev, task.generator, desc="fine-pruning", on_epoch=lambda m, e: task.watch(m, f"epoch {e}"),
                    checkpoint=task.checkpoint)
        finally:
            handle.remove()
        with torch.no_grad():
            linear.weight.mul_(cols)
        return Unlearned(model, {"channels": channels, "pruned": pruned, "epochs": epochs,
                                 "judged_on": "held-out slice" if task.guard is not None else "clean set",
                                 "acc_before": round(base, 4),
                                 "acc_pruned": round(acc_after, 4)})


def default_epochs(task: UnlearnTask) -> int:
    """The default fine-tuning after pruning: BackdoorBench's 100 epochs on the clean set, `_steps.capped`."""
    return capped(FT_EPOCHS, len(task.clean), task)
