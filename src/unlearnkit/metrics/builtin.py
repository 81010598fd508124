"""The metrics of metrics.json (DESIGN.md's contract), registered with their labels, flags and computations.

UA / RA / TA and the two membership attacks follow the SalUn / Sparse-unlearning evaluation (see `mia.py`);
class forgetting splits the test set into retained-class (`test_acc`) and forgotten-class (`forget_test_acc`)
samples. The backdoor metrics and the comparisons with a retrained reference are registered here for their
labels and flags; the attack's evaluation and `engine.evaluate.compare` measure them.
"""

from __future__ import annotations

from .accuracy import accuracy, confusion_matrix, per_class_accuracy
from .mia import loss_mia, mia_efficacy, per_sample_loss, true_label_confidence
from .registry import FORGET_SCENARIOS, EvalContext, Metric, Several, register_metric

BACKDOOR = frozenset({"backdoor", "train"})  # a backdoored training run has them too


def _r(v: float) -> float:
    return round(float(v), 4)


def _test_acc(ctx: EvalContext) -> float:
    logits, y = ctx.nonmember
    return _r(accuracy(logits, y))


def _forget_test_acc(ctx: EvalContext) -> float:
    logits, y = ctx.unseen
    return _r(accuracy(logits, y))


def _retain_acc(ctx: EvalContext) -> float:
    return _r(accuracy(ctx.p.retain_logits, ctx.p.retain.y))


def _forget_acc(ctx: EvalContext) -> float | None:
    return _r(accuracy(ctx.p.forget_logits, ctx.p.forget.y)) if ctx.has_forget else None


def _mia_efficacy(ctx: EvalContext) -> float | None:
    if not ctx.has_forget:
        return None
    p = ctx.p
    logits, y = ctx.nonmember
    members = true_label_confidence(p.retain_logits[: len(y)], p.retain.y[: len(y)])
    return _r(mia_efficacy(members, true_label_confidence(logits, y), true_label_confidence(p.forget_logits,
                                                                                          p.forget.y)))


def _loss_mia(ctx: EvalContext) -> Several | None:
    if not ctx.has_forget:
        return None
    logits, y = ctx.unseen
    auc, acc, (lo, hi) = loss_mia(per_sample_loss(ctx.p.forget_logits, ctx.p.forget.y), per_sample_loss(logits, y),
                                  ctx.seed)
    return Several({"mia_loss_auc": _r(auc), "mia_loss_acc": _r(acc), "mia_loss_auc_ci": [_r(lo), _r(hi)]})


def _per_class(ctx: EvalContext) -> dict:
    acc = per_class_accuracy(ctx.p.test_logits, ctx.p.test.y, ctx.bundle.num_classes)
    return {"test": [None if v is None else _r(v) for v in acc]}


def _confusion(ctx: EvalContext) -> list[list[int]]:
    return confusion_matrix(ctx.p.test_logits, ctx.p.test.y, ctx.bundle.num_classes)


for _m in (
    Metric("forget_acc", "forget-set accuracy", "forget acc.", "UA = 100 − this", 10, FORGET_SCENARIOS,
           gap=True, avg_gap=True, card=True, compute=_forget_acc),
    Metric("forget_test_acc", "forgotten-class test accuracy", "forgotten-class test acc.", "", 20,
           frozenset({"class"}), gap=True, card=True, compute=_forget_test_acc),
    Metric("retain_acc", "retain accuracy", "retain acc.", "RA", 30, higher_is_better=True, gap=True, avg_gap=True,
           card=True, compute=_retain_acc),
    Metric("test_acc", "test accuracy", "test acc.", "TA", 40, higher_is_better=True, gap=True, avg_gap=True,
           card=True, compute=_test_acc),
    Metric("mia_efficacy", "MIA efficacy", "MIA efficacy", "forget samples an SVC calls unseen, %", 50,
           FORGET_SCENARIOS, gap=True, avg_gap=True, card=True, compute=_mia_efficacy),
    Metric("mia_loss_auc", "loss-MIA AUC", "loss-MIA AUC", "50 = indistinguishable from unseen; [95% interval]", 60,
           FORGET_SCENARIOS, gap=True, compute=_loss_mia),
    Metric("clean_acc", "clean accuracy", "clean acc.", "", 70, BACKDOOR, higher_is_better=True, gap=True,
           card=True),
    Metric("asr", "attack success rate", "ASR", "triggered test samples", 80, BACKDOOR, higher_is_better=False,
           gap=True, card=True),
    Metric("robust_acc", "robust accuracy", "robust acc.", "triggered samples, true labels", 90, BACKDOOR,
           higher_is_better=True, gap=True),
    Metric("der", "DER", "DER", "defence effectiveness rating, 0–1, higher is better", 100, frozenset({"backdoor"}),
           higher_is_better=True, percent=False),
    Metric("js_div", "JS divergence", "JS div.", "to the retrained model, forget set", 110, FORGET_SCENARIOS,
           higher_is_better=False, percent=False),
    Metric("seconds", "seconds", "seconds", "wall time of the method", 120, higher_is_better=False, percent=False),
    Metric("speedup", "speed-up over retraining", "speed-up", "retraining's seconds / these", 130,
           FORGET_SCENARIOS | {"backdoor"}, higher_is_better=True, percent=False, table=False),
    Metric("speedup_over_training", "speed-up over training the original", "vs training",
           "the original's training seconds / these", 135, FORGET_SCENARIOS | {"backdoor"}, higher_is_better=True,
           percent=False, table=False),
    Metric("per_class_acc", "per-class test accuracy", "per-class acc.", "", 200, table=False, compute=_per_class),
    Metric("confusion_test", "confusion matrix (test set)", "confusion", "", 210, table=False,
           compute=_confusion),
):
    register_metric(_m)
