"""`DataBundle` (a dataset in memory) and `Part` (a labelled subset that methods iterate over)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .transforms import apply_augment, draw_augment, resize_uint8, to_float


@dataclass
class DataBundle:
    """A whole dataset as uint8 tensors in memory (N, C, H, W), with its class names and normalisation.

    Images stay uint8 until a batch is moved to the device: a quarter of the memory of float32, and the
    conversion (and augmentation) runs batched on the device instead of per-sample in PIL.
    """

    spec: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "none"
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def train_part(self, idx: Tensor, augment: str | None = None) -> Part:
        return Part(self.x_train[idx], self.y_train[idx], idx, self.augment if augment is None else augment)

    def test_part(self, mask: Tensor | None = None) -> Part:
        idx = torch.arange(len(self.y_test)) if mask is None else mask.nonzero().flatten()
        return Part(self.x_test[idx], self.y_test[idx], idx, "none")


@dataclass
class Part:
    """A labelled subset: uint8 images, labels, their indices in the source split, and its augmentation."""

    x: Tensor
    y: Tensor
    idx: Tensor
    augment: str = "none"

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, sel: Tensor) -> Part:
        return Part(self.x[sel], self.y[sel], self.idx[sel], self.augment)

    def to(self, device: torch.device | str) -> Part:
        """The same part with its images and labels on `device` (uint8 still): on a GPU, a whole small dataset
        fits once, so batches are sliced there instead of being copied from host memory every step."""
        return Part(self.x.to(device), self.y.to(device), self.idx, self.augment)

    def batches(
        self,
        batch_size: int,
        device: torch.device | str = "cpu",
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool = False,
        drop_last: bool = False,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (float images in [0, 1], labels) on `device`; augmentation batched on the device."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        order = order.to(self.x.device)
        drawn = {}
        if augment and self.augment != "none":  # the epoch's random choices, moved to the device in one copy each
            drawn = {k: v.to(device) for k, v in draw_augment(n, self.augment, self.x.shape[-1], generator).items()}
        for start in range(0, stop, batch_size):
            sel = order[start : start + batch_size]
            x = to_float(self.x[sel].to(device, non_blocking=True))
            if drawn:
                x = apply_augment(x, self.augment, {k: v[start : start + batch_size] for k, v in drawn.items()})
            yield x, self.y[sel].to(device, non_blocking=True)

    def cycle(self, batch_size: int, device: torch.device | str, generator: torch.Generator,
              augment: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """Endless shuffled batches: the shorter of two loaders cycles while the longer defines an epoch."""
        while True:
            yield from self.batches(batch_size, device, shuffle=True, generator=generator, augment=augment)


def make_bundle(spec: str, xtr: Tensor, ytr: Tensor, xte: Tensor, yte: Tensor, classes: list[str],
                augment: str, image_size: int | None) -> DataBundle:
    """A bundle from uint8 NCHW tensors (resized to `image_size` when given), with the per-channel mean and std
    of (up to 20,000 of) its training images, which every model built for it normalises by."""
    if image_size is not None:
        xtr, xte = resize_uint8(xtr, image_size), resize_uint8(xte, image_size)
    xf = xtr[: min(len(xtr), 20000)].float() / 255.0
    mean = tuple(round(v, 4) for v in xf.mean(dim=(0, 2, 3)).tolist())
    std = tuple(round(max(v, 1e-3), 4) for v in xf.std(dim=(0, 2, 3)).tolist())
    return DataBundle(spec, xtr.contiguous(), ytr.long(), xte.contiguous(), yte.long(), classes, mean, std, augment)
