"""The one device layer. Everything asks here which device to use; nothing calls `.cuda()`.

The same code runs on one CPU, one GPU (or Apple's MPS), or data-parallel under `torchrun` (gloo on CPU, nccl on
one GPU per process): this module reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and joins the
process group once. `accelerate`'s `PartialState` did this until issue 20; it was the package's only use of
`accelerate`, whose `prepare()` would replace `engine.distributed`'s sharding with a DataLoader's, and that pads
evaluation batches with repeated samples (so metrics must be gathered through it) where ours counts each sample
exactly once and weights each rank's loss to the global batch mean (tests/test_ddp.py checks both against one
process). Twenty lines of torch.distributed are cheaper than a dependency used for one call.
"""

from __future__ import annotations

import atexit
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn


@dataclass(frozen=True)
class _State:
    device: torch.device
    process_index: int
    num_processes: int

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0


def _pick_device(world: int, local_rank: int) -> torch.device:
    """CUDA (one GPU per torchrun process), else MPS for a single process, else the CPU; `UNLEARNKIT_DEVICE=cpu`
    forces the CPU."""
    if os.environ.get("UNLEARNKIT_DEVICE", "").lower() == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
        return device
    mps = getattr(torch.backends, "mps", None)
    if world == 1 and mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@lru_cache(maxsize=1)
def _state() -> _State:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = _pick_device(world, local_rank)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
        atexit.register(_leave_together)
    if device.type == "cuda":
        # every batch has the same shape, so cuDNN's one-off timing of its convolution kernels pays for itself
        # within the first epoch (fp32 stays fp32: TF32 is not switched on)
        torch.backends.cudnn.benchmark = True
    return _State(device, rank if world > 1 else 0, world)


def _leave_together() -> None:
    """At exit under torchrun: wait for every rank, then close the process group.

    Why: a rank that exits while its peer is still finishing the last collective closes its sockets with
    unread data in them, which resets the connection; the peer then fails with gloo's "Connection closed by
    peer" although both had done all their work (issue 19: `tests/test_ddp.py` failed this way once, on rank 1
    during the forget step). A barrier first means no rank leaves before the others have reached the end.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def get_device() -> torch.device:
    """The device of this process (CUDA/MPS when present, else CPU; `UNLEARNKIT_DEVICE=cpu` forces CPU)."""
    return _state().device


def device_name() -> str:
    """What the runs of this process ran on, for logs: e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu'."""
    device = get_device()
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else `platform`'s guess), e.g. 'AMD EPYC 7B13'."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """What a run's seconds were measured on, e.g. '2-core AMD EPYC 7B13, cpu': recorded in meta.json so that the
    times of two runs are compared only when they ran on the same kind of machine (the cores this process may use,
    not the host's). Not torch's thread count: that is a setting of one command (`--threads`), and several jobs
    sharing one machine's cores would otherwise never be compared with the model they started from."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores}-core {cpu_name()}, {device_name()}"


MIXED = "mixed ("  # the label of a run resumed on another machine (`Checkpoints.machine`)


def one_machine(label: str | None) -> bool:
    """Whether a run's seconds were all measured on one machine (not a run resumed elsewhere)."""
    return not (label or "").startswith(MIXED)


def same_machine(a: str | None, b: str | None) -> bool:
    """Whether two runs' recorded machines allow comparing their seconds (unknown, i.e. a run made before machines
    were recorded, counts as the same: the comparison is what it always was; a mixed run matches none, not even
    another run resumed across the same two machines)."""
    return one_machine(a) and one_machine(b) and not (a and b and a != b)


def is_main_process() -> bool:
    """True on rank 0 (the only process that writes files)."""
    return _state().is_main_process


def world_size() -> int:
    return _state().num_processes


def rank() -> int:
    return _state().process_index


PRECISIONS = ("auto", "fp32", "bf16")


def uses_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast for training: `auto` means on CUDA only (the CPU stays in fp32, where bf16 is slower and
    would change the numbers that tests and CPU benchmarks pin down)."""
    return device.type == "cuda" and precision in ("auto", "bf16")


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The forward pass's precision context for training: bf16 autocast on CUDA, nothing elsewhere."""
    if uses_bf16(device, precision):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def fast_layout(model: nn.Module, device: torch.device) -> nn.Module:
    """channels_last on CUDA (tensor cores read NHWC convolutions faster); unchanged elsewhere."""
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model
