"""The small VGG-style network of I-BAU's CIFAR-10 evaluation: three conv blocks and two dense layers."""

from __future__ import annotations

from torch import nn

from .registry import register_model


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


@register_model("vgg-small")
def vgg_small(num_classes: int, input_shape: tuple[int, int, int], width: int = 32) -> nn.Module:
    c, h, w = input_shape
    feats = _block(c, width) + _block(width, 2 * width) + _block(2 * width, 4 * width)
    return nn.Sequential(*feats, nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(4 * width * 4, 256), nn.ReLU(inplace=True), nn.Dropout(0.3),
                         nn.Linear(256, num_classes))
