"""The method interface: `Method` subclasses registered by name, and the `UnlearnTask` they receive.

`UnlearnTask` holds only what a defender may see. A method declares the parts it needs (`needs`, and
`backdoor_needs` for backdoor removal); the task raises on any other part, so a backdoor defence that
declares `{"clean"}` can never peek at the poisoned samples.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..data.bundle import DataBundle, Part
from ..data.splits import Split
from ..engine.train import TrainConfig, check_finite
from ..errors import UserError
from ..registry import Registry
from ._guard import Guard

PARTS = ("forget", "retain", "clean", "val")
SCENARIOS = ("class", "random", "indices", "backdoor")
SAMPLE_SCENARIOS = ("random", "indices")  # forgetting chosen training samples, not a whole class


class PartNotAllowed(PermissionError):
    """A method touched a part of the task that it did not declare in `needs`."""


@dataclass
class UnlearnTask:
    """What an unlearning method may see: data parts (as declared in `needs`), and the run's context.

    Attributes:
        scenario: 'class', 'random', 'indices' or 'backdoor'.
        forget_classes: the classes to forget (class scenario), else [].
        train_config: the original training recipe (what `retrain` repeats).
        new_model: builds a freshly initialised model of the same architecture.
        guard: for backdoor removal, held-out clean accuracy measured at the defence's checkpoints (`watch`),
            so that a collapsing defence stops and a damaged state is never returned (see `methods/_guard.py`).
    """

    scenario: str
    num_classes: int
    device: torch.device
    generator: torch.Generator
    seed: int
    allowed: frozenset[str]
    forget_classes: list[int] = field(default_factory=list)
    train_config: TrainConfig = field(default_factory=TrainConfig)
    new_model: Callable[[], nn.Module] | None = None
    parts: dict[str, Part | None] = field(default_factory=dict, repr=False)
    guard: Guard | None = field(default=None, repr=False)

    def watch(self, model: nn.Module, at: str) -> bool:
        """A checkpoint of the defence (a round, an epoch, a pruning step): the guard measures held-out clean
        accuracy and keeps the state if healthy. False means the model collapsed: stop. Always True unguarded."""
        return self.guard is None or self.guard(model, at)

    def _part(self, name: str) -> Part:
        if name not in self.allowed:
            raise PartNotAllowed(f"this method did not declare {name!r} in its needs: it may not see that data")
        part = self.parts.get(name)
        if part is None or len(part) == 0:
            raise UserError(f"the {name} set is empty for this request: this method cannot run without it")
        return part

    @property
    def forget(self) -> Part:
        return self._part("forget")

    @property
    def retain(self) -> Part:
        return self._part("retain")

    @property
    def clean(self) -> Part:
        return self._part("clean")

    @property
    def val(self) -> Part:
        return self._part("val")

    def has(self, name: str) -> bool:
        return name in self.allowed and self.parts.get(name) is not None and len(self.parts[name]) > 0

    def check(self, loss: Tensor, where: str, step: int) -> None:
        """Stop with a message naming the method and step when a loss is NaN or infinite."""
        check_finite(loss, where, step)


@dataclass
class Unlearned:
    """What `Method.unlearn` returns: everything a method produces travels here, not on the method or the task,
    so a method keeps no state between calls and `--resume` can hand a finished result back whole.

    Attributes:
        model: the unlearned model.
        figures: method-specific numbers and curves, stored in metrics.json under the method's name.
        artifacts: extra tensors the method leaves behind (name -> state dict), written by `forget` as
            `<name>.safetensors` beside `model.safetensors` (e.g. the adversarial method's discriminator) and
            given back to `extra_metrics`, also after a resume.
        config: the settings the method actually used, when it chose them itself (`tune=true`); None: its own.
    """

    model: nn.Module
    figures: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Tensor]] = field(default_factory=dict, repr=False)
    config: Any | None = None

    @classmethod
    def of(cls, out: Unlearned | nn.Module) -> Unlearned:
        """A method with nothing to report may return the bare model."""
        return out if isinstance(out, Unlearned) else cls(out)


@dataclass
class EvalData:
    """What `Method.extra_metrics` may look at after unlearning: the data, the split and the predictions
    already computed by the evaluation (the unlearned model's, and the reference's when there is one)."""

    bundle: DataBundle
    split: Split
    scenario: str
    seed: int
    predictions: Any = None
    reference_predictions: Any = None


class Method:
    """Base class. Subclasses set `needs`, a `Config` dataclass, and implement `unlearn`."""

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({"retain"})
    backdoor_needs: ClassVar[frozenset[str] | None] = None
    scenarios: ClassVar[frozenset[str]] = frozenset({"class", "random", "indices"})
    summary: ClassVar[str] = ""

    @dataclass
    class Config:
        pass

    def __init__(self, config: Any | None = None) -> None:
        self.config = config if config is not None else self.Config()

    def needs_for(self, scenario: str) -> frozenset[str]:
        if scenario == "backdoor":
            if self.backdoor_needs is None:
                raise UserError(f"method {self.name!r} does not remove backdoors: choose a backdoor defence "
                                f"(see `unlearnkit list methods`)")
            return self.backdoor_needs
        if scenario not in self.scenarios:
            raise UserError(f"method {self.name!r} does not support {scenario} forgetting: choose another method "
                            f"(see `unlearnkit list methods`)")
        return self.needs

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> Unlearned | nn.Module:
        """Unlearn `model` (a copy the method may change in place) and return an `Unlearned` (or, with no figures
        or artifacts to report, the model itself)."""
        raise NotImplementedError

    def extra_metrics(self, result: Unlearned, reference: nn.Module | None, data: EvalData,
                      device: torch.device) -> dict:
        """Method-specific evaluation run after `unlearn`, on its result (model and artifacts, the same after a
        `--resume` that read the result back) and the retrained reference when one is given; merged into the
        figures stored under the method's name. Default: nothing."""
        return {}

    def predict_extras(self, run_dir: Path, meta: dict, logits: Tensor) -> list[dict]:
        """Per-image extra numbers for `unlearnkit predict` (e.g. a saved discriminator's score). Default: none."""
        return []


METHODS: Registry[type[Method]] = Registry("method", "unlearnkit.methods")


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        return METHODS.register(name)(cls)

    return deco


def _convert(text: str, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if text.lower() in ("none", "null"):
            return None
        return _convert(text, args[0], key)
    try:
        if tp is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if origin in (tuple, list):
            return tp([_convert(t, args[0], key) for t in text.split(",")]) if origin is list else tuple(
                _convert(t, args[0], key) for t in text.split(","))
    except ValueError as err:
        raise UserError(f"--set {key}={text}: expected {getattr(tp, '__name__', tp)}") from err
    return text


def make_config(cls: type[Method], settings: dict[str, Any] | list[str] | None) -> Any:
    """Build a method's Config from `key=value` strings or a dict; unknown keys list the valid ones."""
    cfg_cls = cls.Config
    hints = typing.get_type_hints(cfg_cls)
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    items: dict[str, Any] = {}
    if isinstance(settings, list):
        for s in settings:
            if "=" not in s:
                raise UserError(f"--set {s!r} is not key=value: write e.g. --set epochs=5")
            k, v = s.split("=", 1)
            items[k.strip().replace("-", "_")] = v.strip()
    elif settings:
        items = dict(settings)
    for k, v in list(items.items()):
        if k not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise UserError(f"method {cls.name!r} has no setting {k!r}: valid settings are {valid}")
        if isinstance(v, str):
            items[k] = _convert(v, hints[k], k)
    cfg = cfg_cls(**items)
    _check_numbers(cls.name, cfg)
    post = getattr(cfg, "validate", None)
    if callable(post):
        post()
    return cfg


def _check_numbers(method: str, cfg: Any) -> None:
    """Settings no method can use: a NaN/inf number, a learning rate or batch size <= 0, negative epochs/steps.

    Caught here, once for every method, they are bad input (exit 2) instead of a NaN loss or a crash later.
    """
    for f in dataclasses.fields(cfg) if dataclasses.is_dataclass(cfg) else []:
        v, name = getattr(cfg, f.name), f.name
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        positive = name == "lr" or name.startswith("lr_") or name.endswith(("_lr", "batch_size"))
        counted = name.endswith(("epochs", "steps", "rounds", "iterations"))
        if not math.isfinite(v) or (positive and v <= 0) or (counted and v < 0):
            need = "> 0" if positive else ">= 0" if counted else "finite"
            raise UserError(f"method {method!r}: setting {name}={v} must be {need}: pass e.g. --set {name}="
                            f"{f.default if f.default is not dataclasses.MISSING else 1}")


def config_dict(config: Any) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}
