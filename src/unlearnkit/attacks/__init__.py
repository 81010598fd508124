"""Backdoor attacks: one file per trigger, registered by name."""

from ..registry import Registry

ATTACKS: Registry = Registry("attack", "unlearnkit.attacks")
register_attack = ATTACKS.register

__all__ = ["ATTACKS", "register_attack"]
