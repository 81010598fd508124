"""`--data cifar10` offline: torchvision's files first, else an image-folder copy under the data root, else a
download; a missing copy is a one-line error naming both places. Tiny fake copies, made here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unlearnkit.data import datasets
from unlearnkit.data.datasets import CIFAR10_CLASSES, load_dataset
from unlearnkit.errors import UserError

from .conftest import make_imagefolder


def _cifar_copy(root: Path, per_class: int = 2, order: list[str] | None = None) -> Path:
    names = order or CIFAR10_CLASSES
    for split, n in (("train", per_class), ("test", 1)):
        make_imagefolder(root / "cifar10" / split, {c: n for c in names}, size=32)
    return root


def test_cifar10_reads_an_image_folder_copy_with_cifar_label_order(tmp_path):
    root = _cifar_copy(tmp_path / "data", per_class=3)
    b = load_dataset("cifar10", root)
    assert b.spec == "cifar10" and b.classes == CIFAR10_CLASSES
    assert b.x_train.shape == (30, 3, 32, 32) and b.x_test.shape == (10, 3, 32, 32)
    assert b.x_train.dtype == torch.uint8 and b.augment == "crop-flip"
    assert torch.equal(torch.bincount(b.y_train), torch.full((10,), 3))
    assert "image-folder copy" in b.extra["source"]
    # the label of an image is its folder's CIFAR-10 index, e.g. 'ship' = 8
    ship = load_dataset(f"imagefolder:{root / 'cifar10'}", None, 32)
    assert torch.equal(b.x_train[b.y_train == 8], ship.x_train[ship.y_train == CIFAR10_CLASSES.index("ship")])


def test_cifar10_copy_with_other_classes_is_refused(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "test"):
        make_imagefolder(root / "cifar10" / split, {"cat": 1, "dog": 1}, size=32)
    with pytest.raises(UserError, match="not CIFAR-10's classes"):
        load_dataset("cifar10", root)


def test_missing_cifar10_names_both_places(tmp_path, monkeypatch):
    def offline(name, root, train):
        raise datasets._download_error(name, root, OSError("no network"))

    monkeypatch.setattr(datasets, "_tv_split", offline)
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", tmp_path / "empty")
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "cifar10/{train,test}/<class>/" in msg and "\n" not in msg


def test_named_datasets_are_decoded_once_per_process(tmp_path, monkeypatch):
    root = _cifar_copy(tmp_path / "data")
    first = load_dataset("cifar10", root)
    monkeypatch.setattr(datasets, "_cifar_from_folders", lambda *a: pytest.fail("decoded twice"))
    again = load_dataset("cifar10", root)
    assert torch.equal(again.x_train, first.x_train) and again.x_train is not first.x_train


def test_training_precision_is_recorded_and_validated(tmp_path):
    from unlearnkit.pipeline import train

    out = train("digits", "cnn-small", tmp_path / "r", epochs=1, precision="fp32")
    assert '"precision": "fp32"' in (out / "meta.json").read_text()
    with pytest.raises(UserError, match="--precision"):
        train("digits", "cnn-small", tmp_path / "bad", epochs=1, precision="fp8")


def test_a_cached_dataset_cannot_be_changed_by_a_caller():
    """A caller that stamps triggers into its bundle in place (as a test fixture does) must not poison the next
    caller's copy of the same dataset."""
    first = load_dataset("digits")
    pristine = first.x_train[:5].clone(), first.y_train[:5].clone()
    first.x_train[:5], first.y_train[:5] = 255, 0
    first.classes.append("extra")
    again = load_dataset("digits")
    assert torch.equal(again.x_train[:5], pristine[0]) and torch.equal(again.y_train[:5], pristine[1])
    assert len(again.classes) == 10


def test_a_deletion_request_reaching_into_the_held_out_split_uses_those_samples_nowhere():
    """Indices the model never trained on (held out) are not refused: nothing is unlearned for them, and they
    leave the held-out split, so no clean set, guard or membership attack uses them either."""
    from unlearnkit.data.splits import ForgetSpec, make_split, val_split

    y = torch.arange(200) % 4
    _, val = val_split(y, 0.1, 0)
    request = [int(val[0]), int(val[1]), 5, 7] if 5 not in val and 7 not in val else [int(val[0]), 199]
    s = make_split(y, 0.1, 0, ForgetSpec("indices", indices=request))
    assert not set(request) & set(s.val_idx.tolist())
    assert set(s.forget_idx.tolist()) == set(request) - set(val.tolist())
    assert len(s.val_idx) == len(val) - len(set(request) & set(val.tolist()))
    assert not set(request) & set(s.retain_idx.tolist())


def test_an_image_folder_with_symlink_loops_loads_each_real_image_once(tmp_path):
    """Issue 19: a symlink loop (a class folder linking to its parent) must not hang the scan or count images
    twice; a link to another class's folder must not relabel that class's images."""
    folder = make_imagefolder(tmp_path / "photos", {"cat": 6, "dog": 6}, size=8)
    (folder / "cat" / "loop").symlink_to("..", target_is_directory=True)
    (folder / "cat" / "dogs").symlink_to(folder / "dog", target_is_directory=True)
    b = load_dataset(f"imagefolder:{folder}", image_size=8)
    assert b.classes == ["cat", "dog"]
    assert len(b.y_train) + len(b.y_test) == 12
    assert int((torch.cat([b.y_train, b.y_test]) == 0).sum()) == 6


def test_a_cifar_copy_is_decoded_once_across_processes(tmp_path, monkeypatch):
    """The decoded pixels are kept beside the copy; a later process reads them instead of the JPEGs, and a copy
    whose folders changed is decoded again."""
    from unlearnkit.data import decoded

    copy = _cifar_copy(tmp_path / "data") / "cifar10"
    first = decoded.cached_imagefolder(copy, 32)
    assert list(copy.glob(".unlearnkit-decoded-32.safetensors"))
    monkeypatch.setattr(decoded, "load_imagefolder", lambda *a: pytest.fail("decoded again"))
    again = decoded.cached_imagefolder(copy, 32)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(again, k), getattr(first, k))
    assert (again.classes, again.mean, again.std, again.augment) == (first.classes, first.mean, first.std,
                                                                      first.augment)
    monkeypatch.undo()
    from PIL import Image

    Image.new("RGB", (32, 32), (9, 9, 9)).save(copy / "train" / "ship" / "added.png")  # one more image
    grown = decoded.cached_imagefolder(copy, 32)
    assert len(grown.y_train) == len(first.y_train) + 1


def test_a_corrupt_decoded_cache_is_decoded_again(tmp_path):
    from unlearnkit.data import decoded

    copy = _cifar_copy(tmp_path / "data") / "cifar10"
    first = decoded.cached_imagefolder(copy, 32)
    (copy / ".unlearnkit-decoded-32.safetensors").write_bytes(b"not a cache")
    assert torch.equal(decoded.cached_imagefolder(copy, 32).x_train, first.x_train)
