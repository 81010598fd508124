"""The training loop shared by `unlearnkit train`, `retrain` and fine-tuning methods."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.bundle import Part
from ..errors import NumericalError, UserError
from . import distributed, runlog
from .checkpoint import Scope
from .device import autocast, fast_layout
from .progress import progress


@dataclass
class TrainConfig:
    """Recipe for (re)training; stored in meta.json so `retrain` repeats it exactly without the forget set."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on the CPU; or "fp32" / "bf16"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def make_optimizer(params, name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    """SGD with momentum or Adam."""
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise UserError(f"optimizer={name}: choose sgd or adam")


def make_scheduler(opt: torch.optim.Optimizer, name: str, total_steps: int):
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def check_finite(loss: Tensor, where: str, step: int) -> None:
    """Stop on a NaN/infinite loss, naming the method and step, before it poisons the weights."""
    if not torch.isfinite(loss).all():
        raise NumericalError(f"{where}: loss became {loss.item()} at step {step}; lower the learning rate")


class LossWatch:
    """`check_finite` for a training loop, without making the CPU wait for the GPU at every step.

    Reading a CUDA loss back to the host (`isfinite(...).all()` as a Python bool) synchronises the stream, so the
    CPU could no longer queue the next step while the GPU ran this one. On CUDA the flags are gathered on the
    device and read every `every` steps and at the end of each epoch; the error then names the step range. The
    CPU checks every step (nothing to overlap there)."""

    def __init__(self, where: str, device: torch.device, every: int = 50) -> None:
        self.where, self.every = where, every if device.type == "cuda" else 1
        self.bad: Tensor | None = None
        self.first = 0

    def add(self, loss: Tensor, step: int) -> None:
        if self.every == 1:
            check_finite(loss, self.where, step)
            return
        flag = ~torch.isfinite(loss.detach()).all()
        self.bad = flag if self.bad is None else self.bad | flag
        if step + 1 - self.first >= self.every:
            self.check(step)

    def check(self, step: int) -> None:
        """Raise if any loss since the last check was NaN or infinite."""
        if self.bad is not None and bool(self.bad):
            raise NumericalError(f"{self.where}: the loss became NaN or infinite between steps {self.first} and "
                                 f"{step}; lower the learning rate")
        self.bad, self.first = None, step + 1


def fit(model: nn.Module, data: Part, cfg: TrainConfig, device: torch.device, generator: torch.Generator,
        desc: str = "train", loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        on_epoch: Callable[[nn.Module, int], bool] | None = None, checkpoint: Scope | None = None) -> list[float]:
    """Train `model` in place on `data` with `cfg`; return the mean loss of each epoch.

    `checkpoint`: the checkpoint scope of the command's stage this training belongs to (a method gets it as
    `task.checkpoint`); each epoch is then saved there and an interrupted run resumes from the last one. None: no
    checkpoints (tests, the bench's inner loops).

    `on_epoch(model, epoch)` is called after each epoch (1-based); returning False ends training there (a
    backdoor defence's guard stops a collapsing model this way).

    Under torchrun each rank trains on its slice of every global batch of `cfg.batch_size` (see
    `engine.distributed`), so the result does not depend on the number of processes.
    """
    loss_fn = loss_fn or F.cross_entropy
    fast_layout(model, device)
    if device.type == "cuda":
        data = data.to(device)
    net = distributed.wrap(model, device)
    opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    sched = make_scheduler(opt, cfg.schedule, cfg.epochs * steps_per_epoch)
    stage = checkpoint.next_fit(desc, cfg.epochs) if checkpoint is not None else None
    start, step, history = stage.restore(model, opt, sched, generator) if stage else (0, 0, [])
    watch = LossWatch(desc, device)
    for epoch in progress(range(start, cfg.epochs), desc, cfg.epochs - start):
        model.train()
        total, count = torch.zeros((), device=device), 0
        batches = data.batches(cfg.batch_size, device, shuffle=True, generator=generator, augment=cfg.augment)
        for x, y in progress(batches, f"{desc} epoch", steps_per_epoch):
            x, y, weight = distributed.my_share(x, y)
            with autocast(device, cfg.precision):
                loss = loss_fn(net(x).float(), y)
            watch.add(loss, step)
            opt.zero_grad(set_to_none=True)
            (loss * weight if weight != 1.0 else loss).backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(y) * (weight > 0)
            count += len(y) * (weight > 0)
            step += 1
        watch.check(step - 1)
        total_all, count_all = distributed.sum_over_ranks(float(total), count)
        history.append(total_all / max(1, count_all))
        runlog.epoch(desc, len(history), cfg.epochs, history[-1])
        if stage:
            stage.save(epoch + 1, step, history, model, opt, sched, generator)
        if on_epoch is not None and not on_epoch(model, epoch + 1):
            break
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, data: Part, device: torch.device, batch_size: int = 512) -> Tensor:
    """Logits for every sample of `data` (eval mode), on the CPU.

    Under torchrun each rank predicts one chunk and the chunks are gathered, each sample exactly once.
    """
    n = len(data)
    if n == 0:
        return torch.zeros(0)
    was_training = model.training
    model.eval()
    local = data.subset(distributed.shard_indices(n)) if distributed.world_size() > 1 else data
    steps = math.ceil(len(local) / batch_size)
    keep = device if distributed.world_size() > 1 else torch.device("cpu")  # nccl gathers device tensors
    out = [model(x).float().to(keep) for x, _ in progress(local.batches(batch_size, device), "predict", steps)]
    model.train(was_training)
    return distributed.gather_rows(torch.cat(out), n).cpu()
