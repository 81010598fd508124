"""A verdict on a forget run: "forgotten", "not forgotten", "inconclusive", "unchanged" or "damaged", with reasons.

Numbers without judgement let a user ship a model that still remembers. Each check below compares one
metric with a threshold; the thresholds are deliberately simple so that a reader can check them by hand.
All values are percentages (0-100) or percentage points.

With a retrained reference (`--retrain` / `--reference`), the gold standard, a result is judged by its
distance to the reference (retraining is what "forgotten" means):

- forget_acc, forget_test_acc: within REF_ACC_TOL (5) points of the reference -> pass; more than
  REF_ACC_FAIL (10) points above it -> the model still remembers -> "not forgotten".
- mia_efficacy: within REF_MIA_TOL (10) points -> pass; more than REF_MIA_FAIL (20) points *below* the
  reference (the attack still finds the forget samples to be members) -> "not forgotten".
- A result that departs from the reference in the other direction (it forgot *more* than retraining, e.g.
  forget accuracy 0 where the retrained model gets 80) is "inconclusive": it is forgotten, but in a way an
  observer can tell apart from retraining (the Streisand effect).

Without a reference, absolute thresholds:

- class forgetting: forget_test_acc and forget_acc <= CLASS_ACC_PASS (5) -> pass; > CLASS_ACC_FAIL (10)
  -> "not forgotten" (a retrained model never predicts a class it never saw, so it scores ~0).
- sample forgetting (random / indices): a retrained model sees the forget set as unseen data, so forget_acc
  - test_acc <= SAMPLE_ACC_GAP_PASS (3) and mia_loss_auc <= LOSS_AUC_PASS (55) pass; a gap > SAMPLE_ACC_GAP_FAIL
  (10) or an AUC > LOSS_AUC_FAIL (65) -> "not forgotten". If the original model already passed these checks, the
  attacks cannot tell forgetting happened at all: "inconclusive" (compare against `--retrain`).
- backdoor removal: asr <= ASR_PASS (10) -> pass; asr > ASR_FAIL (25) -> "not forgotten".

Between a pass and a fail threshold the verdict is "inconclusive". Utility losses (retain_acc, test_acc
or clean_acc more than UTILITY_DROP (10) points below the reference, or the original without one) are
listed as `warnings`, as is a run slower than retraining (`speedup` below 1), or, without a retrained reference,
slower than training the original (`speedup_over_training` below 1).

"unchanged" overrides the checks above: the unlearned model predicts the same class as the original on every
test, retain and forget image (`agreement_with_original` 100), so nothing was forgotten, even where the original
already sat close to the retrained model or passed the absolute thresholds.

"damaged" overrides all of the above, in every scenario: the model's own accuracy (clean_acc for a
backdoor, test_acc otherwise, which for class forgetting covers the retained classes) is more than
DAMAGE_DROP (10) points below the original model's (the retrained model's when the original's is not in the
metrics), or within NEAR_CHANCE (1.5) times chance (100 / number of classes). A model that answers one
class for everything has an ASR of 0 or 100 and a forget accuracy of 0: none of that is forgetting, and the
headline never calls it so.
"""

from __future__ import annotations

from .registry import label

FORGOTTEN, NOT_FORGOTTEN, INCONCLUSIVE, DAMAGED = "forgotten", "not forgotten", "inconclusive", "damaged"
UNCHANGED = "unchanged"

REF_ACC_TOL, REF_ACC_FAIL = 5.0, 10.0
REF_MIA_TOL, REF_MIA_FAIL = 10.0, 20.0
CLASS_ACC_PASS, CLASS_ACC_FAIL = 5.0, 10.0
SAMPLE_ACC_GAP_PASS, SAMPLE_ACC_GAP_FAIL = 3.0, 10.0
LOSS_AUC_PASS, LOSS_AUC_FAIL = 55.0, 65.0
ASR_PASS, ASR_FAIL = 10.0, 25.0
UTILITY_DROP = 10.0
DAMAGE_DROP, NEAR_CHANCE = 10.0, 1.5



def _check(passed: bool, failed: bool, text: str) -> tuple[str, str]:
    status = NOT_FORGOTTEN if failed else FORGOTTEN if passed else INCONCLUSIVE
    tag = {FORGOTTEN: "pass", NOT_FORGOTTEN: "FAIL", INCONCLUSIVE: "unclear"}[status]
    return status, f"{tag}: {text}"


def _against_reference(m: dict, ref: dict) -> list[tuple[str, str]]:
    out = []
    for key, tol, fail, sign in (("forget_acc", REF_ACC_TOL, REF_ACC_FAIL, 1), ("forget_test_acc", REF_ACC_TOL,
                                 REF_ACC_FAIL, 1), ("mia_efficacy", REF_MIA_TOL, REF_MIA_FAIL, -1)):
        if isinstance(m.get(key), (int, float)) and isinstance(ref.get(key), (int, float)):
            d = m[key] - ref[key]
            side = "above" if d > 0 else "below"
            out.append(_check(abs(d) <= tol, sign * d > fail,
                              f"{label(key)} {m[key]:.2f} is {abs(d):.2f} points {side} the retrained model's "
                              f"{ref[key]:.2f} (pass within {tol:g}, fail beyond {fail:g} {side})"
                              if abs(d) > tol else
                              f"{label(key)} {m[key]:.2f} is within {tol:g} points of the retrained model's "
                              f"{ref[key]:.2f}"))
    return out


def _limit(value: float, passed: float, failed: float, text: str) -> tuple[str, str]:
    return _check(value <= passed, value > failed, f"{text} {value:.2f} (pass <= {passed:g}, fail > {failed:g})")


def _absolute(m: dict, scenario: str) -> list[tuple[str, str]]:
    out = []
    if scenario == "class":
        out += [_limit(m[k], CLASS_ACC_PASS, CLASS_ACC_FAIL, label(k)) for k in ("forget_test_acc", "forget_acc")
                if k in m]
    elif scenario in ("random", "indices"):
        if "forget_acc" in m and "test_acc" in m:
            out.append(_limit(m["forget_acc"] - m["test_acc"], SAMPLE_ACC_GAP_PASS, SAMPLE_ACC_GAP_FAIL,
                              "forget-set accuracy minus test accuracy"))
        if "mia_loss_auc" in m:
            ci = m.get("mia_loss_auc_ci")
            within = (f" (95% interval {ci[0]:.1f}-{ci[1]:.1f})" if isinstance(ci, list) and len(ci) == 2 else "")
            out.append(_limit(m["mia_loss_auc"], LOSS_AUC_PASS, LOSS_AUC_FAIL,
                              f"loss-MIA AUC, forget vs. unseen{within}"))
    elif scenario == "backdoor" and "asr" in m:
        out.append(_limit(m["asr"], ASR_PASS, ASR_FAIL, label("asr")))
    return out


def _utility(m: dict, base: dict, name: str) -> list[str]:
    return [f"{label(k)} fell to {m[k]:.2f} from the {name}'s {base[k]:.2f}"
            for k in ("retain_acc", "test_acc", "clean_acc")
            if k in m and isinstance(base.get(k), (int, float)) and base[k] - m[k] > UTILITY_DROP]


def _damage(m: dict, scenario: str, original: dict, ref: dict | None) -> list[str]:
    """Why the model no longer does its job (empty when it does): see DAMAGE_DROP and NEAR_CHANCE."""
    key = "clean_acc" if scenario == "backdoor" and "clean_acc" in m else "test_acc"
    if not isinstance(m.get(key), (int, float)):
        return []
    out = []
    classes = len((m.get("per_class_acc") or {}).get("test") or []) or None
    if classes and m[key] <= NEAR_CHANCE * 100.0 / classes:
        out.append(f"{label(key)} {m[key]:.2f} is near chance ({100.0 / classes:.1f} for {classes} classes): the "
                   f"model no longer classifies")
    base, name = (original, "original model") if isinstance(original.get(key), (int, float)) else \
        (ref or {}, "retrained model")
    if isinstance(base.get(key), (int, float)) and base[key] - m[key] > DAMAGE_DROP:
        out.append(f"{label(key)} {m[key]:.2f} is {base[key] - m[key]:.2f} points below the {name}'s "
                   f"{base[key]:.2f} (damaged beyond {DAMAGE_DROP:g})")
    return out


def verdict(metrics: dict, scenario: str | None) -> dict | None:
    """Judge a forget run's metrics (see the module docstring for the thresholds).

    Args:
        metrics: a metrics.json dict; `reference` (a retrained model's metrics) and `original` (the model
            before unlearning) are used when present.
        scenario: 'class', 'random', 'indices' or 'backdoor'; None (a plain training run) gives None.

    Returns:
        {"status": "forgotten" | "not forgotten" | "inconclusive" | "damaged", "basis": "reference" | "absolute",
         "reasons": [...], "warnings": [...]}, or None when there is nothing to judge.
    """
    if scenario not in ("class", "random", "indices", "backdoor"):
        return None
    ref = metrics.get("reference") if scenario != "backdoor" else None
    checks = _against_reference(metrics, ref) if ref else []
    basis = "reference" if checks else "absolute"
    if not checks:
        checks = _absolute(metrics, scenario)
    reasons = [r for _, r in checks]
    statuses = {s for s, _ in checks}
    if not checks:
        status = INCONCLUSIVE
        reasons = ["no metric to judge this scenario by"]
    elif NOT_FORGOTTEN in statuses:
        status = NOT_FORGOTTEN
    elif INCONCLUSIVE in statuses:
        status = INCONCLUSIVE
    else:
        status = FORGOTTEN
    original = metrics.get("original") or {}
    if status == FORGOTTEN and basis == "absolute" and scenario in ("random", "indices") and original:
        if all(s == FORGOTTEN for s, _ in _absolute(original, scenario)):
            status = INCONCLUSIVE
            reasons.append("the original model already passed these checks, so they cannot show that anything "
                           "was forgotten: compare against a retrained model (--retrain)")
    if metrics.get("agreement_with_original") == 100.0:
        status = UNCHANGED
        reasons = ["UNCHANGED: the model predicts the same class as the original model on every test, retain and "
                   "forget image: nothing was forgotten, whatever the other checks say"] + reasons
    damage = _damage(metrics, scenario, original, ref)
    if damage:
        status, reasons = DAMAGED, [f"DAMAGED: {d}" for d in damage] + reasons
    base, name = (ref, "retrained model") if ref else (original, "original model")
    warnings = _utility(metrics, base or {}, name) + _slower(metrics)
    return {"status": status, "basis": basis, "reasons": reasons, "warnings": warnings}


def _slower(m: dict) -> list[str]:
    """Unlearning exists to be cheaper than retraining: a run that was not says so (speed-up below 1). Without a
    retrained reference (every backdoor defence) the run is compared with the original's training time."""
    sp = m.get("speedup")
    if isinstance(sp, (int, float)):
        if not 0 < sp < 1:
            return []
        return [f"SLOWER THAN RETRAINING: this run took {1 / sp:.1f}x the retraining's time (speed-up {sp:.2f}x); "
                f"lower the method's epochs (--set epochs=N) or retrain instead"]
    st = m.get("speedup_over_training")
    if not isinstance(st, (int, float)) or not 0 < st < 1:
        return []
    return [f"SLOWER THAN TRAINING: this run took {ratio(1 / st)}x the time training the original model took; "
            f"lower the method's budget (--set epochs=N, or its iterations / steps)"]


def ratio(r: float) -> str:
    """A speed ratio for people: one decimal, two near 1, so that a run just slower never reads "1.0x"."""
    return f"{r:.1f}" if abs(r - 1) >= 0.05 else f"{r:.2f}"


def format_verdict(v: dict | None) -> str:
    """One headline line, then the reasons and warnings, for the terminal."""
    if not v:
        return ""
    basis = "the retrained reference" if v["basis"] == "reference" else "absolute thresholds"
    lines = [f"verdict: {v['status'].upper()} (judged against {basis})"]
    lines += [f"  - {r}" for r in v["reasons"]]
    lines += [f"  ! {w}" for w in v.get("warnings", [])]
    return "\n".join(lines)
