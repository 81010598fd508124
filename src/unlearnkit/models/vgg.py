"""The small VGG of I-BAU's CIFAR-10 evaluation (`VGG('small_VGG16')` in the official code and notebook).

Three blocks of two 3x3 convolutions (32, 64, 128 channels; BatchNorm and ELU after each), each block
closed by 2x2 max-pooling and dropout (0.3, 0.4, 0.4), then one linear layer on the flattened features
(128 * 4 * 4 = 2048 inputs on 32x32 images; the size follows the input here).
"""

from __future__ import annotations

from torch import nn

from .registry import register_model

DROPOUT = (0.3, 0.4, 0.4)


def _block(cin: int, cout: int, drop: float) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ELU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ELU(inplace=True),
            nn.MaxPool2d(2, 2), nn.Dropout(drop)]


@register_model("vgg-small")
def vgg_small(num_classes: int, input_shape: tuple[int, int, int], width: int = 32) -> nn.Module:
    """The small VGG of I-BAU's CIFAR-10 evaluation (six 3x3 convolutions, width=32): trainable on a CPU."""
    c, h, w = input_shape
    if min(h, w) < 8:
        raise ValueError(f"vgg-small pools three times and needs images of at least 8x8, not {h}x{w}")
    widths = (width, 2 * width, 4 * width)
    feats = _block(c, widths[0], DROPOUT[0]) + _block(widths[0], widths[1], DROPOUT[1]) + \
        _block(widths[1], widths[2], DROPOUT[2])
    return nn.Sequential(*feats, nn.Flatten(), nn.Linear(widths[2] * (h // 8) * (w // 8), num_classes))
