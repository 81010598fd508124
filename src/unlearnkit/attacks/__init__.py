"""Backdoor attacks: one file per trigger, registered by name, and poison specs that rebuild them."""

from collections.abc import Callable

from ..registry import Registry

ATTACKS: Registry = Registry("attack", "unlearnkit.attacks")


def register_attack(name: str) -> Callable[[type], type]:
    """Register a `Trigger` subclass under `name` (and set its `name`)."""

    def deco(cls: type) -> type:
        cls.name = name
        return ATTACKS.register(name)(cls)

    return deco


from .base import LabelMap, Trigger  # noqa: E402
from .poison import backdoor_metrics, build_trigger, make_poison_spec, poison_bundle  # noqa: E402

__all__ = ["ATTACKS", "LabelMap", "Trigger", "backdoor_metrics", "build_trigger", "make_poison_spec",
           "poison_bundle", "register_attack"]
