"""Reading users' checkpoints safely: weights only, never code.

A `.pt`/`.pth` file is a pickle, and unpickling can run arbitrary code. Users bring checkpoints they got from
someone else, so `.safetensors` is read with safetensors (no code at all) and pickles only with
`torch.load(weights_only=True)`, whose restricted unpickler admits tensors and plain containers and refuses
anything else (a `__reduce__` that calls `os.system`, a whole pickled `nn.Module`) before it runs.
(The resume machinery, which writes and reads the toolkit's own checkpoints, is `engine/checkpoint.py`.)
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UserError

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # where training scripts nest the weights
PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


# --------------------------------------------------------------------------- safe reading

def _refused(path: Path, err: Exception) -> UserError:
    found = re.search(r"Unsupported (global|operand)[^\n.]*", str(err))
    why = found.group(0).strip() if found else type(err).__name__
    return UserError(f"refusing to load {path}: it holds pickled objects other than tensors ({why}), which could "
                     f"run code; save only weights: torch.save(model.state_dict(), ...) or safetensors")


def _torch_load(path: Path) -> Any:
    version = tuple(int(v) for v in re.findall(r"\d+", torch.__version__)[:2])
    if version < (2, 6):  # weights_only had code-execution holes before 2.6 (CVE-2025-32434)
        raise UserError(f"cannot load {path} safely with torch {torch.__version__}: upgrade to torch>=2.6 or "
                        f"convert the checkpoint to .safetensors")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refused(path, err) from err
    except Exception as err:  # noqa: BLE001 - any defect of a user's file is bad input
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise UserError(f"cannot read checkpoint {path} ({type(err).__name__}: {first}): pass a file written "
                        f"by torch.save(model.state_dict(), ...) or safetensors") from err


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state_dict from `.safetensors` (safetensors) or `.pt`/`.pth`/`.bin` (`weights_only` torch.load).

    Accepts the usual wrappings of training scripts ({'state_dict': ...}, {'model': ...}) and strips the
    `module.` / `_orig_mod.` prefixes of DistributedDataParallel and torch.compile.

    Raises:
        UserError: the file is missing, unreadable, not a state_dict, or holds pickled code.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"checkpoint {p} does not exist: pass the path of a .safetensors, .pt or .pth file")
    if p.suffix not in CHECKPOINT_SUFFIXES:
        raise UserError(f"checkpoint {p} is not {', '.join(CHECKPOINT_SUFFIXES)}: save the state_dict with "
                        f"torch.save or safetensors")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"cannot read {p} ({err}): the file is corrupt or truncated") from err
    else:
        obj = _torch_load(p)
    for key in WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, Tensor)
                                                       for k, v in obj.items()):
        raise UserError(f"{p} holds a {type(obj).__name__}, not a state_dict of tensors: save "
                        f"model.state_dict() instead")
    out = {}
    for k, v in obj.items():
        for pre in PREFIXES:
            k = k.removeprefix(pre)
        out[k] = v
    return out


def load_into(model: nn.Module, state: dict[str, Tensor], source: str | Path) -> bool:
    """Load a user's state_dict into a built unlearnkit model (a `Classifier`: `net.*` + `mean`/`std`).

    A bare network's keys (what a training script saves) are matched under `net.` (or `net.net.` for the
    grey-image torchvision wrapper); missing `num_batches_tracked` counters (older torch) are filled in.
    Returns True when the checkpoint carried its own `mean`/`std` (a state_dict saved by unlearnkit).

    Raises:
        UserError: the keys or shapes do not fit the architecture, or a weight is NaN/infinite.
    """
    target = model.state_dict()
    for prefix in ("", "net.", "net.net."):
        mapped = {prefix + k: v for k, v in state.items()}
        for k, v in target.items():
            if k.endswith("num_batches_tracked") or (prefix and k in ("mean", "std")):
                mapped.setdefault(k, v)
        if set(mapped) == set(target):
            break
    else:
        missing = sorted(set(target) - {p + k for p in ("", "net.", "net.net.") for k in state})
        raise UserError(f"{source} does not fit this architecture ({len(missing)} weights missing, e.g. "
                        f"{missing[0] if missing else next(iter(state))!r}): pass the --arch (and --arch-kwargs) "
                        f"the model was trained with")
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        detail = [ln.strip() for ln in str(err).splitlines() if "size mismatch" in ln or "Missing" in ln]
        raise UserError(f"{source} does not fit this architecture ({(detail or [str(err)])[0][:200]}): pass the "
                        f"--arch, --arch-kwargs and --data the model was trained with") from err
    if any(t.is_floating_point() and not torch.isfinite(t).all() for t in mapped.values()):
        raise UserError(f"{source} contains NaN or infinite weights: export a checkpoint from before training diverged")
    return prefix == ""


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file (identifies an input run in run.json and in meta.json)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
