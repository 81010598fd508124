"""The settings of `hyperforget train` (`--set key=value`, parsed by `unlearnkit.settings`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .collect import CollectConfig
from .net import NetConfig


@dataclass
class HyperForgetConfig:
    """Every setting of `hyperforget train` (`--set key=value`); defaults sized for 2 CPU cores."""

    # checkpoint collection (see collect.py)
    classes: str = ""  # forgettable classes to cover, e.g. "0,3"; empty: all
    runs_per_class: int = 6
    trajectories: str = "retrain,finetune"
    head_epochs: int = 6  # epochs of each head-training run
    checkpoints_per_run: int = 12
    head_batch_size: int = 256
    lr_min: float = 1e-3
    lr_max: float = 3e-2
    head_weight_decay: float = 5e-4
    skip_scratch: float = 0.25  # share of the first steps of retrain-from-zero runs that is not recorded
    holdout_runs: int = 1  # runs per class and kind kept out of training, to measure prompt alignment
    # hypernetwork (see basis.py, net.py)
    rank: int = 32  # principal directions of the heads kept (basis.py)
    chunk: int = 8  # coefficients per token
    arch: str = "mlp"  # or "transformer" (G.pt's; slower, and less accurate at this budget)
    width: int = 256
    depth: int = 3
    heads: int = 4
    num_frequencies: int = 32
    max_freq_log2: float = 4.0
    # diffusion training
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 100
    grad_clip: float = 1.0
    ema: float = 0.995
    save_every: int = 200
    diffusion_steps: int = 1000
    sample_steps: int = 50
    temperature: float = 0.7  # scale of the sampler's noise (diffusion.py); < 1: fewer outliers, less spread
    val_samples: int = 4

    def collect(self) -> CollectConfig:
        return CollectConfig(self.runs_per_class, self.trajectories, self.head_epochs, self.checkpoints_per_run,
                             self.head_batch_size, self.lr_min, self.lr_max, self.head_weight_decay,
                             self.skip_scratch)

    def net(self) -> NetConfig:
        return NetConfig(self.arch, self.width, self.depth, self.heads, self.num_frequencies, self.max_freq_log2)

    def validate(self) -> None:
        self.collect().validate()
        if not 0 <= self.holdout_runs < self.runs_per_class:
            raise UserError(f"holdout_runs={self.holdout_runs} must be in 0..runs_per_class-1 "
                            f"({self.runs_per_class - 1}): training needs at least one run per class")
        if min(self.steps, self.batch_size, self.save_every, self.sample_steps, self.width, self.depth,
               self.rank, self.chunk) < 1:
            raise UserError("steps, batch_size, save_every, sample_steps, width, depth, rank, chunk must be >= 1")
        if self.arch not in ("transformer", "mlp"):
            raise UserError(f"arch={self.arch!r}: choose transformer or mlp")
        if self.width % self.heads:
            raise UserError(f"width={self.width} must be a multiple of heads={self.heads}")
        if not (self.lr > 0 and 0 <= self.ema < 1 and self.diffusion_steps >= 2 and self.temperature >= 0):
            raise UserError("need lr > 0, 0 <= ema < 1, diffusion_steps >= 2 and temperature >= 0")
