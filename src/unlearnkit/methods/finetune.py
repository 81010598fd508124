"""`finetune`: continue training on the retain set (unlearning) or on the clean set (backdoor removal).

Relies on catastrophic forgetting; the weakest sensible baseline (Golatkar et al. 2020; Liu et al. 2017).

The budget depends on the request. Unlearning: a quarter of the original's training epochs on the retain set
(rounded down; at least 1, at most the field's 10), at lr 0.01, batch 128. An epoch on the retain set costs
about an epoch of retraining, so this keeps fine-tuning at most a quarter of retraining's cost (a third for an
original trained 3 epochs, where one epoch is the least it can do); the field's fixed 10 epochs were set against
a 182-epoch recipe, and on a 3-epoch original they cost three times the retraining they should save. Backdoor
removal: BackdoorBench's FT (config/defense/ft/cifar10.yaml), 100 epochs on the small clean set at lr 0.01,
batch 256, cosine schedule, crop + flip: a 2,500-image clean set needs that many passes before the trigger's
pathway is overwritten (10 epochs leave BadNets at 96% ASR on CIFAR-10 / PreAct-ResNet18, see BENCHMARKS.md).
Those 100 epochs are 5% of a 100-epoch CIFAR-10 model's training; after a short recipe (3 epochs of
Fashion-MNIST) they cost more than training the model, so the default is capped at a quarter of the original's
sample passes (`_steps.capped`: 17 epochs on 2,250 images after 3 epochs on 53,999). `--set epochs=N
batch_size=B` overrides either.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..engine.train import TrainConfig, fit
from ._steps import UNLEARN_SHARE, capped
from .base import Method, Unlearned, UnlearnTask, register_method

UNLEARN_EPOCHS, UNLEARN_BATCH = 10, 128
BACKDOOR_EPOCHS, BACKDOOR_BATCH = 100, 256


@register_method("finetune")
class FineTune(Method):
    needs = frozenset({"retain"})
    backdoor_needs = frozenset({"clean"})
    summary = "fine-tune on the retain set (or the clean set, for backdoors); relies on catastrophic forgetting"

    @dataclass
    class Config:
        epochs: int | None = None  # None: unlearn 1/4 of the original's (1..10); backdoor 100, capped at 1/4
        lr: float = 0.01
        batch_size: int | None = None  # None: 128 to unlearn, 256 to remove a backdoor
        optimizer: str = "sgd"
        weight_decay: float = 5e-4

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        c = self.config
        backdoor = task.scenario == "backdoor"
        data = task.clean if backdoor else task.retain
        epochs = c.epochs if c.epochs is not None else backdoor_epochs(task) if backdoor else \
            unlearn_epochs(task.train_config.epochs)
        batch = c.batch_size if c.batch_size is not None else BACKDOOR_BATCH if backdoor else UNLEARN_BATCH
        cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=c.lr, optimizer=c.optimizer,
                          weight_decay=c.weight_decay, augment=True)
        fit(model, data, cfg, task.device, task.generator, desc="finetune",
            on_epoch=lambda m, e: task.watch(m, f"epoch {e}"), checkpoint=task.checkpoint)
        return Unlearned(model, {"epochs": epochs, "batch_size": batch})


def backdoor_epochs(task: UnlearnTask) -> int:
    """The default backdoor budget: BackdoorBench's 100 epochs on the clean set, capped by `_steps.capped`."""
    return capped(BACKDOOR_EPOCHS, len(task.clean), task)


def unlearn_epochs(original_epochs: int) -> int:
    """The default unlearning budget: a quarter of the original's epochs, rounded down, within 1..10."""
    return max(1, min(UNLEARN_EPOCHS, int(UNLEARN_SHARE * original_epochs)))
