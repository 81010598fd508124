"""Evaluation: predictions on each part of the split, then the pure metric functions of `metrics/`.

Keys follow DESIGN.md's `metrics.json` contract; keys that do not apply to a scenario are absent.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.bundle import DataBundle
from ..data.splits import Split
from ..errors import NumericalError
from ..metrics import (
    accuracy,
    avg_gap,
    confusion_matrix,
    js_divergence,
    loss_mia,
    mia_efficacy,
    per_class_accuracy,
    per_sample_loss,
    true_label_confidence,
)
from .train import predict_logits

GAP_KEYS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy", "forget_test_acc", "mia_loss_auc",
            "clean_acc", "asr", "robust_acc")
AVG_GAP_KEYS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")  # UA, RA, TA, MIA-efficacy


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


def _test_masks(bundle: DataBundle, split: Split) -> tuple[Tensor, Tensor]:
    """(retained-class test mask, forgotten-class test mask)."""
    forgot = torch.isin(bundle.y_test, torch.tensor(split.forget_classes, dtype=torch.long))
    return ~forgot, forgot


def evaluate_predictions(p: Predictions, bundle: DataBundle, split: Split, scenario: str | None,
                         seed: int = 0) -> dict:
    """The UA/RA/TA/MIA metrics of one model (see DESIGN.md) from its predictions."""
    m: dict = {}
    y_test = p.test.y
    if scenario == "class":
        keep, forgot = _test_masks(bundle, split)
        m["test_acc"] = _r(accuracy(p.test_logits[keep], y_test[keep]))
        m["forget_test_acc"] = _r(accuracy(p.test_logits[forgot], y_test[forgot]))
        nonmember_logits, nonmember_y = p.test_logits[keep], y_test[keep]
        unseen_logits, unseen_y = p.test_logits[forgot], y_test[forgot]
    else:
        m["test_acc"] = _r(accuracy(p.test_logits, y_test))
        nonmember_logits, nonmember_y = p.test_logits, y_test
        unseen_logits, unseen_y = p.test_logits, y_test
    m["retain_acc"] = _r(accuracy(p.retain_logits, p.retain.y))
    if p.forget is not None and scenario in ("class", "random", "indices"):
        m["forget_acc"] = _r(accuracy(p.forget_logits, p.forget.y))
        n = len(nonmember_y)
        members = true_label_confidence(p.retain_logits[:n], p.retain.y[:n])
        m["mia_efficacy"] = _r(mia_efficacy(members, true_label_confidence(nonmember_logits, nonmember_y),
                                            true_label_confidence(p.forget_logits, p.forget.y)))
        auc, acc, (lo, hi) = loss_mia(per_sample_loss(p.forget_logits, p.forget.y),
                                      per_sample_loss(unseen_logits, unseen_y), seed)
        m["mia_loss_auc"], m["mia_loss_acc"], m["mia_loss_auc_ci"] = _r(auc), _r(acc), [_r(lo), _r(hi)]
    m["per_class_acc"] = {"test": [None if v is None else _r(v)
                                   for v in per_class_accuracy(p.test_logits, y_test, bundle.num_classes)]}
    m["confusion_test"] = confusion_matrix(p.test_logits, y_test, bundle.num_classes)
    return m


def evaluate_model(model: nn.Module, bundle: DataBundle, split: Split, scenario: str | None,
                   device: torch.device, seed: int = 0) -> tuple[dict, Predictions]:
    p = Predictions(model, bundle, split, device)
    return evaluate_predictions(p, bundle, split, scenario, seed), p


def compare(metrics: dict, reference: dict, p: Predictions | None = None,
            p_ref: Predictions | None = None) -> dict:
    """Attach the reference's metrics, per-key gaps (and their average over UA/RA/TA/MIA), JS divergence
    on the forget set and the speed-up, to `metrics` (returned as a new dict)."""
    out = dict(metrics)
    ref = {k: v for k, v in reference.items() if k not in ("reference", "gap", "original")}
    out["reference"] = ref
    gaps = {k: _r(abs(metrics[k] - ref[k])) for k in GAP_KEYS if k in metrics and k in ref}
    avg = avg_gap(metrics, ref, AVG_GAP_KEYS)
    if "avg" in avg:
        gaps["avg"] = _r(avg["avg"])
    out["gap"] = gaps
    if p is not None and p_ref is not None and p.forget_logits is not None and p_ref.forget_logits is not None:
        out["js_div"] = _r(js_divergence(p.forget_logits, p_ref.forget_logits))
    if metrics.get("seconds") and ref.get("seconds"):
        out["speedup"] = _r(ref["seconds"] / metrics["seconds"])
    return out


