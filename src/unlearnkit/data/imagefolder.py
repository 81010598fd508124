"""`imagefolder:PATH`: a folder per class, optionally inside `train/` and `test/` subfolders."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .bundle import DataBundle, make_bundle

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
DEFAULT_SIZE = 64


def pil_to_uint8(img: object, size: int) -> Tensor:
    """A PIL image -> uint8 (3, size, size) tensor."""
    from PIL import Image

    img = img.convert("RGB").resize((size, size), Image.BILINEAR)  # type: ignore[attr-defined]
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def read_image(path: Path, size: int) -> Tensor:
    """Read one image file, or raise a `UserError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return pil_to_uint8(img, size)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path} ({err.__class__.__name__}): remove or replace the file") from err


def _read_images(paths: list[Path], size: int) -> list[Tensor]:
    return [read_image(p, size) for p in paths]


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _load_split(root: Path, classes: list[str], size: int) -> tuple[Tensor, Tensor]:
    """Every image under root/<class>/, decoded by a pool of threads (PIL releases the GIL while it decodes, so
    CIFAR-10's 60,000 JPEGs load in a fraction of the time one thread takes on a many-core machine); the order,
    and so the tensors, are those of the sorted file list whatever the pool's size."""
    files, ys = [], []
    for label, name in enumerate(classes):
        d = root / name
        found = _files(d) if d.is_dir() else []
        files += found
        ys += [label] * len(found)
    if not files:
        raise UserError(f"no images found under {root}: put one folder of images per class there")
    workers = max(1, min(16, os.cpu_count() or 1))
    chunks = [files[i : i + 256] for i in range(0, len(files), 256)]  # one task per image costs more than it decodes
    with ThreadPoolExecutor(workers) as pool:
        xs = [x for chunk in pool.map(partial(_read_images, size=size), chunks) for x in chunk]
    return torch.stack(xs), torch.tensor(ys)


def load_imagefolder(root: Path, image_size: int | None = None) -> DataBundle:
    """Load a class-per-folder tree into memory; without `train/`+`test/`, a seeded stratified 80/20 split."""
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist: pass imagefolder:PATH with a folder per class")
    size = image_size or DEFAULT_SIZE
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = [p.name for p in _class_dirs(root / "train")]
        xtr, ytr = _load_split(root / "train", classes, size)
        xte, yte = _load_split(root / "test", classes, size)
    else:
        classes = [p.name for p in _class_dirs(root)]
        if len(classes) < 2:
            raise UserError(f"image folder {root} has {len(classes)} class folder(s): it needs at least 2")
        x, y = _load_split(root, classes, size)
        gen = torch.Generator().manual_seed(0)
        test_mask = torch.zeros(len(y), dtype=torch.bool)
        for c in range(len(classes)):
            idx = (y == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=gen)]
            test_mask[idx[: max(1, len(idx) // 5) if len(idx) > 1 else 0]] = True
        xtr, ytr, xte, yte = x[~test_mask], y[~test_mask], x[test_mask], y[test_mask]
    return make_bundle(f"imagefolder:{root.resolve()}", xtr, ytr, xte, yte, classes, "crop-flip", None)
