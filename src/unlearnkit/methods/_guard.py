"""The guard of a backdoor defence: it never hands back a model that no longer classifies.

A defence that overshoots (an outer step too large, a pruning too deep) can turn a backdoored model into one
that answers one class for everything: its ASR is then 0 or 100 and means nothing. The defender cannot see
the trigger, but can see clean data, so the pipeline keeps a slice of the clean set away from the defence
(`HOLDOUT_SHARE`; a clean set under `MIN_CLEAN` images is too small to spare one and runs unguarded) and the
guard measures clean accuracy there at each of the defence's checkpoints (each round, epoch or step block).

The declared rule (no trigger knowledge, no test data):

- *keep* the latest checkpoint whose held-out clean accuracy is not `keep_drop` points below the input
  model's: the latest one, because a defence's later states have done more of its work. A drop counts only
  when it is also beyond two standard errors of a paired comparison (McNemar: the images the state got
  wrong that the input got right, less the reverse), so the one or two images a small held-out slice turns
  over are not taken for damage;
- *stop* the defence only when the model has collapsed: held-out accuracy within 1.5x of chance at
  `COLLAPSE_PATIENCE` checkpoints in a row. A dip is not a stop: fine-tuning defences at the references' learning
  rate lose much of their accuracy in the first epochs and win it back as the rate decays (measured on a GPU,
  issue 18: `finetune` on the CIFAR-10 BadNets PreAct-ResNet18 fell from 87.2% to 56.4% held-out in 2 epochs, and
  `nad` to 46.4% in one; an earlier rule that stopped 20 points down returned both inputs unchanged);
- at the end, if the final state is not one the rule keeps, the kept state is restored (the input model
  itself when no checkpoint qualified) and the reason is recorded.

The accuracy curve, the kept checkpoint and any early stop go into metrics.json under the method's name
(`guard`). After `--resume`, the checkpoints before the interruption are not in memory: the guard starts again
from the resumed state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..data.bundle import Part
from ..engine.progress import say
from ..engine.train import predict_logits

HOLDOUT_SHARE = 0.1
MIN_CLEAN = 100  # smaller clean sets keep no holdout (10 images would measure accuracy in steps of 10 points)
KEEP_DROP = 10.0  # points: the verdict calls a model this far down "damaged"
COLLAPSE_PATIENCE = 3  # near-chance checkpoints in a row that stop a defence
NEAR_CHANCE = 1.5  # accuracy within this factor of chance is collapse, as in the verdict


def split_holdout(clean: Part, generator: torch.Generator) -> tuple[Part, Part | None]:
    """(what the defence trains on, the guard's held-out slice): a seeded `HOLDOUT_SHARE` of the clean set."""
    n = len(clean)
    if n < MIN_CLEAN:
        return clean, None
    k = int(round(n * HOLDOUT_SHARE))
    order = torch.randperm(n, generator=generator)
    keep, hold = torch.sort(order[k:]).values, torch.sort(order[:k]).values
    held = clean.subset(hold)
    return clean.subset(keep), Part(held.x, held.y, held.idx, "none")


@dataclass
class Drop:
    """How much held-out clean accuracy a state lost against the input model, paired image by image."""

    acc: float  # the state's held-out accuracy (%)
    points: float  # accuracy lost (negative: gained)
    se: float  # its standard error, from the images that changed (McNemar): sqrt(lost + gained) / n

    def beyond(self, limit: float) -> bool:
        """A real drop of more than `limit` points: above it, and by more than two standard errors, so that
        the one or two images that a small held-out slice turns over are not taken for damage."""
        return self.points > limit and self.points > 2.0 * self.se


@dataclass
class Guard:
    """Measures held-out clean accuracy at a defence's checkpoints and keeps the last healthy state."""

    holdout: Part
    device: torch.device
    num_classes: int
    keep_drop: float = KEEP_DROP
    patience: int = COLLAPSE_PATIENCE
    start: float | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    kept_at: str | None = None
    stopped: str | None = None
    restored: bool = False
    collapsed: int = 0  # near-chance checkpoints in a row
    _kept: dict[str, Tensor] | None = field(default=None, repr=False)
    _start_right: Tensor | None = field(default=None, repr=False)

    def _right(self, model: nn.Module) -> Tensor:
        return predict_logits(model, self.holdout, self.device).argmax(1) == self.holdout.y

    def accuracy(self, model: nn.Module) -> float:
        return 100.0 * float(self._right(model).float().mean())

    def begin(self, model: nn.Module) -> None:
        """Measure the input model: the reference point of every drop, and the state kept by default."""
        self._start_right = self._right(model)
        self.start = 100.0 * float(self._start_right.float().mean())
        self.curve = [{"at": "start", "clean_acc": round(self.start, 2)}]
        self.collapsed = 0
        self._kept, self.kept_at = _copy_state(model), "start"

    def drop(self, model: nn.Module) -> Drop:
        """The state's held-out accuracy and its paired drop against the input model."""
        if self._start_right is None:
            self.begin(model)
        assert self._start_right is not None
        right, n = self._right(model), len(self.holdout)
        lost = int((self._start_right & ~right).sum())
        gained = int((~self._start_right & right).sum())
        acc = 100.0 * float(right.float().mean())
        return Drop(acc, 100.0 * (lost - gained) / n, 100.0 * (lost + gained) ** 0.5 / n)

    @property
    def chance(self) -> float:
        return 100.0 / max(1, self.num_classes)

    def healthy(self, d: Drop) -> bool:
        return not d.beyond(self.keep_drop) and d.acc > NEAR_CHANCE * self.chance

    def __call__(self, model: nn.Module, at: str) -> bool:
        """Record a checkpoint named `at`; False when the defence should stop (the model collapsed)."""
        d = self.drop(model)
        self.curve.append({"at": at, "clean_acc": round(d.acc, 2)})
        if self.healthy(d):
            self._kept, self.kept_at = _copy_state(model), at
        self.collapsed = self.collapsed + 1 if d.acc <= NEAR_CHANCE * self.chance else 0
        if self.collapsed >= self.patience:
            self.stopped = (f"held-out clean accuracy {d.acc:.1f}% at {at} has been near chance ({self.chance:.0f}%) "
                            f"at {self.collapsed} checkpoints in a row")
            say(f"guard: {self.stopped}: stopping early")
            return False
        return True

    def settle(self, model: nn.Module) -> nn.Module:
        """Judge the final state by the same rule; restore the kept state into `model` when it fails."""
        d = self.drop(model)
        self.curve.append({"at": "final", "clean_acc": round(d.acc, 2)})
        if self.healthy(d):
            self.kept_at = "final"
            return model
        assert self._kept is not None
        model.load_state_dict(self._kept)
        self.restored = True
        say(f"guard: the final model's held-out clean accuracy {d.acc:.1f}% is more than {self.keep_drop:g} points "
            f"below the input's {self.start:.1f}%: returning the state at {self.kept_at}")
        return model

    def report(self) -> dict[str, Any]:
        return {"rule": f"keep the latest checkpoint whose held-out clean accuracy is not {self.keep_drop:g} points "
                        f"below the input model's (beyond two paired standard errors); stop when near chance at "
                        f"{self.patience} checkpoints in a row",
                "holdout": len(self.holdout), "curve": self.curve, "kept": self.kept_at,
                "restored": self.restored, "stopped_early": self.stopped}


def _copy_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
