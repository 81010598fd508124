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
from .poison import (  # noqa: E402
    SPLIT_ON_CLEAN_LABELS,
    backdoor_metrics,
    build_trigger,
    clean_labels,
    make_poison_spec,
    poison_bundle,
    poisoned_indices,
)

__all__ = ["ATTACKS", "SPLIT_ON_CLEAN_LABELS", "LabelMap", "Trigger", "backdoor_metrics", "build_trigger",
           "clean_labels", "make_poison_spec", "poison_bundle", "poisoned_indices", "register_attack"]
