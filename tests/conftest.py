"""Shared fixtures: tiny models on digits, made by the tests (seconds on a CPU)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("UNLEARNKIT_DEVICE", "cpu")


def tree_hash(path: Path) -> str:
    """Hash of every file's name and bytes under `path` (to prove a directory was not modified)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(autouse=True)
def _progress_as_by_default():
    """Every test starts with progress lines on (the process default): a module fixture that made its runs quietly
    must not change what a later module's test sees on stderr (test_adversarial's "stopped early" failed when it
    ran after test_reliability)."""
    from unlearnkit.engine.progress import set_quiet

    set_quiet(False)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A small CNN trained on digits (the embedded default), shared by the whole session. Read-only!"""
    from unlearnkit import train

    out = tmp_path_factory.mktemp("runs") / "digits-cnn"
    return train("digits", "cnn-small", out, epochs=8, batch_size=64, lr=0.05, seed=0, arch_kwargs={"width": 16})


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory) -> Path:
    """A tiny MLP on digits: the cheapest model with a real forgetting problem. Read-only!"""
    from unlearnkit import train

    out = tmp_path_factory.mktemp("runs") / "digits-mlp"
    return train("digits", "mlp", out, epochs=10, batch_size=64, lr=0.05, seed=0, arch_kwargs={"hidden": 64})


def make_imagefolder(root: Path, classes: dict[str, int], size: int = 12, seed: int = 0) -> Path:
    """Write a tiny ImageFolder of PNGs: each class a distinct colour blob with noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for ci, (name, n) in enumerate(classes.items()):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        base = np.zeros((size, size, 3), dtype=np.float32)
        base[..., ci % 3] = 200
        base[(ci * 3) % size: (ci * 3) % size + 4, :, :] = 255
        for i in range(n):
            img = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def cnn_runs(tmp_path_factory) -> dict[str, Path]:
    """`cnn-small` on digits, clean and BadNets-poisoned: the convolutions and BatchNorm every defence needs, trained
    well enough to classify (no guard ends a defence early on a model near chance). Read-only!"""
    from unlearnkit import train
    from unlearnkit.engine.progress import set_quiet

    set_quiet(True)
    root = tmp_path_factory.mktemp("cnn-runs")
    kw = {"epochs": 6, "batch_size": 64, "lr": 0.05}
    return {"clean": train("digits", "cnn-small", root / "clean", **kw),
            "poisoned": train("digits", "cnn-small", root / "poisoned", poison="badnets", **kw)}
