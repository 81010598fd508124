"""Dataset registry: every loader returns a `DataBundle` of uint8 tensors.

Spec strings: `digits` (scikit-learn's bundled 8x8 digits, the embedded default), `mnist`, `fashion-mnist`,
`cifar10`, `cifar100`, `svhn`, `gtsrb` (torchvision's loaders, which download when online), and
`imagefolder:PATH`. Offline copies (e.g. Debian's `dataset-fashion-mnist`) are looked up before any download.
"""

from __future__ import annotations

import copy
import gzip
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..registry import Registry
from .bundle import DataBundle, make_bundle

Loader = Callable[[Path, "int | None"], DataBundle]
DATASETS: Registry[Loader] = Registry("dataset")
register_dataset = DATASETS.register

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
OFFLINE_DIRS = {"fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
                "mnist": [Path("/usr/share/datasets/mnist")]}


def default_root() -> Path:
    """Where datasets live unless `--data-root` says otherwise."""
    return Path(os.environ.get("UNLEARNKIT_DATA", Path.home() / ".cache" / "unlearnkit" / "data"))


def _download_error(name: str, root: Path, err: Exception) -> UserError:
    return UserError(f"dataset {name!r} is not under {root} and could not be downloaded ({type(err).__name__}): "
                     f"put its files there or pass --data-root DIR")


@register_dataset("digits")
def load_digits(root: Path, image_size: int | None = None) -> DataBundle:
    """scikit-learn's bundled 8x8 digits (1,797 images): a fixed, stratified 80/20 train/test split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8))[:, None]
    y = torch.from_numpy(d.target.astype(np.int64))
    itr, ite = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=d.target)
    itr, ite = torch.from_numpy(np.sort(itr)), torch.from_numpy(np.sort(ite))
    return make_bundle("digits", x[itr], y[itr], x[ite], y[ite], [str(i) for i in range(10)], "none", image_size)


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for name in (f"{stem}.gz", stem):
            if (d / name).is_file():
                return d / name
    return None


def _load_mnist_like(name: str, tv_name: str, classes: list[str] | None, root: Path,
                     image_size: int | None) -> DataBundle:
    dirs = [root / name, root / tv_name / "raw", root] + OFFLINE_DIRS.get(name, [])
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
    paths = [_find_idx(dirs, s) for s in stems]
    if all(paths):
        arrs = [torch.from_numpy(_read_idx(p).copy()) for p in paths]  # type: ignore[arg-type]
        xtr, ytr, xte, yte = arrs[0][:, None], arrs[1], arrs[2][:, None], arrs[3]
        classes = classes or [str(i) for i in range(10)]
    else:
        import torchvision

        cls = getattr(torchvision.datasets, tv_name)
        try:
            tr, te = cls(str(root), train=True, download=True), cls(str(root), train=False, download=True)
        except Exception as err:  # noqa: BLE001 - offline or unreachable mirror
            raise _download_error(name, root, err) from err
        xtr, ytr, xte, yte = tr.data[:, None], tr.targets, te.data[:, None], te.targets
        classes = list(tr.classes)
    # Fashion-MNIST: flips only. Random crops slow convergence of short CPU budgets and close the gap between
    # training and test confidence that membership inference has to measure.
    return make_bundle(name, xtr, ytr, xte, yte, classes, "crop" if name == "mnist" else "flip", image_size)


@register_dataset("mnist")
def load_mnist(root: Path, image_size: int | None = None) -> DataBundle:
    """MNIST handwritten digits (60,000 / 10,000 grey 28x28): torchvision's files, downloaded when online."""
    return _load_mnist_like("mnist", "MNIST", None, root, image_size)


@register_dataset("fashion-mnist")
def load_fashion_mnist(root: Path, image_size: int | None = None) -> DataBundle:
    """Fashion-MNIST (60,000 / 10,000 grey 28x28, 10 clothing classes): torchvision's files or Debian's copy."""
    return _load_mnist_like("fashion-mnist", "FashionMNIST", FASHION_CLASSES, root, image_size)


def _tv_split(name: str, root: Path, train: bool) -> object:
    import torchvision

    try:
        if name == "svhn":
            return torchvision.datasets.SVHN(str(root), split="train" if train else "test", download=True)
        if name == "gtsrb":
            return torchvision.datasets.GTSRB(str(root), split="train" if train else "test", download=True)
        cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
        return cls(str(root), train=train, download=True)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001
        raise _download_error(name, root, err) from err


def _nhwc(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()


# torchvision's folder of the official files, and the label order of each CIFAR (the official `batches.meta`)
CIFAR_FILES = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _load_cifar(name: str, root: Path, image_size: int | None) -> DataBundle:
    """torchvision's official files when they are under `root`; else an image-folder copy at
    `root/<name>/{train,test}/<class>/` (e.g. the JPEG copy of CIFAR-10); else a download (online users)."""
    copy = root / name
    if not (root / CIFAR_FILES[name]).is_dir() and (copy / "train").is_dir() and (copy / "test").is_dir():
        return _cifar_from_folders(name, copy, image_size)
    try:
        tr, te = _tv_split(name, root, True), _tv_split(name, root, False)
    except UserError as err:
        raise UserError(f"dataset {name!r} is neither under {root / CIFAR_FILES[name]} (torchvision's files) nor "
                        f"under {copy}/{{train,test}}/<class>/ (an image-folder copy), and could not be downloaded: "
                        f"put either there or pass --data-root DIR") from err
    bundle = make_bundle(name, _nhwc(tr.data), torch.tensor(tr.targets), _nhwc(te.data), torch.tensor(te.targets),
                     list(tr.classes), "crop-flip", image_size)
    bundle.extra["source"] = f"torchvision files under {root / CIFAR_FILES[name]}"
    return bundle


def _cifar_from_folders(name: str, copy: Path, image_size: int | None) -> DataBundle:
    """An image-folder copy of CIFAR, with CIFAR's own label order (CIFAR-10: its class names; otherwise the
    folders' sorted names), so that a run trained on the copy and one on the official files agree on labels."""
    from .decoded import cached_imagefolder

    folder = cached_imagefolder(copy, image_size or 32)
    classes = CIFAR10_CLASSES if name == "cifar10" else folder.classes
    if sorted(folder.classes) != sorted(classes):
        raise UserError(f"the folders under {copy / 'train'} are not CIFAR-10's classes ({', '.join(classes)}): "
                        f"unpack an image-folder copy of {name} there")
    order = torch.tensor([classes.index(c) for c in folder.classes])
    bundle = make_bundle(name, folder.x_train, order[folder.y_train], folder.x_test, order[folder.y_test],
                         list(classes), "crop-flip", None)
    bundle.extra["source"] = f"image-folder copy under {copy}"
    return bundle


@register_dataset("cifar10")
def load_cifar10(root: Path, image_size: int | None = None) -> DataBundle:
    """CIFAR-10 (50,000 / 10,000 colour 32x32): torchvision's files, else an image-folder copy under the data root."""
    return _load_cifar("cifar10", root, image_size)


@register_dataset("cifar100")
def load_cifar100(root: Path, image_size: int | None = None) -> DataBundle:
    """CIFAR-100 (50,000 / 10,000 colour 32x32, 100 classes): torchvision's files, downloaded when online."""
    return _load_cifar("cifar100", root, image_size)


@register_dataset("svhn")
def load_svhn(root: Path, image_size: int | None = None) -> DataBundle:
    """SVHN house numbers (73,257 / 26,032 colour 32x32, digits 0-9): torchvision's files, downloaded when online."""
    tr, te = _tv_split("svhn", root, True), _tv_split("svhn", root, False)
    return make_bundle("svhn", torch.from_numpy(tr.data), torch.from_numpy(tr.labels), torch.from_numpy(te.data),
                   torch.from_numpy(te.labels), [str(i) for i in range(10)], "crop", image_size)


def _pil_split(ds: object, size: int) -> tuple[Tensor, Tensor]:
    from .imagefolder import pil_to_uint8

    xs, ys = [], []
    for img, y in ds:  # type: ignore[attr-defined]
        xs.append(pil_to_uint8(img, size))
        ys.append(int(y))
    return torch.stack(xs), torch.tensor(ys)


@register_dataset("gtsrb")
def load_gtsrb(root: Path, image_size: int | None = None) -> DataBundle:
    """GTSRB traffic signs (43 classes, colour), resized to `image_size` (default 32): its images vary in size."""
    size = image_size or 32
    xtr, ytr = _pil_split(_tv_split("gtsrb", root, True), size)
    xte, yte = _pil_split(_tv_split("gtsrb", root, False), size)
    return make_bundle("gtsrb", xtr, ytr, xte, yte, [str(i) for i in range(43)], "crop", None)


_LOADED: dict[tuple, DataBundle] = {}  # bundles already decoded in this process (a benchmark reloads the same data)


def load_dataset(spec: str, root: str | Path | None = None, image_size: int | None = None) -> DataBundle:
    """Build the `DataBundle` for a dataset spec (`digits`, `fashion-mnist`, `imagefolder:PATH`, ...).

    Named datasets are kept for the rest of the process (at most two): decoding the 60,000 JPEGs of the
    CIFAR-10 copy takes about 20 s, and a benchmark loads the same data for every row. Each call gets its own
    deep copy (a tenth of a second for CIFAR-10), so nothing one caller changes in place can reach the next. A
    user's `imagefolder:` is read afresh each time, since its files may change between calls.
    """
    if image_size is not None and not 4 <= image_size <= 1024:
        raise UserError(f"--image-size {image_size} is out of range: use a side between 4 and 1024 pixels")
    if spec.startswith("imagefolder:"):
        return _load(spec, root, image_size)
    key = (spec, str(Path(root).expanduser().resolve()) if root else str(default_root()), image_size)
    if key not in _LOADED:
        bundle = _load(spec, root, image_size)
        while len(_LOADED) >= 2:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = bundle
    return copy.deepcopy(_LOADED[key])


def _load(spec: str, root: str | Path | None, image_size: int | None) -> DataBundle:
    if spec.startswith("imagefolder:"):
        from .imagefolder import load_imagefolder

        path = spec.split(":", 1)[1].strip()
        if not path:
            raise UserError("imagefolder: needs a path: write imagefolder:PATH with a folder per class")
        return load_imagefolder(Path(path).expanduser(), image_size)
    loader = DATASETS.get(spec)
    return loader(Path(root).expanduser() if root else default_root(), image_size)
