"""Model registry. Every model takes images in [0, 1]; normalisation lives inside the model.

Keeping normalisation inside (a `Classifier` wrapper) means triggers, perturbations and clamping all work
in pixel space, and a saved model needs nothing but its weights and meta.json to be reused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..registry import Registry

Factory = Callable[..., nn.Module]
MODELS: Registry[Factory] = Registry("model", "unlearnkit.models")
register_model = MODELS.register


class Classifier(nn.Module):
    """`net(normalise(x))`; `x` is a float batch in [0, 1] of shape (N, C, H, W)."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)


def build_model(name: str, num_classes: int, input_shape: tuple[int, int, int], mean: tuple[float, ...],
                std: tuple[float, ...], /, **kwargs: Any) -> Classifier:
    """Build a registered model (or `torchvision:NAME`) wrapped with its input normalisation.

    The leading arguments are positional-only, so that any `--arch-kwargs` key (even `name=`) reaches the
    model's factory and fails there with a message, not with a TypeError at this call.
    """
    factory: Factory
    if name.startswith("torchvision:"):
        from .tv import torchvision_model

        factory = partial(torchvision_model, name.split(":", 1)[1])
    else:
        factory = MODELS.get(name)
    try:
        net = factory(num_classes=num_classes, input_shape=input_shape, **kwargs)
    except (TypeError, ValueError, RuntimeError) as err:  # e.g. an unknown option, a negative width
        raise UserError(f"bad model options for {name!r} ({' '.join(str(err).split())[:200]}): check "
                        f"--arch-kwargs") from err
    return Classifier(net, mean, std)


def last_linear(model: nn.Module) -> nn.Linear:
    """The final linear classifier layer (what NGF and head-only methods tune)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError("the model has no linear classifier layer: choose an architecture that ends in nn.Linear")
    return linears[-1]


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The last convolution (what fine-pruning prunes)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise UserError("the model has no convolution layer: choose a convolutional architecture")
    return convs[-1]
