"""Phase 1: the checkpoint collection (G.pt's "many training runs", per forget request).

For every forgettable class c, heads are trained on the frozen features of the retain set (every training
sample whose label is not c), each run with its own seed and learning rate, and checkpoints are recorded
along the way at log-spaced steps (dense early, where the losses move fastest):

- `retrain`: from zero (a multinomial logistic regression on the features; the loss is convex, so every run
  heads for the same solution and runs differ only by learning rate and batch order, not by the random
  directions of an initialisation that the data never constrains) - the head a retrain without c gives on
  these features; its final checkpoints are what a forget request should produce. Its first `skip_scratch`
  (25%) of steps are not recorded: heads near zero are useless as answers, and their distance from every
  trained head would dominate the spread the diffusion has to model (and so the absolute size of its errors).
- `finetune`: from the original head - an unlearning trajectory that starts knowing c and forgets it
  gradually (catastrophic forgetting), so the forget loss sweeps from low to high at low retain loss.
- `relabel`: from the original head, with the forget samples relabelled at random among the other classes
  and mixed in (random-label unlearning): forget losses of "spread out", rather than suppressed, class c.

Each checkpoint is stored with its per-class losses and accuracies on the training features (the prompts
are built from these) and on the test features (for validation). A linear head on cached features trains in
well under a second per run, so the collection costs about one forward pass of the model over the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError
from .heads import Features, head_logits, per_class_stats

KINDS = ("retrain", "finetune", "relabel")
STARTS = ("scratch", "original")  # where a trajectory starts: a zero head, or the model's own head
KIND_START = {"retrain": "scratch", "finetune": "original", "relabel": "original"}


@dataclass
class CollectConfig:
    """How many checkpoints to collect, and how the heads behind them are trained."""

    runs_per_class: int = 6
    trajectories: str = "retrain,finetune"
    epochs: int = 6
    checkpoints_per_run: int = 12
    batch_size: int = 256
    lr_min: float = 1e-3
    lr_max: float = 3e-2
    weight_decay: float = 5e-4
    skip_scratch: float = 0.25

    def kinds(self) -> list[str]:
        kinds = [k.strip() for k in self.trajectories.split(",") if k.strip()]
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise UserError(f"trajectories={self.trajectories!r}: choose a comma list of {', '.join(KINDS)}")
        return kinds

    def validate(self) -> None:
        self.kinds()
        if self.runs_per_class < 1 or self.epochs < 1 or self.checkpoints_per_run < 2 or self.batch_size < 1:
            raise UserError("runs_per_class, epochs, batch_size must be >= 1 and checkpoints_per_run >= 2")
        if not 0 <= self.skip_scratch < 1:
            raise UserError(f"skip_scratch={self.skip_scratch}: choose a fraction in [0, 1)")
        if not 0 < self.lr_min <= self.lr_max:
            raise UserError(f"lr_min={self.lr_min}, lr_max={self.lr_max}: need 0 < lr_min <= lr_max")


def record_steps(total: int, n: int, first: int = 0) -> list[int]:
    """About n steps from `first` to `total`: half log-spaced (dense early, where the losses move fastest),
    half evenly spaced (so the converged end, which forget requests ask for, is well covered too)."""
    span = max(1, total - first)
    steps = {first, total}
    half = max(1, n // 2)
    for i in range(1, half + 1):
        steps.add(first + int(round(math.exp(math.log(span) * i / half))))
        steps.add(first + int(round(span * i / (n - half))))
    return sorted(s for s in steps if first <= s <= total)


def run_trajectory(rows0: Tensor, feats: Tensor, y: Tensor, cfg: CollectConfig, lr: float,
                   gen: torch.Generator, skip: float = 0.0) -> tuple[Tensor, list[int]]:
    """Adam on cross-entropy from `rows0`; returns the heads (R, K, D+1) recorded after the first `skip`
    fraction of the steps, and their steps."""
    w = rows0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, weight_decay=cfg.weight_decay)
    n = len(y)
    per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * per_epoch
    steps = record_steps(total, cfg.checkpoints_per_run, int(skip * total))
    want = set(steps)
    out = [w.detach().clone()] if 0 in want else []
    step = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, cfg.batch_size):
            sel = order[s:s + cfg.batch_size]
            loss = F.cross_entropy(head_logits(w, feats[sel]), y[sel])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step in want:
                out.append(w.detach().clone())
    return torch.stack(out), steps


def _seed(seed: int, cls: int, run: int, kind: int) -> int:
    return (seed * 1_000_003 + cls * 10_007 + run * 101 + kind) % (2**63)


def collect_class(cls: int, start: Tensor, f: Features, cfg: CollectConfig, seed: int) -> dict[str, Tensor]:
    """Every checkpoint for the request "forget class `cls`", with losses and accuracies.

    Returns tensors: heads (M, K, D+1); run, kind (index into `cfg.kinds()`), step, lr and start (index into
    STARTS), each (M,); train/test per-class loss and accuracy, each (M, K). Seeds depend on (seed, class,
    run, kind) only, so a resumed collection produces the same checkpoints as an uninterrupted one.
    """
    retain = f.y_train != cls
    fr, yr = f.train[retain], f.y_train[retain]
    forget_feats = f.train[~retain]
    other = torch.tensor([k for k in range(f.num_classes) if k != cls])
    heads, run_id, kind_id, step_id, lrs, start_id = [], [], [], [], [], []
    for ki, kind in enumerate(cfg.kinds()):
        for run in range(cfg.runs_per_class):
            gen = torch.Generator().manual_seed(_seed(seed, cls, run, KINDS.index(kind)))
            lr = math.exp(math.log(cfg.lr_min) + torch.rand((), generator=gen).item() *
                          (math.log(cfg.lr_max) - math.log(cfg.lr_min)))
            if kind == "retrain":
                rows0, x, t = torch.zeros_like(start), fr, yr
            elif kind == "finetune":
                rows0, x, t = start, fr, yr
            else:  # relabel: forget samples get random labels among the retained classes
                fake = other[torch.randint(len(other), (len(forget_feats),), generator=gen)]
                rows0, x, t = start, torch.cat([fr, forget_feats]), torch.cat([yr, fake])
            hs, steps = run_trajectory(rows0, x, t, cfg, lr, gen, cfg.skip_scratch if kind == "retrain" else 0.0)
            heads.append(hs)
            run_id += [run] * len(hs)
            kind_id += [ki] * len(hs)
            step_id += steps[:len(hs)]
            lrs += [lr] * len(hs)
            start_id += [STARTS.index(KIND_START[kind])] * len(hs)
    stack = torch.cat(heads)
    tr_loss, tr_acc = per_class_stats(stack, f.train, f.y_train, f.num_classes)
    te_loss, te_acc = per_class_stats(stack, f.test, f.y_test, f.num_classes)
    return {"heads": stack.contiguous(), "run": torch.tensor(run_id), "kind": torch.tensor(kind_id),
            "step": torch.tensor(step_id), "lr": torch.tensor(lrs, dtype=torch.float32),
            "start": torch.tensor(start_id),
            "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc}
