"""Suite `folders`: class forgetting on a user's own photos, as image folders built from the CIFAR-10 copy.

A user brings an image folder (a folder per class), often small, in colour, resized to 32, 64 or 128 px, with
a weaker original model than the field's benchmarks have. Each cell of issue 21's matrix is one such folder,
built once from CIFAR-10's real photos (the image-folder copy under the data root, see `--data cifar10`) with a
fixed seed: `classes` of CIFAR-10's ten (a seeded choice, `subset` picks another), `per_class` training and
`test_per_class` test images of each, read at `size` px. The original trains with the README's image-folder
recipe (SGD lr 0.01, 40 epochs, batch 128, crop + flip); the first `forget` classes of the folder are
forgotten; every row is compared with retraining on the same folder.

Settings (`--set KEY=VALUE`, besides the common arch=, epochs=, methods=, cache=): `classes=6`, `per_class=500`,
`test_per_class=200`, `size=32`, `forget=1`, `subset=0`. Targets (issue 21): forgotten-class test accuracy
<= 1%, retained-class test accuracy within 1.5 points of the retrained model's, MIA-efficacy within 5 points,
speed-up >= 10.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..data.datasets import CIFAR10_CLASSES, default_root
from ..errors import UserError
from . import register_suite
from .adversarial import GAP_COLUMNS
from .runner import Row, Scenario, Suite, default_cache, key, made_once

DEFAULTS: dict[str, int] = {"classes": 6, "per_class": 500, "test_per_class": 200, "size": 32, "forget": 1,
                            "subset": 0}
TRAIN: dict[str, Any] = {"epochs": 40, "batch_size": 128, "lr": 0.01}
METHODS = ("adversarial", "random-label", "salun", "scrub")

COLUMNS = GAP_COLUMNS + [key("seconds"), key("speedup")]


def cell_name(cell: dict[str, int]) -> str:
    """e.g. c6-n500-t200-s32-f1-x0: what the cell's folder and cached models are called."""
    return "c{classes}-n{per_class}-t{test_per_class}-s{size}-f{forget}-x{subset}".format(**cell)


def parse_cell(settings: dict[str, Any]) -> dict[str, int]:
    """The cell's numbers from `settings` (popped), each checked, with one-line errors naming the fix."""
    cell = {}
    for k, default in DEFAULTS.items():
        raw = settings.pop(k, default)
        try:
            cell[k] = int(raw)
        except (TypeError, ValueError) as err:
            raise UserError(f"suite 'folders': {k}={raw} is not a whole number: e.g. {k}={default}") from err
    if not 2 <= cell["classes"] <= len(CIFAR10_CLASSES):
        raise UserError(f"suite 'folders': classes={cell['classes']} must be 2..10 (CIFAR-10 has 10)")
    if not 1 <= cell["forget"] < cell["classes"]:
        raise UserError(f"suite 'folders': forget={cell['forget']} must be 1..classes-1")
    if not (1 <= cell["per_class"] <= 5000 and 1 <= cell["test_per_class"] <= 1000):
        raise UserError("suite 'folders': per_class must be 1..5000 and test_per_class 1..1000 (CIFAR-10's sizes)")
    if not 8 <= cell["size"] <= 512 or cell["subset"] < 0:
        raise UserError("suite 'folders': size must be 8..512 px and subset >= 0")
    return cell


def pick_classes(cell: dict[str, int]) -> list[str]:
    """`classes` of CIFAR-10's ten: a seeded choice (seed `subset`), in CIFAR-10's order."""
    order = torch.randperm(len(CIFAR10_CLASSES), generator=torch.Generator().manual_seed(cell["subset"]))
    chosen = sorted(order[: cell["classes"]].tolist())
    return [CIFAR10_CLASSES[i] for i in chosen]


def build_folder(cell: dict[str, int], source: Path, dest: Path) -> Path:
    """Make the cell's image folder `dest/{train,test}/<class>/` from the copy at `source` (hard links where the
    file system allows, else copies), once: it is built beside and renamed into place when complete.

    Several processes can ask for the same cell at once (benchmarks/gpu_folders_cifar10.sh runs one per method):
    the first builds it under the cache's lock, the others wait and then find it complete."""
    if (dest / ".complete").is_file():
        return dest
    if not (source / "train").is_dir():
        raise UserError(f"suite 'folders' builds its image folders from CIFAR-10's image-folder copy, which is not "
                        f"under {source}: unpack it there (see ../shared/data/README.md) or set UNLEARNKIT_DATA")
    with made_once(dest):
        if not (dest / ".complete").is_file():
            _build(cell, source, dest)
    return dest


def _build(cell: dict[str, int], source: Path, dest: Path) -> None:
    tmp = dest.parent / f".{dest.name}.building"
    shutil.rmtree(tmp, ignore_errors=True)
    gen = torch.Generator().manual_seed(1000 + cell["subset"])
    for split, n in (("train", cell["per_class"]), ("test", cell["test_per_class"])):
        for name in pick_classes(cell):
            files = sorted((source / split / name).iterdir())
            if len(files) < n:
                raise UserError(f"{source / split / name} has {len(files)} images, fewer than the {n} asked for")
            out = tmp / split / name
            out.mkdir(parents=True)
            for i in torch.randperm(len(files), generator=gen)[:n].tolist():
                _link_or_copy(files[i], out / files[i].name)
    (tmp / ".complete").write_text(cell_name(cell) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


@register_suite("folders")
def folders_suite(settings: dict[str, Any]) -> Suite:
    s = dict(settings)
    cell = parse_cell(s)
    if s:
        raise UserError(f"suite 'folders' has no setting {sorted(s)[0]!r}: use classes=, per_class=, "
                        f"test_per_class=, size=, forget=, subset= or the common arch=, epochs=, methods=, cache=")
    name = cell_name(cell)
    folder = build_folder(cell, default_root() / "cifar10", default_cache() / "folders" / name)
    classes = pick_classes(cell)
    forget = ",".join(classes[: cell["forget"]])
    return Suite("folders", f"imagefolder:{folder}", "resnet18", train={**TRAIN, "image_size": cell["size"]},
                 scenarios=[Scenario(f"{name} forget {forget}", {"forget_class": forget})],
                 rows=[Row(m) for m in METHODS], columns=list(COLUMNS),
                 notes=f"image folder {name}: CIFAR-10 classes {', '.join(classes)}; {cell['per_class']} training "
                       f"and {cell['test_per_class']} test images per class at {cell['size']} px; forgetting "
                       f"{forget}. Targets: forget_test_acc <= 1; gap TA <= 1.5; gap MIA <= 5; speed-up >= 10.")
