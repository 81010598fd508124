"""The report's figures: per-class accuracy, training curves and confusion matrices from metrics.json; membership,
backdoor, sample and triggered-image figures recomputed from the runs' models (`Evidence`); a method's own
diagnostics. Each function returns an HTML fragment (or "" when its run has nothing to show).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..data.bundle import DataBundle, Part
from ..engine.device import get_device
from ..engine.rundir import Run
from ..engine.runlog import curves, flat_scalars
from ..engine.train import predict_logits
from ..metrics.mia import true_label_confidence
from ..runmeta import RunMeta
from . import plots
from .format import e, figure, img

MAX_PER_PART = 2000  # samples per part in the histograms: the shape, at a bounded cost on big datasets
SAMPLES = 8


# --------------------------------------------------------------------------- figures from metrics.json

def per_class(meta: dict, m: dict) -> str:
    meta, series = RunMeta.of(meta), {}
    for name, d in (("before", m.get("original", {})), ("after" if meta.is_forget else "this model",
                                                         m), ("retrained", m.get("reference", {}))):
        v = d.get("per_class_acc", {}).get("test")
        if v:
            series[name] = v
    if not series:
        return ""
    spec = meta.forget_spec
    forgot = list(spec.classes) if spec is not None and meta.scenario == "class" else []
    uri = plots.per_class_accuracy(meta.classes, series, forgot)
    note = " Forgotten classes are shaded: a good method brings them to the retrained model's level." if forgot \
        else ""
    return figure("Per-class test accuracy", uri, "Test accuracy of each class." + note, wide=True)


def curves_section(run: Run) -> str:
    named = dict(curves(run.metrics))
    parent = run.meta.parent
    if parent and (Path(parent) / "metrics.json").is_file():
        try:
            pm = json.loads((Path(parent) / "metrics.json").read_text())
            named.update({f"input model: {k}": v for k, v in curves(pm).items()})
        except json.JSONDecodeError:
            pass
    if not named:
        return ""
    return figure("Training curves", plots.curves(named),
                   "Every curve recorded in metrics.json (losses per epoch, and a method's own figures per round), "
                   "plus the training of the input model.", wide=True)


def confusions(meta: dict, m: dict, related: dict[str, Run]) -> str:
    meta, mats = RunMeta.of(meta), {}
    before = related.get("before")
    if before is not None and "confusion_test" in before.metrics:
        mats["before"] = before.metrics["confusion_test"]
    if "confusion_test" in m:
        mats["after" if meta.is_forget else "this model"] = m["confusion_test"]
    if "confusion_test" in m.get("reference", {}):
        mats["retrained"] = m["reference"]["confusion_test"]
    if not mats:
        return ""
    return figure("Confusion matrices (test set)", plots.confusion_matrices(mats, meta.classes),
                   "Rows: true class, columns: predicted class, shaded by the share of the row; numbers are counts.",
                   wide=True)


# --------------------------------------------------------------------------- figures from predictions

class Evidence:
    """What the figures need beyond metrics.json: the data, the split and the models, rebuilt from the runs."""

    def __init__(self, run: Run, related: dict[str, Run], data_root: str | Path | None) -> None:
        from ..rundata import load_run_data, split_of

        self.meta = run.meta
        self.bundle: DataBundle = load_run_data(run.meta, data_root)
        self.split = split_of(run.meta, self.bundle, run.meta.forget_spec)
        self.device = get_device()
        self.models: dict[str, nn.Module] = {}
        if "before" in related:
            self.models["before"] = related["before"].build_model(self.device)
        self.models["after" if run.meta.is_forget else "this model"] = run.build_model(self.device)
        if "retrained" in related:
            self.models["retrained"] = related["retrained"].build_model(self.device)
        self.gen = torch.Generator().manual_seed(run.meta.seed)

    def pick(self, idx: Tensor, k: int) -> Tensor:
        if len(idx) <= k:
            return idx
        return torch.sort(idx[torch.randperm(len(idx), generator=self.gen)[:k]]).values

    def test_part(self, mask: Tensor, k: int) -> Part:
        return self.bundle.test_part(torch.zeros_like(mask).index_fill_(0, self.pick(mask.nonzero().flatten(), k),
                                                                        True))

    @property
    def scenario(self) -> str | None:
        return self.meta.scenario


def membership(ev: Evidence) -> str:
    if ev.scenario == "backdoor":
        return ""
    y_test = ev.bundle.y_test
    parts: dict[str, Part] = {}
    if len(ev.split.forget_idx):
        parts["forget"] = ev.bundle.train_part(ev.pick(ev.split.forget_idx, MAX_PER_PART), "none")
    parts["retain"] = ev.bundle.train_part(ev.pick(ev.split.retain_idx, MAX_PER_PART), "none")
    forgot = torch.isin(y_test, torch.tensor(ev.split.forget_classes, dtype=torch.long))
    parts["test"] = ev.test_part(~forgot, MAX_PER_PART)
    if forgot.any():
        parts["test, forgotten classes"] = ev.test_part(forgot, MAX_PER_PART)
    panels = {name: {p: true_label_confidence(predict_logits(model, part, ev.device), part.y)
                     for p, part in parts.items()} for name, model in ev.models.items()}
    if "forget" in parts:
        cap = ("Softmax confidence in the true label. Before unlearning the forget set looks like the retain set "
               "(members); after, it should look as it does for the retrained model, which never saw it.")
    else:
        cap = ("Softmax confidence in the true label on training (retain) and test samples: the wider apart, the "
               "easier a membership-inference attack.")
    return figure("Membership-inference picture", plots.confidence_histograms(panels), cap, wide=True)


def backdoor(m: dict) -> str:
    keys = [("clean_acc", "clean accuracy"), ("asr", "attack success rate"), ("robust_acc", "robust accuracy")]
    if not any(k in m for k, _ in keys):
        return ""
    after = "after" if m.get("original") else "this model"
    groups = {label: {n: d[k] for n, d in (("before", m.get("original", {})), (after, m),
                                           ("retrained", m.get("reference", {}))) if k in d}
              for k, label in keys if k in m}
    return figure("Backdoor", plots.grouped_bars(groups, "percent"),
                   "Clean accuracy should stay; the attack success rate (triggered test images classified as the "
                   "target) should fall to the level of a model that never saw the poison.", wide=True)


def _top(logits: Tensor, classes: list[str], k: int = 3) -> list[tuple[str, float]]:
    p = torch.softmax(logits.float(), 0)
    v, i = p.topk(min(k, len(classes)))
    return [(classes[j], float(q)) for q, j in zip(v, i, strict=True)]


def _prediction_list(logits: Tensor, classes: list[str], truth: int) -> str:
    items = []
    for name, prob in _top(logits, classes):
        hit = " hit" if name == classes[truth] else ""
        items.append(f'<li class="{hit.strip()}"><span class="name">{e(name)}</span>'
                     f'<span class="bar"><i style="width:{100 * prob:.0f}%"></i></span>'
                     f'<span class="p">{100 * prob:.0f}%</span></li>')
    return "<ol>" + "".join(items) + "</ol>"


def _sample_cards(ev: Evidence, part: Part, images: np.ndarray, titles: list[str]) -> str:
    classes = ev.meta.classes
    main = "after" if "after" in ev.models else "this model"
    logits = {n: predict_logits(mod, part, ev.device) for n, mod in ev.models.items()}
    cards = []
    for i in range(len(part)):
        y = int(part.y[i])
        others = " · ".join(f"{n}: <b>{e(_top(lg[i], classes, 1)[0][0])}</b>"
                            for n, lg in logits.items() if n != main)
        cards.append(f'<figure class="sample">{img(plots.image_uri(images[i]), titles[i], "thumb")}'
                     f"<figcaption><div class='id'>{e(titles[i])}</div><div>true <b>{e(classes[y])}</b></div>"
                     f"{_prediction_list(logits[main][i], classes, y)}<div class='others'>{others}</div>"
                     f"</figcaption></figure>")
    return "".join(cards)


def samples(ev: Evidence) -> str:
    if len(ev.split.forget_idx) and ev.scenario != "backdoor":
        part = ev.bundle.train_part(ev.pick(ev.split.forget_idx, SAMPLES), "none")
        title, what = "Forget samples", "forget"
    else:
        part = ev.test_part(torch.ones(len(ev.bundle.y_test), dtype=torch.bool), SAMPLES)
        title, what = "Test samples", "test"
    cards = _sample_cards(ev, part, part.x.numpy(), [f"{what} #{int(i)}" for i in part.idx])
    main = "after" if "after" in ev.models else "this model"
    return (f'<div class="panel wide"><h3>{title}, with the top-3 predictions of the model ({e(main)})</h3>'
            f'<div class="samples">{cards}</div><p class="caption">Green: the true class. Below each: the top '
            f"prediction of the other models.</p></div>")


def triggered(ev: Evidence) -> str:
    """Clean test images and their triggered versions, with predictions (runs with a planted backdoor)."""
    poison = ev.meta.poison
    trigger = trigger_fn(poison, ev.device) if poison else None
    if trigger is None:
        return ""
    label_map = poison.get("label_map", {})
    all_to_all = label_map.get("kind") == "all-to-all"
    target = label_map.get("target")
    victims = torch.ones_like(ev.bundle.y_test, dtype=torch.bool) if all_to_all or target is None \
        else ev.bundle.y_test != int(target)
    part = ev.test_part(victims, SAMPLES)
    trig = Part(trigger(part.x), part.y, part.idx, "none")
    clean = _sample_cards(ev, part, part.x.numpy(), [f"clean #{int(i)}" for i in part.idx])
    triggered = _sample_cards(ev, trig, trig.x.numpy(), [f"triggered #{int(i)}" for i in part.idx])
    goal = "y → y+1" if all_to_all else f"target “{ev.meta.classes[int(target)]}”" if target is not None else ""
    return (f'<div class="panel wide"><h3>Triggered examples: {e(str(poison.get("attack", "?")))} attack, '
            f"{e(goal)}</h3><div class='samples'>{clean}</div><div class='samples'>{triggered}</div>"
            f"<p class='caption'>Top row: clean test images; bottom row: the same images with the trigger. A model "
            f"without the backdoor predicts both rows alike.</p></div>")


def diagnostics(meta: dict, m: dict) -> str:
    """The method's own figures (metrics.json under its name), folded away and labelled as diagnostics.

    Why apart from the verdict: these say how the method ran (a game's losses, the adversarial method's
    discriminator scores, a guard's checkpoints), not whether the model forgot. Issue 22 measured the
    discriminator score that the described system took as its success indicator: it scored a run that changed
    nothing best (mean 0.477) and the only good run worst (0.500).
    """
    name = RunMeta.of(meta).method_name
    figures = m.get(name) if name else None
    if not isinstance(figures, dict):
        return ""
    flat = {k: v for k, v in flat_scalars(figures).items() if not k.startswith(("samples/", "history/"))}
    if not flat:
        return ""
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(f'{v:g}')}</td></tr>" for k, v in list(flat.items())[:80])
    return (f'<details class="panel wide"><summary>Method diagnostics ({e(name)}): how it ran, not evidence '
            f'of forgetting</summary><p class="caption">The method\'s own figures from metrics.json. They describe '
            f"the run (losses, budgets, the guard, the adversarial method's discriminator scores); whether the "
            f"model forgot is judged only by the measured metrics and the verdict above. A discriminator score "
            f"near 0.5 is reached by a run that changed nothing as easily as by one that forgot.</p>"
            f'<table class="metrics">{rows}</table></details>')


def trigger_fn(poison: dict, device: torch.device):
    """uint8 images -> triggered uint8 images for a poison spec, through `unlearnkit.attacks` (None without it)."""
    from .. import attacks

    build = getattr(attacks, "build_trigger", None)
    if build is None:
        return None
    from ..attacks.base import stamp

    trigger = build(poison)
    return lambda x: stamp(trigger, x, device)  # the exact path that poisoned the training images
