"""torchvision's ResNet-18, with its first convolution adapted to the input's channels.

`stem='imagenet'` (default) keeps torchvision's 7x7/2 convolution and max-pool, only changing input
channels; `stem='cifar'` is the 3x3/1 stem without max-pool used for 32x32 images (about 7x the compute).
"""

from __future__ import annotations

import torchvision
from torch import nn

from .registry import register_model


def _resnet(ctor, num_classes: int, input_shape: tuple[int, int, int], stem: str = "imagenet") -> nn.Module:
    net = ctor(weights=None, num_classes=num_classes)
    c = input_shape[0]
    if stem == "cifar":
        net.conv1 = nn.Conv2d(c, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif stem == "imagenet":
        if c != 3:
            net.conv1 = nn.Conv2d(c, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        raise ValueError(f"stem must be 'imagenet' or 'cifar', not {stem!r}")
    return net


@register_model("resnet18")
def resnet18(num_classes: int, input_shape: tuple[int, int, int], stem: str = "imagenet") -> nn.Module:
    """torchvision's ResNet-18 (stem=imagenet, or stem=cifar for a 3x3 stem without max-pool on small images)."""
    return _resnet(torchvision.models.resnet18, num_classes, input_shape, stem)


@register_model("resnet34")
def resnet34(num_classes: int, input_shape: tuple[int, int, int], stem: str = "imagenet") -> nn.Module:
    """torchvision's ResNet-34 (stem=imagenet or stem=cifar, as resnet18)."""
    return _resnet(torchvision.models.resnet34, num_classes, input_shape, stem)
