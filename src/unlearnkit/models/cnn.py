"""A small CNN: two conv blocks and a dense head. Fast on CPU; the workhorse of tests and the demo."""

from __future__ import annotations

from torch import nn

from .registry import register_model


@register_model("cnn-small")
def cnn_small(num_classes: int, input_shape: tuple[int, int, int], width: int = 32) -> nn.Module:
    """Three 3x3 convolutions, one max-pool, a two-layer head (width=32): fast on a CPU, for digits and tests."""
    c = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(2 * width * 4, 128), nn.ReLU(inplace=True),
        nn.Linear(128, num_classes),
    )
