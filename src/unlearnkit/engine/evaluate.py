"""Evaluation: predictions on each part of the split, then the pure metric functions of `metrics/`.

Keys follow DESIGN.md's `metrics.json` contract; keys that do not apply to a scenario are absent.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.bundle import DataBundle
from ..data.splits import Split
from ..errors import NumericalError
from ..metrics import avg_gap, js_divergence
from ..metrics.registry import EvalContext, avg_gap_keys, evaluate_all, gap_keys
from .train import predict_logits


def _r(v: float) -> float:
    return round(float(v), 4)


class Predictions:
    """Logits of one model on the parts of one split, computed once and shared by all metrics."""

    def __init__(self, model: nn.Module, bundle: DataBundle, split: Split, device: torch.device) -> None:
        self.test = bundle.test_part()
        self.test_logits = predict_logits(model, self.test, device)
        self.retain = bundle.train_part(split.retain_idx, "none")
        self.retain_logits = predict_logits(model, self.retain, device)
        self.forget = bundle.train_part(split.forget_idx, "none") if len(split.forget_idx) else None
        self.forget_logits = predict_logits(model, self.forget, device) if self.forget is not None else None
        for name, t in (("test", self.test_logits), ("retain", self.retain_logits), ("forget", self.forget_logits)):
            if t is not None and not torch.isfinite(t).all():  # metrics of NaN outputs would be silent garbage
                raise NumericalError(f"the model outputs NaN/inf logits on the {name} set")


def evaluate_predictions(p: Predictions, bundle: DataBundle, split: Split, scenario: str | None,
                         seed: int = 0) -> dict:
    """The metrics of one model (see DESIGN.md) from its predictions: every registered metric that applies to
    the scenario (`metrics/registry.py`; the computations are in `metrics/builtin.py`)."""
    return evaluate_all(EvalContext(p, bundle, split, scenario, seed))


def evaluate_model(model: nn.Module, bundle: DataBundle, split: Split, scenario: str | None,
                   device: torch.device, seed: int = 0) -> tuple[dict, Predictions]:
    p = Predictions(model, bundle, split, device)
    return evaluate_predictions(p, bundle, split, scenario, seed), p


def compare(metrics: dict, reference: dict, p: Predictions | None = None,
            p_ref: Predictions | None = None, *, timed: bool = True) -> dict:
    """Attach the reference's metrics, per-key gaps (and their average over UA/RA/TA/MIA), JS divergence
    on the forget set and the speed-up, to `metrics` (returned as a new dict). `timed=False` leaves the speed-up
    out: the two runs' seconds were measured on different machines."""
    out = dict(metrics)
    ref = {k: v for k, v in reference.items() if k not in ("reference", "gap", "original")}
    out["reference"] = ref
    gaps = {k: _r(abs(metrics[k] - ref[k])) for k in gap_keys() if k in metrics and k in ref}
    avg = avg_gap(metrics, ref, avg_gap_keys())  # UA, RA, TA, MIA-efficacy
    if "avg" in avg:
        gaps["avg"] = _r(avg["avg"])
    out["gap"] = gaps
    if p is not None and p_ref is not None and p.forget_logits is not None and p_ref.forget_logits is not None:
        out["js_div"] = _r(js_divergence(p.forget_logits, p_ref.forget_logits))
    if timed and metrics.get("seconds") and ref.get("seconds"):
        out["speedup"] = _r(ref["seconds"] / metrics["seconds"])
    return out


