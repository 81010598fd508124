"""Datasets in memory, forget/retain/validation splits, batched transforms."""

from .bundle import DataBundle, Part
from .datasets import DATASETS, load_dataset, register_dataset
from .splits import ForgetSpec, Split, make_split, parse_forget_spec

__all__ = ["DATASETS", "DataBundle", "ForgetSpec", "Part", "Split", "load_dataset", "make_split",
           "parse_forget_spec", "register_dataset"]
