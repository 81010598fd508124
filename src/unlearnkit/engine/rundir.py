"""Run directories: `model.safetensors` + `meta.json` (+ `metrics.json`, `report.html`, `log.txt`).

Outputs are assembled under a hidden temporary name beside the target and renamed into place only when
complete, so a crash or Ctrl-C never leaves a half-written directory that looks like a finished run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..errors import UserError
from ..runmeta import RunMeta
from . import runlog
from .distributed import barrier, is_main

REQUIRED_META = ("arch", "num_classes", "classes", "input_shape", "normalization", "data")
MODEL_FILE, META_FILE, METRICS_FILE, LOG_FILE = "model.safetensors", "meta.json", "metrics.json", "log.txt"


def versions() -> dict[str, str]:
    import torchvision


    return {"unlearnkit": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


@dataclass
class Run:
    """A finished run directory, read back."""

    path: Path
    meta: RunMeta  # meta.json, typed (a dict)
    metrics: dict = field(default_factory=dict)

    def build_model(self, device: torch.device | str = "cpu") -> nn.Module:
        """Rebuild the architecture from meta.json and load the weights (safetensors only, never pickle)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        model = RunMeta.of(self.meta).new_model()
        try:
            state = load_file(str(self.path / MODEL_FILE))
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"cannot read {self.path / MODEL_FILE} ({err}): the weights file is corrupt or "
                            f"truncated; re-create the run") from err
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0][:200]
            raise UserError(f"weights in {self.path} do not fit its meta.json ({first}): the run directory is "
                            f"inconsistent; re-create it") from err
        if any(not torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
            raise UserError(f"weights in {self.path} contain NaN or infinite values: re-create the run")
        return model.to(device).eval()


MAX_CHANNELS, MAX_SIDE = 16, 4096  # beyond any dataset unlearnkit loads; guards model building from absurd shapes


#: the temporary names a RunWriter gives an output while writing it (`.OUT.tmp-1a2b3c4d`, `.OUT.old-...`)
LEFTOVER = re.compile(r"\..+\.(tmp|old)-[0-9a-f]{8}")


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def load_run(path: str | Path) -> Run:
    """Read and validate a run directory; any defect is a `UserError` naming it."""
    p = Path(path)
    fix = "pass a directory written by `unlearnkit train` or `unlearnkit forget`"
    if not p.is_dir():
        raise UserError(f"run directory {p} does not exist: {fix}")
    if LEFTOVER.fullmatch(p.resolve().name):
        raise UserError(f"{p} is the unfinished output of an interrupted command, not a run: remove it and {fix}")
    for name in (MODEL_FILE, META_FILE):
        if not (p / name).is_file():
            raise UserError(f"run directory {p} is incomplete (no {name}): {fix}")
    try:
        meta = json.loads((p / META_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise UserError(f"{p / META_FILE} is not valid JSON ({getattr(err, 'msg', type(err).__name__)}): {fix}") \
            from err
    if not isinstance(meta, dict):
        raise UserError(f"{p / META_FILE} is not a JSON object: {fix}")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise UserError(f"{p / META_FILE} lacks {', '.join(missing)}: {fix}")
    problem = _meta_problem(meta)
    if problem:
        raise UserError(f"{p / META_FILE} is malformed ({problem}): {fix}")
    metrics: dict = {}
    if (p / METRICS_FILE).is_file():
        try:
            metrics = json.loads((p / METRICS_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            metrics = {}
    if not isinstance(metrics, dict) or _metrics_problem(metrics):
        metrics = {}  # derived numbers: a hand-edited or corrupt file is ignored, as an unreadable one is
    return Run(p, RunMeta(meta), metrics)


NUMERIC_METRICS = ("test_acc", "retain_acc", "forget_acc", "forget_test_acc", "mia_efficacy", "mia_loss_auc",
                   "clean_acc", "asr", "robust_acc", "der", "seconds", "speedup", "agreement_with_original")


def _metrics_problem(m: dict, depth: int = 0) -> str | None:
    """The first wrongly typed field a report or a comparison would read (None when there is none)."""
    for k in NUMERIC_METRICS:
        if k in m and m[k] is not None and not isinstance(m[k], (int, float)) or isinstance(m.get(k), bool):
            return f"{k} is not a number"
    pca = m.get("per_class_acc")
    if pca is not None and not (isinstance(pca, dict) and all(
            isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            for v in pca.values())):
        return "per_class_acc is not lists of numbers"
    conf = m.get("confusion_test")
    if conf is not None and not (isinstance(conf, list) and all(
            isinstance(r, list) and all(_is_int(x) for x in r) for r in conf)):
        return "confusion_test is not a matrix of counts"
    loss = m.get("train_loss")
    if loss is not None and not (isinstance(loss, list) and all(_is_num(x) for x in loss)):
        return "train_loss is not a list of numbers"
    for k in ("reference", "original", "gap") if depth == 0 else ():
        if k in m and not (isinstance(m[k], dict) and _metrics_problem(m[k], 1) is None):
            return f"{k} is malformed"
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


RUN_KINDS = ("train", "import", "forget")  # what wrote the run; commands read a forget run differently


def _meta_problem(m: dict) -> str | None:
    """The first defect of a meta.json (None when it is sound): every field a command reads is checked here,
    so a hand-edited or corrupted file fails with its name instead of a traceback deep inside a command."""
    arch, norm, data, shape = m["arch"], m["normalization"], m["data"], m["input_shape"]
    if m.get("kind", "train") not in RUN_KINDS:
        return f"kind must be one of {', '.join(RUN_KINDS)}"
    if not (isinstance(arch, dict) and isinstance(arch.get("name"), str) and isinstance(arch.get("kwargs", {}), dict)):
        return "arch must be {name, kwargs}"
    classes = m["classes"]
    if not (_is_int(m["num_classes"]) and isinstance(classes, list) and m["num_classes"] == len(classes) >= 2
            and all(isinstance(c, str) for c in classes)):
        return "num_classes must equal the number of class names, at least 2"
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) and v > 0 for v in shape)
            and shape[0] <= MAX_CHANNELS and max(shape[1:]) <= MAX_SIDE):
        return "input_shape must be [channels, height, width]"
    if not (isinstance(norm, dict) and all(isinstance(norm.get(k), list) and len(norm[k]) == shape[0]
                                           and all(_is_num(v) for v in norm[k]) for k in ("mean", "std"))
            and all(v > 0 for v in norm["std"])):
        return "normalization needs a finite mean and a positive std per channel"
    if not (isinstance(data, dict) and isinstance(data.get("spec"), str)
            and (data.get("root") is None or isinstance(data["root"], str))
            and (data.get("image_size") is None or _is_int(data["image_size"]))
            and _is_num(data.get("val_fraction", 0.1)) and 0 <= data.get("val_fraction", 0.1) < 1
            and _is_int(data.get("split_seed", 0))):
        return "data must be {spec, root, image_size, val_fraction, split_seed}"
    if not _is_int(m.get("seed", 0)):
        return "seed must be an integer"
    if not _train_ok(m.get("train", {})):
        return "train must be a training recipe (epochs, batch_size, lr, optimizer ...)"
    if m.get("forget") is not None and not _forget_ok(m["forget"], m["num_classes"]):
        return "forget is not a valid forget spec"
    if m.get("kind") == "forget" and not _scenario_ok(m):
        return "scenario does not match forget"
    if m.get("poison") is not None and not isinstance(m["poison"], dict):
        return "poison must be an object"
    for key in ("seconds", "training_seconds"):
        if m.get(key) is not None and not _is_num(m[key]):
            return f"{key} must be a number"
    for key in ("machine", "training_machine"):
        if m.get(key) is not None and not isinstance(m[key], str):
            return f"{key} must be a string"
    return None


def _train_ok(t: Any) -> bool:
    if not isinstance(t, dict):
        return False
    ints = all(_is_int(t.get(k, 1)) and t.get(k, 1) >= 1 for k in ("epochs", "batch_size"))
    nums = all(_is_num(t.get(k, 0)) and t.get(k, 0) >= 0 for k in ("lr", "momentum", "weight_decay"))
    return ints and nums and t.get("optimizer", "sgd") in ("sgd", "adam") and isinstance(t.get("schedule", ""), str) \
        and isinstance(t.get("augment", True), bool)


def _scenario_ok(m: dict) -> bool:
    scenario, f = m.get("scenario"), m.get("forget")
    if scenario == "backdoor":
        return f is None
    return scenario in ("class", "random", "indices") and isinstance(f, dict) and f.get("kind") == scenario


def _forget_ok(f: Any, num_classes: int) -> bool:
    if not isinstance(f, dict) or f.get("kind") not in ("class", "random", "indices") or not _is_int(f.get("seed", 0)):
        return False
    if f["kind"] == "class":
        c = f.get("classes")
        return isinstance(c, list) and bool(c) and all(_is_int(v) and 0 <= v < num_classes for v in c)
    if f["kind"] == "random":
        return _is_num(f.get("fraction")) and 0 < f["fraction"] < 1
    i = f.get("indices")
    return isinstance(i, list) and bool(i) and all(_is_int(v) for v in i)


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False, default=_json_default) + "\n"


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class RunWriter:
    """Builds a run directory under a temporary name; `commit()` renames it into place.

    Under torchrun only rank 0 writes; the other ranks' calls do nothing, and `commit()` returns on every
    rank only once the directory is in place. `commit()` also writes `log.txt` (see `engine.runlog`).
    """

    def __init__(self, out: str | Path, overwrite: bool = False, inputs: tuple[str | Path, ...] = (),
                 tensorboard: str | Path | None = None) -> None:
        self.out = Path(out).expanduser()
        for src in inputs:
            s = Path(src).resolve()
            o = self.out.resolve()
            if o == s or s in o.parents or o in s.parents:
                raise UserError(f"--out {self.out} would overwrite or nest in the input {src}: choose another --out")
        if self.out.exists() and not overwrite:
            raise UserError(f"output {self.out} already exists: choose another --out or pass --overwrite")
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"output {self.out} exists and is not a directory: choose another --out")
        self.overwrite = overwrite
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{uuid.uuid4().hex[:8]}"
        self._sweep()
        self._made = False
        self._log_start, self._t0 = runlog.mark(), time.perf_counter()
        self._meta: dict = {}
        self._metrics: dict = {}
        if tensorboard is not None and is_main():
            runlog.open_tensorboard(Path(tensorboard).expanduser() / self.out.name)

    def _sweep(self) -> None:
        """Remove what a command killed during its final write left beside --out (`.OUT.tmp-*`, `.OUT.old-*`),
        but only while this process holds the lock on --out (`checks.lock_output`): no other writer then exists."""
        from ..checks import holds_lock

        if not is_main() or not holds_lock(self.out) or not self.out.parent.is_dir():
            return
        for left in self.out.parent.glob(f".{glob_escape(self.out.name)}.*-*"):
            if LEFTOVER.fullmatch(left.name) and left.is_dir():
                shutil.rmtree(left, ignore_errors=True)

    def _ensure(self) -> Path:
        if not self._made and is_main():
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir()
            self._made = True
        return self.tmp

    def save_model(self, model: nn.Module) -> None:
        from safetensors.torch import save_file

        if is_main():
            save_file(state_dict_cpu(model), str(self._ensure() / MODEL_FILE))

    def save_weights(self, name: str, state: dict[str, torch.Tensor]) -> None:
        """Write extra weights (e.g. a method's discriminator) as `<name>.safetensors`; weights only, no pickle."""
        from safetensors.torch import save_file

        if not name.replace("-", "").replace("_", "").isalnum() or name == MODEL_FILE.split(".")[0]:
            raise ValueError(f"bad weights file name {name!r}")
        if is_main():
            save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()},
                      str(self._ensure() / f"{name}.safetensors"))

    def write_json(self, name: str, obj: Any) -> None:
        if name == META_FILE:
            self._meta = obj
        elif name == METRICS_FILE:
            self._metrics = obj
        self.write_text(name, dump_json(obj))

    def write_text(self, name: str, text: str) -> None:
        if is_main():
            (self._ensure() / name).write_text(text)

    def subdir(self, name: str) -> Path:
        d = self._ensure() / name
        if is_main():
            d.mkdir(parents=True, exist_ok=True)
        return d

    def commit(self) -> Path:
        """Atomically publish the finished directory (replacing an old one only with --overwrite)."""
        if not is_main():
            barrier()
            return self.out
        self.write_text(LOG_FILE, runlog.render(self._log_start, self._meta, self._metrics,
                                                time.perf_counter() - self._t0))
        runlog.close_tensorboard(self._metrics)
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._made = False
        barrier()
        return self.out

    def abort(self) -> None:
        runlog.close_tensorboard()
        if self._made:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._made = False

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
