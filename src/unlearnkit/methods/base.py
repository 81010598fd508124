"""The method interface: `Method` subclasses registered by name, and the `UnlearnTask` they receive.

`UnlearnTask` holds only what a defender may see. A method declares the parts it needs (`needs`, and
`backdoor_needs` for backdoor removal); the task raises on any other part, so a backdoor defence that
declares `{"clean"}` can never peek at the poisoned samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..data.bundle import DataBundle, Part
from ..data.splits import Split
from ..engine.checkpoint import Scope
from ..engine.train import TrainConfig, check_finite
from ..errors import UserError
from ..registry import Registry
from ..settings import build
from ..settings import config_dict as config_dict  # re-exported: callers read configs from here
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
        train_size: how many images the original trained on (0: unknown). With `train_config.epochs` it gives the
            original's training work, which caps a method's default budget (`_steps.capped`).
        new_model: builds a freshly initialised model of the same architecture.
        checkpoint: the checkpoint scope of this run of the method (None outside a checkpointed command): pass it
            to `fit(..., checkpoint=task.checkpoint)` and an interrupted `forget` resumes that training per epoch.
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
    train_size: int = 0
    new_model: Callable[[], nn.Module] | None = None
    parts: dict[str, Part | None] = field(default_factory=dict, repr=False)
    guard: Guard | None = field(default=None, repr=False)
    checkpoint: Scope | None = field(default=None, repr=False)

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


def make_config(cls: type[Method], settings: dict[str, Any] | list[str] | None) -> Any:
    """A method's Config from `key=value` strings or a dict (`unlearnkit.settings`: unknown keys list the valid
    ones, values are typed by the Config's annotations, impossible numbers are refused)."""
    return build(cls.Config, settings, f"method {cls.name!r}")
