"""The epoch checkpoints behind `--resume`.

`train` and `forget` keep checkpoints in a hidden folder beside the output, `.OUT.partial/`:
`run.json` (the command that made them) and one `.safetensors` file per stage (tensors, with the rest of the
state as JSON in its header), each written to a temporary name and renamed, so a kill at any instant leaves
the previous checkpoint whole. A stage is either a call of `engine.train.fit` (saved after an epoch at most
every `min_interval()` seconds, and after its last epoch: model, optimizer, scheduler, and every RNG: the
run's generator, torch's, NumPy's, Python's) or a method's finished result. `--resume` restores them, so the
resumed run ends with the same weights and metrics as an uninterrupted one; the folder is removed once the
output is committed. (Reading users' own checkpoints safely is `engine/safeload.py`.)
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UserError
from . import runlog
from .atomic import write_atomic
from .distributed import barrier, is_main
from .progress import say

# --------------------------------------------------------------------------- state <-> safetensors + json

def _pack(obj: Any, tensors: dict[str, Tensor], key: str) -> Any:
    """Replace every tensor/array in a nested state by a reference into `tensors`; the rest stays JSON."""
    if isinstance(obj, Tensor):
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__t__": key}
    if isinstance(obj, np.ndarray):
        tensors[key] = torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj.copy())
        return {"__np__": key, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {"__d__": [[k, _pack(v, tensors, f"{key}.{i}")] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
        return {"__tu__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {key}")


def _unpack(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__t__" in obj:
        return tensors[obj["__t__"]]
    if "__np__" in obj:
        return tensors[obj["__np__"]].numpy().astype(obj["dtype"])
    if "__tu__" in obj:
        return tuple(_unpack(v, tensors) for v in obj["__tu__"])
    return {k: _unpack(v, tensors) for k, v in obj["__d__"]}


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a nested state (tensors, arrays, JSON values) as one safetensors file, atomically."""
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    tree = _pack(state, tensors, "s")
    write_atomic(path, save(tensors, metadata={"state": json.dumps(tree)}))


CORRUPT_FIX = "delete that file (or the whole .partial folder) to start that stage again"


class CorruptCheckpoint(UserError):
    """A checkpoint that cannot be read back: the other checkpoints beside it are kept (not discarded like the
    folder after other bad input), so that deleting the one file loses only its stage."""


def load_state(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_state`; a truncated or corrupt one is a one-line `UserError` naming the
    file (issue 19: a corrupt checkpoint in `.partial` made `--resume` an internal error)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            tree = json.loads(f.metadata()["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
        return _unpack(tree, tensors)
    except Exception as err:  # noqa: BLE001 - any defect of the file: safetensors, JSON, a missing key
        raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({type(err).__name__}): {CORRUPT_FIX}") from err


def rng_state(generator: torch.Generator | None) -> dict[str, Any]:
    """Every random state a run draws from, so a resumed run draws the same numbers."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(legacy=False),
             "python": random.getstate()}
    if generator is not None:
        state["generator"] = generator.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# --------------------------------------------------------------------------- stages of a run

def min_interval() -> float:
    """Seconds between two epoch checkpoints (`UNLEARNKIT_CHECKPOINT_SECONDS`, default 5; 0 = every epoch).

    Long epochs are all saved; a tiny model's epochs (a fraction of a second) are not each worth a write.
    """
    try:
        return max(0.0, float(os.environ.get("UNLEARNKIT_CHECKPOINT_SECONDS", "5")))
    except ValueError:
        return 5.0


class FitStage:
    """The epoch checkpoints of one `fit` call of `epochs` epochs (`desc` names it in the run log)."""

    def __init__(self, path: Path, epochs: int, desc: str) -> None:
        self.path, self.epochs, self.desc = path, epochs, desc
        self.prior_seconds = 0.0
        self._t0 = self._last = time.perf_counter()

    def restore(self, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                generator: torch.Generator | None) -> tuple[int, int, list[float]]:
        """Load the last checkpoint into the live objects; (epochs done, steps done, loss history)."""
        if not self.path.is_file():
            return 0, 0, []
        s = load_state(self.path)
        try:
            _unwrap(model).load_state_dict(s["model"])
            opt.load_state_dict(s["optimizer"])
            sched.load_state_dict(s["scheduler"])
            set_rng_state(s["rng"], generator)
            self.prior_seconds = float(s["seconds"])
            history = [float(v) for v in s["history"]]
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise CorruptCheckpoint(f"checkpoint {self.path} does not fit this run ({type(err).__name__}): "
                                    f"{CORRUPT_FIX}") from err
        for i, loss in enumerate(history, 1):  # the log and loss curves cover the epochs before the interruption
            runlog.epoch(self.desc, i, self.epochs, loss)
        runlog.log(f"{self.desc}: resumed after epoch {s['epoch']} from {self.path.name}")
        return int(s["epoch"]), int(s["step"]), history

    def save(self, epoch: int, step: int, history: list[float], model: nn.Module, opt: torch.optim.Optimizer,
             sched: Any, generator: torch.Generator | None) -> None:
        """Checkpoint after an epoch (always after the last one, so a finished fit is never repeated)."""
        now = time.perf_counter()
        if not is_main() or (epoch < self.epochs and now - self._last < min_interval()):
            return
        self._last = now
        save_state(self.path, {"epoch": epoch, "step": step, "history": history,
                               "seconds": self.prior_seconds + time.perf_counter() - self._t0,
                               "model": _unwrap(model).state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "rng": rng_state(generator)})


class Scope:
    """A named part of a run (e.g. 'method', 'reference'): numbers its `fit` calls, caches its result."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.fits: list[FitStage] = []

    def next_fit(self, desc: str, epochs: int) -> FitStage:
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", desc)[:40]
        stage = FitStage(self.folder / f"{self.name}.fit{len(self.fits)}-{slug}.safetensors", epochs, desc)
        self.fits.append(stage)
        return stage

    @property
    def carried_seconds(self) -> float:
        """Seconds spent in this scope's fits before the interruption (added to the resumed wall time)."""
        return sum(f.prior_seconds for f in self.fits)

    @property
    def _result(self) -> Path:
        return self.folder / f"{self.name}.result.safetensors"

    def load_result(self, model: nn.Module) -> dict | None:
        """Load a finished result into `model` and return its info, or None when there is none."""
        if not self._result.is_file():
            return None
        s = load_state(self._result)
        try:
            model.load_state_dict(s["model"])
        except RuntimeError:
            return None  # a result that does not fit is recomputed
        return s["info"]

    def save_result(self, model: nn.Module, info: dict) -> None:
        if is_main():
            save_state(self._result, {"model": _unwrap(model).state_dict(), "info": info})


class Checkpoints:
    """The checkpoint folder of one command (`.OUT.partial/` beside OUT)."""

    def __init__(self, out: Path, fingerprint: dict, resume: bool, overwrite: bool) -> None:
        self.folder = partial_dir(out)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        run_json = self.folder / "run.json"
        if is_main() and self.folder.exists() and (overwrite or not run_json.is_file()):
            shutil.rmtree(self.folder)  # discarded on request, or never completed its first write
        barrier()  # under torchrun every rank decides on the same folder ...
        exists = self.folder.exists()
        # ... and none goes on (rank 0 then makes the folder) before every rank has looked. Without this barrier a
        # rank that looked late saw rank 0's new folder, refused it as an interrupted run and left, and its peer
        # hung in the next collective or failed with gloo's "Connection closed by peer" (issue 19's flaky
        # tests/test_ddp.py; `py-spy dump` of a hung run: rank 0 in DDP's first collective, rank 1 at exit)
        barrier()
        if exists and not resume:
            raise UserError(f"{self.folder} holds checkpoints of an interrupted run: pass --resume to continue "
                            f"it, or --overwrite to start again")
        elif exists:
            try:
                old = json.loads(run_json.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise UserError(f"{run_json} is unreadable: pass --overwrite to start again") from err
            a, b = _leaves(old), _leaves(self.fingerprint)
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if diff:
                raise UserError(f"the checkpoints in {self.folder} were made by a different command (it differs in "
                                f"{', '.join(diff)}): repeat that command with --resume, or pass --overwrite")
        self.resumed = exists
        self.live, self.log_from = False, runlog.mark()
        self.earlier_machines = _read_machines(self.folder / MACHINES_FILE) if exists else []

    def _ensure(self) -> Path:
        if is_main() and not self.folder.exists():
            tmp = self.folder.with_name(self.folder.name + f".tmp-{uuid.uuid4().hex[:8]}")
            tmp.mkdir(parents=True)
            (tmp / "run.json").write_text(json.dumps(self.fingerprint, indent=2) + "\n")
            os.replace(tmp, self.folder)
        if is_main() and not self.live:
            self.live = True
            write_atomic(self.folder / MACHINES_FILE, json.dumps(self._machines()).encode())
            runlog.write_as_you_go(self.folder / LIVE_LOG, self.log_from)
            say(f"log as the run goes: {self.folder / LIVE_LOG}")
        return self.folder

    def _machines(self) -> list[str]:
        from .device import machine

        return sorted(set(self.earlier_machines) | {machine()})

    @property
    def machine(self) -> str:
        """The machine this command's seconds were measured on, for meta.json: this one, or, when an interrupted
        run was resumed on another, 'mixed (A; B)', which matches no machine, so its seconds are compared with
        no other run's (a run checkpointed before machines were recorded counts as made here)."""
        from .device import MIXED, machine

        ms = self._machines()
        return machine() if len(ms) == 1 else f"{MIXED}{'; '.join(ms)})"

    def enter(self, name: str) -> Scope:
        """The scope of one named stage (e.g. 'method', 'reference'), to pass to its `fit` calls."""
        self._ensure()
        return Scope(self.folder, name)

    def discard(self) -> None:
        runlog.stop_writing()
        if is_main():
            shutil.rmtree(self.folder, ignore_errors=True)


def _leaves(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'train.epochs': 4, ...}: a nested dict flattened to dotted keys, to name what differs."""
    if not isinstance(d, dict) or not d:
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


LIVE_LOG = "log.txt"  # the run's log as it goes, inside the checkpoint folder (see runlog.write_as_you_go)


def partial_dir(out: Path) -> Path:
    """Where the checkpoints of a run writing OUT live: `.OUT.partial` beside it."""
    return out.parent / f".{out.name}.partial"


MACHINES_FILE = "machines.json"


def _read_machines(path: Path) -> list[str]:
    """The machines that worked on an interrupted run (none known for one checkpointed before they were kept)."""
    try:
        ms = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [m for m in ms if isinstance(m, str)] if isinstance(ms, list) else []


@contextmanager
def checkpointing(out: str | Path, fingerprint: dict, resume: bool = False,
                  overwrite: bool = False) -> Iterator[Checkpoints]:
    """Checkpoints of one command in `.OUT.partial/`: each stage is `ck.enter(name)`, a `Scope` passed to the stage's
    `fit` calls (and, for a method, as `task.checkpoint`).

    The folder is removed when the block ends normally (the output is committed) or with bad input or a
    numerical fault (repeating would fail the same way); it is kept after Ctrl-C, a kill or any other crash,
    for `--resume`.
    """
    from ..errors import NumericalError

    ck = Checkpoints(Path(out).expanduser(), fingerprint, resume, overwrite)
    try:
        yield ck
    except CorruptCheckpoint:
        raise
    except (UserError, NumericalError):
        ck.discard()
        raise
    else:
        ck.discard()
    finally:
        runlog.stop_writing()
