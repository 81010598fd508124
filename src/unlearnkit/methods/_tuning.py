"""Hyper-parameter selection on the held-out validation split — never on the test set.

Approximate unlearning methods are sensitive to their learning rate (gradient ascent famously so), and the
papers tune them per dataset. Here each method declares a tiny `search_space` (two to four points around its
paper's value); `--set tune=true` runs every point on a copy of the model, scores it on data the defender may
use — the held-out validation split (carved from the training set before training, never trained on), the
forget set and the retain set — and keeps the best. The chosen values come back as the result's config, so they
land in meta.json; every trial's score lands in metrics.json under the method's name.

The objective (lower is better, in accuracy points, like the average gap it stands in for):

- class forgetting: the retrained model cannot recognise the forgotten classes and keeps the others, so
  score = max(forget-set acc, val acc on forgotten classes) + drop of val acc on the retained classes.
- sample forgetting: the retrained model treats forget samples like unseen ones, so
  score = |forget-set acc - val acc| + drop of val acc + |MIA share of forget - MIA share of held-out val|,
  the last term being the MIA-efficacy of metrics.json with the validation split in the test set's place
  (an SVC on true-label confidence, retain = members, one half of val = non-members, scored on the forget
  set and on the other half of val, which is what a retrained model's forget set would look like).

Each trial is re-seeded exactly as an untuned run is, so re-running with the chosen values and tune=false
reproduces the selected model; its own wall time is kept (`chosen_seconds`), so a benchmark can report the
cost of unlearning with the chosen setting apart from the cost of choosing it (the run's `seconds`). Each
trial also records its CPU time, which a shared or paused machine distorts far less than wall time.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..engine.progress import say
from ..engine.seed import seed_everything
from ..engine.train import predict_logits
from ..errors import UserError
from ..metrics import accuracy, true_label_confidence
from .base import SAMPLE_SCENARIOS, Method, Unlearned, UnlearnTask


@dataclass
class TunableConfig:
    """Base of every baseline's Config: `tune=true` selects the method's search space on the val split."""

    tune: bool = False

    def validate(self) -> None:
        """Reject impossible settings before any work (called by `make_config`), naming the fix."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or v is None:
                continue
            bad = ((f.name in ("lr", "temperature", "batch_size") or f.name.endswith("_lr")) and v <= 0) or \
                  ((f.name == "epochs" or f.name.endswith("_steps") or f.name.endswith("_epochs")) and v < 0) or \
                  ((f.name.endswith("fraction") or f.name.endswith("ratio")) and not 0 <= v <= 1) or \
                  (f.name == "optimizer" and v not in ("sgd", "adam"))
            if bad:
                raise UserError(f"--set {f.name}={v} is out of range: use a positive learning rate / batch size, "
                                f"epochs >= 0, fractions in [0, 1], optimizer sgd or adam")


class TunableMethod(Method):
    """A method with a declared `search_space` and a `run(model, task)` that does the unlearning."""

    search_space: ClassVar[dict[str, tuple]] = {}

    def needs_for(self, scenario: str) -> frozenset[str]:
        needs = super().needs_for(scenario)
        if not getattr(self.config, "tune", False):
            return needs
        # Scoring a trial reads the held-out split and the forget set (the defender's own deletion request),
        # also for methods that train on the retain set alone (l1-sparse); for sample forgetting, its MIA term
        # also reads retain samples as the members (also for methods that train on the forget set alone).
        return needs | {"val", "forget"} | ({"retain"} if scenario in SAMPLE_SCENARIOS else set())

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        if not getattr(self.config, "tune", False) or not self.search_space:
            return Unlearned.of(self.run(model, task))
        return self._select(model, task)

    def run(self, model: nn.Module, task: UnlearnTask) -> Unlearned | nn.Module:
        raise NotImplementedError

    def _select(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        """Each point of the search space runs as its own instance on a copy of the model (this one keeps its
        settings); the best comes back with the settings it used as the result's `config`."""
        ref = val_stats(model, task)
        best: tuple[float, Unlearned, float] | None = None
        trials = []
        for point in grid(self.search_space):
            config = dataclasses.replace(self.config, **point)
            trial = dataclasses.replace(task, generator=seed_everything(task.seed))
            t0, c0 = time.perf_counter(), time.process_time()
            out = Unlearned.of(type(self)(config).run(copy.deepcopy(model), trial))
            out.config = config
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            stats = val_stats(out.model, trial)
            score = objective(stats, ref, task.scenario)
            trials.append({**point, **{k: round(v, 4) for k, v in stats.items()}, "score": round(score, 4),
                           "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)})
            say(f"  {self.name} {point}: validation score {score:.2f} ({seconds:.1f}s)")
            if best is None or score < best[0]:
                best = (score, out, seconds)
        assert best is not None
        _, out, seconds = best
        out.figures["selection"] = {"split": "val", "objective": OBJECTIVES[task.scenario],
                                    "original": {k: round(v, 4) for k, v in ref.items()},
                                    "chosen": {k: getattr(out.config, k) for k in self.search_space},
                                    "chosen_seconds": round(seconds, 3), "trials": trials}
        return out


OBJECTIVES = {
    "class": "max(forget_acc, val_forget_acc) + max(0, original val_keep_acc - val_keep_acc)",
    "random": "|forget_acc - val_acc| + max(0, original val_acc - val_acc) + |mia_forget - mia_val|",
}
OBJECTIVES["indices"] = OBJECTIVES["random"]


def grid(space: dict[str, tuple]) -> list[dict[str, Any]]:
    """Every combination of the search space's values, in declaration order."""
    keys = list(space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(space[k] for k in keys))]


def val_stats(model: nn.Module, task: UnlearnTask) -> dict[str, float]:
    """Accuracies (and, for sample forgetting, a held-out MIA share) a defender can compute without the test set."""
    val = task.val
    logits = predict_logits(model, val, task.device)
    f_logits = predict_logits(model, task.forget, task.device)
    stats = {"forget_acc": accuracy(f_logits, task.forget.y)}
    if task.scenario == "class":
        gone = torch.isin(val.y, torch.tensor(task.forget_classes, dtype=torch.long))
        stats["val_keep_acc"] = accuracy(logits[~gone], val.y[~gone])
        stats["val_forget_acc"] = accuracy(logits[gone], val.y[gone]) if gone.any() else 0.0
        return stats
    stats["val_acc"] = accuracy(logits, val.y)
    stats.update(_mia_shares(model, task, logits, f_logits))
    return stats


def _mia_shares(model: nn.Module, task: UnlearnTask, val_logits: Tensor, f_logits: Tensor) -> dict[str, float]:
    """Share (%) predicted non-member, for the forget set and for held-out val samples, by the metrics' SVC."""
    from sklearn.svm import SVC

    half = len(task.val) // 2
    if half < 2:
        return {}
    members = task.retain.subset(torch.arange(min(half, len(task.retain))))
    conf_m = true_label_confidence(predict_logits(model, members, task.device), members.y)
    conf_v = true_label_confidence(val_logits, task.val.y)
    conf_f = true_label_confidence(f_logits, task.forget.y)
    x = np.concatenate([conf_m, conf_v[:half]]).reshape(-1, 1)
    t = np.concatenate([np.ones(len(conf_m)), np.zeros(half)])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, t)
    share = lambda c: float((1.0 - clf.predict(c.reshape(-1, 1))).mean() * 100.0)  # noqa: E731
    return {"mia_forget": share(conf_f), "mia_val": share(conf_v[half:])}


def objective(stats: dict[str, float], ref: dict[str, float], scenario: str) -> float:
    """Lower is better; see the module docstring."""
    if scenario == "class":
        forgot = max(stats["forget_acc"], stats["val_forget_acc"])
        return forgot + max(0.0, ref["val_keep_acc"] - stats["val_keep_acc"])
    score = abs(stats["forget_acc"] - stats["val_acc"]) + max(0.0, ref["val_acc"] - stats["val_acc"])
    if "mia_forget" in stats:
        score += abs(stats["mia_forget"] - stats["mia_val"])
    return score
