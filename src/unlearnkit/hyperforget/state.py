"""Training checkpoints as safetensors (never pickle): tensors, optimizer state and RNG state in one file.

Each save writes a temporary file and renames it over the old one, so an interruption at any moment leaves
either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor

INFO_KEY = "info"


def save_tensors(path: Path, tensors: dict[str, Tensor], info: dict | None = None) -> None:
    """Atomically write tensors (plus a JSON `info` in the file's metadata)."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    meta = {INFO_KEY: json.dumps(info or {})}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_tensors(path: Path) -> tuple[dict[str, Tensor], dict]:
    """Read what `save_tensors` wrote: (tensors, info)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        info = json.loads((f.metadata() or {}).get(INFO_KEY, "{}"))
        return {k: f.get_tensor(k) for k in f.keys()}, info


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str = "opt.") -> tuple[dict[str, Tensor], dict]:
    """Flatten an optimizer's state into tensors plus a JSON-able description of its param groups."""
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            tensors[f"{prefix}{pid}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], info: dict,
                   prefix: str = "opt.") -> None:
    """Restore the state written by `optimizer_tensors`."""
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix):
            pid, name = key[len(prefix):].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})
