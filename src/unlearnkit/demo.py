"""`unlearnkit demo`: the main job end to end on the embedded default (scikit-learn's digits).

Trains a small CNN, forgets one class with the best method available, retrains the reference in the same
run, and prints a before / after / reference table.
"""

from __future__ import annotations

from pathlib import Path

from .engine.progress import say
from .errors import UserError
from .methods.base import METHODS
from .metrics.registry import metric
from .pipeline import forget, train

PREFERENCE = ("adversarial", "salun", "scrub", "neggrad-plus", "finetune")
ROWS = ("forget_test_acc", "forget_acc", "test_acc", "retain_acc", "mia_efficacy", "seconds")  # labels: registry


def best_method() -> str:
    return next(m for m in PREFERENCE if m in METHODS)


def demo(out: str | Path = "unlearnkit-demo", forget_class: str = "3", overwrite: bool = False,
         method: str | None = None) -> dict:
    """Run the demo; returns the forget run's metrics (with `reference` and `gap`)."""
    import json

    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"output {out} already exists: choose another --out or pass --overwrite")
    method = method or best_method()
    _check(method, forget_class)
    say(f"[1/2] training cnn-small on digits -> {out / 'original'}")
    original = train("digits", "cnn-small", out / "original", epochs=30, batch_size=64, lr=0.05, seed=0,
                     overwrite=overwrite)
    say(f"[2/2] forgetting class {forget_class} with {method}, retraining the reference -> {out / 'forget'}")
    run = forget(original, method, out / "forget", forget_class=forget_class, retrain=True, seed=0,
                 overwrite=overwrite)
    return json.loads((run / "metrics.json").read_text())


def _check(method: str, forget_class: str) -> None:
    """Refuse a bad --method or --forget-class before the model is trained (a minute of work, then the error)."""
    from .data.datasets import load_dataset
    from .data.splits import parse_classes

    cls = METHODS.get(method)
    if "class" not in getattr(cls, "scenarios", frozenset({"class"})):
        raise UserError(f"method {method!r} does not forget classes: choose one of {', '.join(PREFERENCE)}")
    parse_classes(forget_class, load_dataset("digits").classes)


def format_table(metrics: dict, method: str) -> str:
    """Before / after / reference rows as aligned text."""
    orig, ref = metrics.get("original", {}), metrics.get("reference", {})
    head = f"{'':40s}{'before':>10s}{method:>14s}{'retrain':>10s}{'gap':>8s}"
    lines = [head, "-" * len(head)]
    for key in ROWS:
        if key not in metrics:
            continue
        m = metric(key)
        label = f"{m.label} (%)" if m.percent else m.label
        cells = [orig.get(key), metrics.get(key), ref.get(key), metrics.get("gap", {}).get(key)]
        txt = ["" if v is None else f"{v:.2f}" for v in cells]
        lines.append(f"{label:40s}{txt[0]:>10s}{txt[1]:>14s}{txt[2]:>10s}{txt[3]:>8s}")
    if "speedup" in metrics:
        lines.append(f"speed-up over retraining: {metrics['speedup']:.1f}x; average gap (UA, RA, TA, MIA): "
                     f"{metrics['gap'].get('avg', float('nan')):.2f}")
    return "\n".join(lines)
