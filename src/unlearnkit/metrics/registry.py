"""The metric registry: one entry per metrics.json key, with everything that reads it.

Each `Metric` says what the key means (label, short header, hint), where it applies (scenarios), which way is
better, whether it enters the gap to the retrained model (and the average gap), whether the report shows it
as a card, and, for a metric evaluation computes from one model's predictions, how (`compute`). Evaluation
(`engine/evaluate.py`), the terminal summary (`metrics/table.py`), the HTML report, the verdict's wording, the
demo table and the benchmark columns all read this registry, so that a new metric is one file: a module in
this package that calls `register_metric` (the registry imports every module of the package on first use).

`compute(ctx)` gets an `EvalContext` (the model's predictions on test / retain / forget, the data, the split,
the scenario, the seed) and returns the value, or None when the metric does not apply; a metric that
measures companions in the same pass (the loss attack's accuracy and interval beside its AUC) returns them
with `Several({...})`; a metric whose `compute` is None is measured
elsewhere (backdoor metrics by the attack's evaluation, `js_div` / `speedup` against the reference) and is
registered for its label and flags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from ..registry import Registry

FORGET_SCENARIOS = frozenset({"class", "random", "indices"})
ALL_SCENARIOS = frozenset({"train", "class", "random", "indices", "backdoor"})


@dataclass
class EvalContext:
    """What a metric may read: one model's predictions (`engine.evaluate.Predictions`) and the task around them.

    `scenario` is None for a plain training run. The masks are computed once and shared by every metric.
    """

    p: Any  # engine.evaluate.Predictions (not imported: the engine imports metrics, not the reverse)
    bundle: Any  # data.bundle.DataBundle
    split: Any  # data.splits.Split
    scenario: str | None
    seed: int = 0

    @cached_property
    def forgotten_test(self) -> Tensor:
        """Test samples of the forgotten classes (class forgetting; all False otherwise)."""
        if self.scenario != "class":
            return torch.zeros_like(self.p.test.y, dtype=torch.bool)
        return torch.isin(self.p.test.y, torch.tensor(self.split.forget_classes, dtype=torch.long))

    @cached_property
    def nonmember(self) -> tuple[Tensor, Tensor]:
        """(logits, labels) of test samples no forget request touches: the retained classes' for class forgetting."""
        keep = ~self.forgotten_test
        return self.p.test_logits[keep], self.p.test.y[keep]

    @cached_property
    def unseen(self) -> tuple[Tensor, Tensor]:
        """(logits, labels) of samples the forget set should resemble: the forgotten classes' test samples for
        class forgetting, the test set otherwise."""
        if self.scenario == "class":
            return self.p.test_logits[self.forgotten_test], self.p.test.y[self.forgotten_test]
        return self.p.test_logits, self.p.test.y

    @property
    def has_forget(self) -> bool:
        return self.p.forget is not None and self.scenario in FORGET_SCENARIOS


class Several(dict):
    """What a `compute` returns to set several metrics.json keys at once (its own among them)."""


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # as a sentence says it: "forget-set accuracy"
    short: str  # as a table header says it: "forget acc."
    hint: str = ""  # what it means, beside the label in the report
    order: float = 100.0  # where it sits in tables (lower first)
    scenarios: frozenset[str] = ALL_SCENARIOS
    higher_is_better: bool | None = None  # None: closer to the retrained model is better
    gap: bool = False  # |this - retrained| goes into metrics.json's `gap`
    avg_gap: bool = False  # ... and into its average (UA, RA, TA, MIA-efficacy)
    card: bool = False  # a headline card in the HTML report
    percent: bool = True
    table: bool = True  # a row of the metrics tables (False: a structure, or shown on its own like speed-up)
    compute: Callable[[EvalContext], Any] | None = field(default=None, compare=False)


METRICS: Registry[Metric] = Registry("metric", "unlearnkit.metrics")


def register_metric(metric: Metric) -> Metric:
    """Add a metric (one call per metrics.json key); returns it."""
    return METRICS.register(metric.key)(metric)


def metric(key: str) -> Metric:
    """The registered metric `key` (a `UserError` listing the registered keys when unknown)."""
    return METRICS.get(key)


def ordered() -> list[Metric]:
    """Every registered metric, in table order."""
    return sorted((METRICS.get(k) for k in METRICS.names()), key=lambda m: (m.order, m.key))


def label(key: str) -> str:
    """A key's label, or the key itself for one that is not registered (e.g. a method's own figure)."""
    return METRICS.get(key).label if key in METRICS else key


def short(key: str) -> str:
    return METRICS.get(key).short if key in METRICS else key


def gap_keys() -> tuple[str, ...]:
    return tuple(m.key for m in ordered() if m.gap)


def avg_gap_keys() -> tuple[str, ...]:
    return tuple(m.key for m in ordered() if m.avg_gap)


def evaluate_all(ctx: EvalContext) -> dict[str, Any]:
    """Every registered metric with a `compute` that applies to the context's scenario, in table order."""
    out: dict[str, Any] = {}
    scenario = "train" if ctx.scenario in (None, "none") else ctx.scenario  # "none": a request to forget nothing
    for m in ordered():
        if m.compute is None or scenario not in m.scenarios:
            continue
        value = m.compute(ctx)
        if isinstance(value, Several):
            out.update(value)
        elif value is not None:
            out[m.key] = value
    return out
