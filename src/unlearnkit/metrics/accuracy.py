"""Accuracies in percent (0-100), as in the literature."""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Top-1 accuracy in percent; NaN-free (an empty set raises, so absent keys stay absent)."""
    if len(y) == 0:
        raise ValueError("accuracy of an empty set")
    return float((logits.argmax(1) == y).float().mean() * 100.0)


def per_class_accuracy(logits: Tensor, y: Tensor, num_classes: int) -> list[float | None]:
    """Accuracy of each class in percent (None for a class with no samples)."""
    pred = logits.argmax(1)
    out: list[float | None] = []
    for c in range(num_classes):
        m = y == c
        out.append(float((pred[m] == c).float().mean() * 100.0) if m.any() else None)
    return out


def confusion_matrix(logits: Tensor, y: Tensor, num_classes: int) -> list[list[int]]:
    """Counts[true][pred]."""
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    cm.index_put_((y, logits.argmax(1)), torch.ones(len(y), dtype=torch.long), accumulate=True)
    return cm.tolist()
