"""Unlearning methods and backdoor defences; one file each, registered by name."""

from .base import METHODS, Method, UnlearnTask, make_config, register_method

__all__ = ["METHODS", "Method", "UnlearnTask", "make_config", "register_method"]
