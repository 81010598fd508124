"""`torchvision:NAME`: any torchvision classifier, untrained, with inputs adapted to the data's channels."""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import UserError


class _RepeatChannels(nn.Module):
    """Grey images -> 3 channels, so ImageNet-shaped torchvision models accept them unchanged."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)


def torchvision_model(name: str, num_classes: int, input_shape: tuple[int, int, int], **kwargs) -> nn.Module:
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise UserError(f"unknown torchvision model {name!r}: choose one of {', '.join(sorted(available))}")
    net = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    return _RepeatChannels(net) if input_shape[0] == 1 else net
