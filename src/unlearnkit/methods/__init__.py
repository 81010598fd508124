"""Unlearning methods and backdoor defences; one file each, registered by name."""

from ._guard import Guard, split_holdout
from .base import METHODS, Method, Unlearned, UnlearnTask, make_config, register_method

__all__ = ["METHODS", "Guard", "Method", "UnlearnTask", "Unlearned", "make_config", "register_method", "split_holdout"]
