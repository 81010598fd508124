"""A multilayer perceptron over flattened pixels (G.pt's MNIST target net is an MLP too)."""

from __future__ import annotations

import math

from torch import nn

from .registry import register_model


@register_model("mlp")
def mlp(num_classes: int, input_shape: tuple[int, int, int], hidden: int = 256, depth: int = 2) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    d = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
        d = hidden
    layers.append(nn.Linear(d, num_classes))
    return nn.Sequential(*layers)
