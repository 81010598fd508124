"""The suites `class` and `random`: the field's unlearning baselines against retraining, on Fashion-MNIST.

`class` forgets class 0 (T-shirt/top), `random` a seeded random 10% of the training set (a new draw per
seed). Every row runs with `tune=true`: the method picks its hyper-parameters from its small search space on
the held-out validation split of that seed (never the test set, see `methods/_tuning.py`). The table's
`seconds` and `speed-up` are those of the chosen setting's own run, measured like an untuned run; the cost
of choosing it (all trials) is the separate `tuning s` column. Columns follow SalUn / Sparse unlearning:
UA = 100 - forget-set accuracy, RA = retain accuracy, TA = test accuracy (retained classes only, for class
forgetting), MIA-efficacy, the average gap to the retrained model over those four, seconds and speed-up.
The original model's own row shows the gap a method has to close (for random forgetting of a model that does
not overfit much, it is already small).
"""

from __future__ import annotations

from typing import Any

from . import register_suite
from .runner import (
    FASHION_MNIST_RESNET18,
    RA,
    TA,
    UA,
    Column,
    Row,
    Scenario,
    Suite,
    gap,
    key,
    no_other_settings,
    setting,
)

# The original models' recipe, shared by every Fashion-MNIST suite (and so their cached models).
FASHION_TRAIN: dict[str, Any] = dict(FASHION_MNIST_RESNET18)

BASELINES = ("grad-ascent", "neggrad-plus", "random-label", "salun", "l1-sparse", "boundary-shrink", "scrub",
             "bad-teacher")
CLASS_ONLY = ("unsir",)


def _selection(m: dict) -> dict | None:
    return next((v["selection"] for v in m.values() if isinstance(v, dict) and "selection" in v), None)


def _seconds(m: dict) -> float | None:
    """The chosen setting's own wall time (the run's, for untuned rows and the reference)."""
    sel = _selection(m)
    return sel["chosen_seconds"] if sel else m.get("seconds")


def _speedup(m: dict) -> float | None:
    s, ref = _seconds(m), m.get("reference", {}).get("seconds")
    return ref / s if s and ref else None


def _tuning(m: dict) -> float | None:
    return m.get("seconds") if _selection(m) else None


COLUMNS = [UA, RA, TA, key("mia_efficacy"), gap("avg", "avg gap"), Column("seconds", _seconds),
           Column("speed-up", _speedup), Column("tuning s", _tuning)]


# CPU budgets where a paper's default is measured against a much longer retraining (SalUn's originals train
# 182 epochs; these train 6): fewer passes, so that no row costs more than about a third of a retraining.
BUDGETS: dict[str, dict[str, Any]] = {
    "neggrad-plus": {"epochs": 2},
    "l1-sparse": {"epochs": 1, "retain_fraction": 0.25},
    "boundary-shrink": {"epochs": 2},
    "scrub": {"epochs": 3, "max_steps": 2, "retain_fraction": 0.1},
}


def rows(scenario: str) -> list[Row]:
    names = BASELINES + (CLASS_ONLY if scenario == "class" else ())
    # The product's own class-forgetting method sits beside the baselines it must beat (defaults, no tuning:
    # they were chosen on validation data, see methods/adversarial.py).
    own = [Row("adversarial", {})] if scenario == "class" else []
    return [Row(n, {"tune": True, **BUDGETS.get(n, {})}) for n in names] + [
        Row("finetune", {"epochs": 1}, label="finetune (1 epoch)")] + own


def _suite(name: str, scenario: Scenario) -> Suite:
    return Suite(name=name, data="fashion-mnist", arch="resnet18", train=dict(FASHION_TRAIN), scenarios=[scenario],
                 rows=rows(name), columns=list(COLUMNS), original_row="original (no unlearning)",
                 notes="Each method tunes its hyper-parameters on the held-out validation split of its seed "
                       "(`tune=true`); seconds and speed-up are the chosen setting's own run, `tuning s` the "
                       "whole selection. Avg gap = mean |unlearned - retrained| over UA, RA, TA, MIA-efficacy. "
                       "Budgets below the papers' (6-epoch originals here): "
                       + "; ".join(f"{k} {v}" for k, v in BUDGETS.items()) + ".")


@register_suite("class")
def class_suite(settings: dict) -> Suite:
    """Forget one class (default 0, `--set forget_class=C`) of Fashion-MNIST with every baseline."""
    s = dict(settings)
    forget_class = str(s.pop("forget_class", 0))
    no_other_settings(s, "class", "forget_class=C ")
    return _suite("class", Scenario(f"class-{forget_class}", {"forget_class": forget_class}))


@register_suite("random")
def random_suite(settings: dict) -> Suite:
    """Forget a random 10% (`--set fraction=F`) of Fashion-MNIST's training set with every baseline."""
    s = dict(settings)
    frac = setting(s, "fraction", 0.1, "random", float, lo=1e-6, hi=0.99)
    no_other_settings(s, "random", "fraction=F ")
    return _suite("random", Scenario(f"random-{frac:g}", {"forget_random": frac}))
