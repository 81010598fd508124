"""The decoded pixels of a fixed image-folder copy (e.g. CIFAR-10's JPEG copy), kept beside it.

Decoding CIFAR-10's 60,000 JPEGs costs about 30 s per process, bound by Python's per-image overhead (more
threads do not help), and a benchmark starts many processes on the same copy. The first process writes the
decoded uint8 tensors to `<copy>/.unlearnkit-decoded-<size>.safetensors`; later ones read them in about a second.
The cache is only for the dataset copies under the data root (`--data cifar10`), not for a user's
`imagefolder:PATH`, which is read afresh each time because its files may change between calls.

The file records a fingerprint of the copy (each class folder's name, number of entries and modification time);
a copy whose folders changed is decoded again. A cache that cannot be written (a read-only data root) or read
back is skipped: it only saves time.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..engine.checkpoint import CorruptCheckpoint, load_state, save_state
from .bundle import DataBundle
from .imagefolder import load_imagefolder

FIELDS = ("spec", "x_train", "y_train", "x_test", "y_test", "classes", "mean", "std", "augment")


def fingerprint(copy: Path) -> list[list[object]]:
    """Each split's class folders: [relative name, number of entries, mtime in ns]. Adding, removing or renaming
    an image changes its folder's entry count or mtime."""
    rows: list[list[object]] = []
    for split in ("train", "test"):
        for d in sorted(p for p in (copy / split).iterdir() if p.is_dir()):
            with os.scandir(d) as it:
                n = sum(1 for _ in it)
            rows.append([f"{split}/{d.name}", n, d.stat().st_mtime_ns])
    return rows


def _cache_path(copy: Path, size: int) -> Path:
    return copy / f".unlearnkit-decoded-{size}.safetensors"


def _read(path: Path, expect: list[list[object]]) -> DataBundle | None:
    try:
        state = load_state(path)  # safetensors + JSON, as the resume checkpoints are stored
    except CorruptCheckpoint:
        return None  # any defect of a cache file means: decode again
    if state.get("fingerprint") != expect:
        return None
    return DataBundle(*(state[k] for k in FIELDS))


def _write(path: Path, bundle: DataBundle, expect: list[list[object]]) -> None:
    try:
        save_state(path, {"fingerprint": expect, **{k: getattr(bundle, k) for k in FIELDS}})
    except OSError:
        pass  # a read-only data root: the next process decodes again


def cached_imagefolder(copy: Path, size: int) -> DataBundle:
    """`load_imagefolder(copy, size)` for a copy with train/ and test/, read from its decoded cache when that
    matches the copy's folders; otherwise decoded, and the cache written for the next process."""
    expect = fingerprint(copy)
    path = _cache_path(copy, size)
    if path.is_file() and (bundle := _read(path, expect)) is not None:
        return bundle
    bundle = load_imagefolder(copy, size)
    _write(path, bundle, expect)
    return bundle
