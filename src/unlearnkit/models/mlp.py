"""A multilayer perceptron over flattened pixels (G.pt's MNIST target net is an MLP too)."""

from __future__ import annotations

import math

from torch import nn

from ..errors import UserError
from .registry import register_model


@register_model("mlp")
def mlp(num_classes: int, input_shape: tuple[int, int, int], hidden: int = 256, depth: int = 2) -> nn.Module:
    """Fully connected network on flattened pixels (hidden=256, depth=2)."""
    if not (1 <= hidden <= 1_000_000 and 0 <= depth <= 100):
        raise UserError(f"mlp: hidden={hidden} depth={depth}: hidden must be 1..1000000 and depth 0..100 "
                        f"(depth 0 is a linear model), e.g. hidden=256 depth=2")
    layers: list[nn.Module] = [nn.Flatten()]
    d = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
        d = hidden
    layers.append(nn.Linear(d, num_classes))
    return nn.Sequential(*layers)
