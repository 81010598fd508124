"""Model families; one file each, registered by name."""

from .registry import MODELS, Classifier, build_model, last_conv, last_linear, register_model

__all__ = ["MODELS", "Classifier", "build_model", "last_conv", "last_linear", "register_model"]
