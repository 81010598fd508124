"""Data parallelism under `torchrun` (gloo on CPU, nccl on GPU), through the process group of `engine.device`.

Every rank runs the same command with the same seed, so every rank draws the same shuffled global batch;
each rank then trains on its own slice of that batch and DDP averages the gradients. The result is the
gradient of the whole global batch: N processes follow (up to float rounding and per-rank BatchNorm
statistics) the path of one process with the same `--batch-size`, only faster.

Evaluation splits the samples into one contiguous chunk per rank, padded with copies of the last sample so
every rank has the same number (collectives need equal shapes), gathers, and trims the padding: every
sample is counted exactly once. Only rank 0 writes files.

Outside torchrun every function here is a no-op and touches no process group.
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor, nn


def launched() -> bool:
    """True inside a multi-process launch (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    if not launched():
        return 1
    from .device import world_size as ws

    return ws()


def rank() -> int:
    if not launched():
        return 0
    from .device import rank as r

    return r()


def is_main() -> bool:
    """Rank 0, the only process that writes run directories, logs and reports."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP-wrap `model` for training when launched with several processes (else return it unchanged).

    The wrapper shares the module's parameters, so training through it updates `model` in place.
    """
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
        else None
    return DistributedDataParallel(model, device_ids=ids)


def my_share(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float]:
    """This rank's contiguous slice of a global batch, and the weight for its (mean-reduced) loss.

    DDP averages gradients over ranks; weighting each rank's mean loss by `len(slice) * world / len(batch)`
    turns that average into the gradient of the global batch's mean loss, even when the last batch does
    not divide evenly. A rank left with no sample runs one sample with weight 0 (every rank must take part
    in each gradient all-reduce).
    """
    w = world_size()
    if w == 1:
        return x, y, 1.0
    r = rank()
    xs, ys = torch.tensor_split(x, w)[r], torch.tensor_split(y, w)[r]
    if len(ys) == 0:
        return x[:1], y[:1], 0.0
    return xs, ys, len(ys) * w / len(y)


def sum_over_ranks(*values: float) -> list[float]:
    """Sum a few numbers over all ranks (e.g. an epoch's loss total and sample count)."""
    if world_size() == 1:
        return [float(v) for v in values]
    from .device import get_device

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=get_device())
    torch.distributed.all_reduce(t)
    return t.cpu().tolist()


def shard_indices(n: int) -> Tensor:
    """Indices of this rank's contiguous chunk of `n` samples, padded with the last index to ceil(n/world)."""
    w, r = world_size(), rank()
    k = math.ceil(n / w)
    idx = torch.arange(r * k, (r + 1) * k)
    return idx.clamp_(max=n - 1)


def gather_rows(local: Tensor, n: int) -> Tensor:
    """All ranks' equal-sized chunks (from `shard_indices`) concatenated in rank order, padding trimmed to n."""
    w = world_size()
    if w == 1:
        return local[:n]
    parts = [torch.empty_like(local) for _ in range(w)]
    torch.distributed.all_gather(parts, local.contiguous())
    return torch.cat(parts)[:n]


def broadcast_model(model: nn.Module) -> None:
    """Give every rank rank 0's weights (after a method that ran its own, non-DDP loop on each rank)."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            torch.distributed.broadcast(t.data, src=0)
