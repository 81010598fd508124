"""The adversarial method's game, apart from the method itself (`adversarial.py`): the label-agnostic features the
discriminator reads (`profile`), the games played in turn until one forgets (`Plan`, `ATTEMPTS`), the record of
one game (`Attempt`), the collapse guard that keeps the last healthy state of a game (`Guard`), and the described
system's evaluation of the result (`described_evaluation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.bundle import Part
from ..engine.train import predict_logits
from ..errors import UserError
from ..metrics.accuracy import accuracy
from ..metrics.discriminator import Discriminator, audit, score_summary, scores, sorted_probs
from .base import EvalData, Unlearned

PROFILE_BOUND = 8.0


def forget_mask(num_classes: int, forget_classes: list[int], device: torch.device | None = None) -> Tensor:
    """True at the classes to forget: what the game hides from the discriminator."""
    mask = torch.zeros(num_classes, dtype=torch.bool, device=device)
    mask[forget_classes] = True
    return mask

if TYPE_CHECKING:
    from .adversarial import Adversarial


def profile(logits: Tensor, forget_mask: Tensor, temperature: float = 1.0, exclude: Tensor | None = None,
            bound: float = PROFILE_BOUND) -> Tensor:
    """C label-agnostic numbers for C classes (about -1 to 1):

    - the log-probabilities among the retained classes, sorted (all but the smallest): the confidence profile,
      blind to which class wins;
    - each forgotten class's log-odds against the retained classes: how much belief the class keeps;
    - the entropy among the retained classes over its maximum.

    Log-space on purpose: a confident model's probabilities saturate (p = 0.9999 moves by 1e-4 per unit
    of logit), which starves the generator of gradient; log-odds move one-for-one with the logits. Values
    are floored at -`bound` nats (e^-8: no visible belief), so a class pushed far enough is indistinguishable
    from one masked out. `exclude` (N x C, True = masked) gives the answer of a model without those classes.
    """
    z = logits.float() / temperature
    if exclude is not None:
        z = z.masked_fill(exclude, float("-inf"))
    zr = z[:, ~forget_mask]
    lse = zr.logsumexp(1, keepdim=True)
    logp = zr - lse
    n_r = zr.shape[1]
    kept = logp.sort(1, descending=True).values[:, : n_r - 1].clamp(-bound, 0.0)
    odds = (z[:, forget_mask] - lse).clamp_min(-bound)  # no upper clip: it would stop the gradient
    ent = -(logp.exp() * logp.clamp_min(-1e4)).sum(1, keepdim=True) / math.log(max(2, n_r))
    return torch.cat([kept / bound, odds / bound, ent], 1)


@dataclass(frozen=True)
class Plan:
    """One game's setting: how the body moves, a scale on the learning rates and on the step count."""

    label: str
    body: str = "auto"  # auto (slow only in long games) | slow (always at body_lr) | frozen (the head alone)
    lr_scale: float = 1.0
    steps_scale: float = 1.0
    long: bool = False  # at least `slow_body_from` steps

    def steps(self, base: int, c: Adversarial.Config) -> int:
        n = int(math.ceil(base * self.steps_scale))
        return max(n, c.slow_body_from) if self.long else n


#: The games `adversarial` plays, in order, until one forgets without costing the retained classes (issue 21:
#: on a small real-photo folder the automatic budget gave a 32-step game in which the whole network moved at
#: full speed and collapsed, and the guard handed the input model back). Each later game is safer: the head
#: alone (it forgets a class within a few dozen steps, cannot disturb the features, and costs little more than
#: forward passes), then a body that moves ten times slower, then lower rates for twice as long. On that
#: folder's CIFAR-10 counterpart (BENCHMARKS.md, suite `folders`) the head alone forgot the class at no cost
#: to held-out retain accuracy in 21 s, where the slow body forgot it at 3.6 points in 86 s.
ATTEMPTS: tuple[Plan, ...] = (
    Plan("as set"),
    Plan("head only", body="frozen", long=True),
    Plan("slow body", body="slow", long=True),
    Plan("lower lr", body="slow", lr_scale=1 / 3, steps_scale=2.0, long=True),
)


@dataclass
class Attempt:
    """What one game did: its numbers for metrics.json and, for the best game so far, its weights."""

    label: str
    steps: int
    steps_run: int
    stop_reason: str | None
    kept_step: int
    nan_only: bool
    guard_start: float
    guard_end: float
    left: float  # % of a fixed forget batch still recognised
    body_lr: float | None
    frozen_body: bool
    hist: dict
    seconds: float
    model_state: dict | None = None
    disc_state: dict | None = None

    @property
    def drop(self) -> float:
        return self.guard_start - self.guard_end

    def succeeded(self, c: Adversarial.Config) -> bool:
        """Forgot (at most `forgotten_at`% of the forget batch recognised) within `retain_tolerance` points of
        held-out retain accuracy, and no guard stop."""
        return self.stop_reason is None and self.left <= c.forgotten_at and self.drop <= c.retain_tolerance

    def why_not(self, c: Adversarial.Config) -> str:
        if self.stop_reason:
            return f"stopped ({self.stop_reason})"
        if self.left > c.forgotten_at:
            return f"left {self.left:.1f}% of a forget batch recognised"
        return f"cost {self.drop:.1f} points of held-out retain accuracy"

    def rank(self, c: Adversarial.Config) -> tuple:
        """The declared rule for keeping a game (lower is better): a NaN game with nothing healthy last; then
        games within `retain_tolerance` before those beyond it; then the least recognised forget batch; then the
        smaller retain cost."""
        return (self.nan_only, self.drop > c.retain_tolerance, round(self.left, 2), round(self.drop, 2))

    def summary(self) -> dict:
        return {"game": self.label, "steps": self.steps, "steps_run": self.steps_run,
                "stopped_early": self.stop_reason is not None, "stop_reason": self.stop_reason,
                "kept_step": self.kept_step, "forget_batch_acc": round(self.left, 2),
                "guard_retain_acc": {"start": round(self.guard_start, 2), "end": round(self.guard_end, 2)},
                "body_lr": self.body_lr, "frozen_body": self.frozen_body, "seconds": round(self.seconds, 2)}

    def figures(self) -> dict:
        """The chosen game's figures, under the keys metrics.json has always had."""
        h = self.hist
        return {"steps": self.steps, "steps_run": self.steps_run, "body_lr": self.body_lr,
                "stopped_early": self.stop_reason is not None, "stop_reason": self.stop_reason,
                "kept_step": self.kept_step, "final_d_loss": h["d_loss"][-1] if h["d_loss"] else None,
                "final_g_loss": h["g_adv"][-1] if h["g_adv"] else None,
                "guard_retain_acc": {"start": round(self.guard_start, 2), "end": round(self.guard_end, 2)},
                "forget_batch_acc": round(self.left, 2), "history": h}


def still_recognised(model: nn.Module, forget: Part, seed: int, device: torch.device, n: int = 256) -> float:
    """Accuracy on a fixed batch of forget images: what is left to forget (0 for a retrained model)."""
    pick = torch.randperm(len(forget), generator=torch.Generator().manual_seed(seed))[:n]
    batch = forget.subset(pick)
    return accuracy(predict_logits(model, batch, device), batch.y)


def hold_out(part: Part, n: int, generator: torch.Generator) -> tuple[Part, Part]:
    """Split off `n` retain samples (at most a tenth) that training never sees: the guard's held-out batch."""
    n = max(1, min(n, len(part) // 10))
    perm = torch.randperm(len(part), generator=generator)
    return part.subset(torch.sort(perm[n:]).values), part.subset(torch.sort(perm[:n]).values)


class Guard:
    """Stops training on NaN or collapse and keeps the last healthy state.

    Collapse = accuracy on a held-out retain batch more than `drop` points below its value before training.
    The state kept is the latest one that passed a check (the most-unlearned healthy state); a `companion`
    (the discriminator) is kept from the same step, so the saved pair still belongs together.
    """

    def __init__(self, model: nn.Module, held: Part, drop: float, device: torch.device,
                 companion: nn.Module | None = None) -> None:
        self.held, self.drop, self.device, self.companion = held, drop, device, companion
        self.start = self.accuracy(model)
        self.last_acc = self.start
        self.best = self._snapshot(model)
        self.best_step = 0
        self.stop_reason: str | None = None

    @torch.no_grad()
    def accuracy(self, model: nn.Module) -> float:
        return accuracy(predict_logits(model, self.held, self.device), self.held.y)

    def check(self, model: nn.Module, step: int) -> bool:
        finite = all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
        self.last_acc = self.accuracy(model) if finite else float("nan")
        if not finite:
            return self.fail(f"weights became NaN/inf by step {step}")
        if self.last_acc < self.start - self.drop:
            return self.fail(f"collapse: held-out retain accuracy {self.last_acc:.1f}% fell more than "
                             f"{self.drop:g} points below {self.start:.1f}% at step {step}")
        self.best, self.best_step = self._snapshot(model), step
        return True

    def fail(self, reason: str) -> bool:
        self.stop_reason = reason
        return False

    def _snapshot(self, model: nn.Module) -> list[dict[str, Tensor]]:
        mods = [model] + ([self.companion] if self.companion is not None else [])
        return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in mods]

    def restore(self, model: nn.Module) -> None:
        model.load_state_dict(self.best[0])
        if self.companion is not None:
            self.companion.load_state_dict(self.best[1])


# ---------------------------------------------------------------------- the described evaluation, repaired

def described_evaluation(features: Callable[[Tensor, Tensor], Tensor], result: Unlearned,
                         reference: nn.Module | None, data: EvalData, device: torch.device) -> dict:
    """The described system's evaluation, repaired: the game's own discriminator (an artifact of the result) on
    the forget set's and the forgotten classes' test outputs, misclassification, sample predictions; and fresh
    discriminators fitted on the held-out split, against the reference. `features`: what the discriminator reads."""
    p, bundle, split = data.predictions, data.bundle, data.split
    if p is None or "discriminator" not in result.artifacts or p.forget is None:
        return {}
    fmask = forget_mask(bundle.num_classes, split.forget_classes)
    forgot = torch.isin(p.test.y, torch.tensor(split.forget_classes))
    lf_test = p.test_logits[forgot]
    disc = Discriminator(bundle.num_classes)
    disc.load_state_dict(result.artifacts["discriminator"])
    disc.eval()
    out: dict = {
        "train_disc": {"forget_train": score_summary(scores(disc, features(p.forget_logits, fmask))),
                       "forget_test": score_summary(scores(disc, features(lf_test, fmask)))},
        "misclassified_forget": round(100 - accuracy(p.forget_logits, p.forget.y), 2),
        "misclassified_forget_test": round(100 - accuracy(lf_test, p.test.y[forgot]), 2),
        "retain_acc": round(accuracy(p.retain_logits, p.retain.y), 2),
        "samples": _samples(features, p.forget_logits, p.forget, bundle.classes, disc, fmask),
    }
    fresh = fresh_audits(result.model, reference, data, device)
    if fresh:
        out["fresh_disc"] = fresh
    return out

def _samples(features: Callable[[Tensor, Tensor], Tensor], logits: Tensor, part: Part, classes: list[str],
             disc: Discriminator, fmask: Tensor, n: int = 8) -> list[dict]:
    """Predicted class and top-3 probabilities of a few forget images (evenly spaced, deterministic)."""
    pick = torch.linspace(0, len(part) - 1, min(n, len(part))).round().long()
    prob = F.softmax(logits[pick].float(), 1)
    d = scores(disc, features(logits[pick], fmask))
    rows = []
    for j, i in enumerate(pick.tolist()):
        q, k = prob[j].topk(min(3, prob.shape[1]))
        rows.append({"train_index": int(part.idx[i]), "true": classes[int(part.y[i])],
                     "predicted": classes[int(k[0])], "disc_score": round(float(d[j]), 4),
                     "top3": [[classes[int(c)], round(float(v), 4)] for v, c in zip(q, k, strict=True)]})
    return rows

def fresh_audits(model: nn.Module, reference: nn.Module | None, data: EvalData, device: torch.device) -> dict:
    """Fresh discriminators fitted on the held-out split, scored on the test split.

    `unlearned` / `reference`: per model, retained-class vs forgotten-class outputs (the described score,
    from a discriminator that had no part in training). `vs_reference`: the unlearned model's outputs on
    forgotten-class images vs the retrained model's: AUC 0.5 means they cannot be told apart.
    """
    bundle, split, p = data.bundle, data.split, data.predictions
    val = bundle.train_part(split.val_idx, "none")
    classes = torch.tensor(split.forget_classes)
    v_forgot, t_forgot = torch.isin(val.y, classes), torch.isin(p.test.y, classes)
    if len(val) == 0 or not v_forgot.any() or v_forgot.all():
        return {"skipped": "the held-out split has no images of both forgotten and retained classes"}

    def per_model(val_logits: Tensor, test_logits: Tensor) -> dict:
        v, t = sorted_probs(val_logits), sorted_probs(test_logits)
        return audit(v[~v_forgot], v[v_forgot], t[~t_forgot], t[t_forgot], data.seed)

    v_u = predict_logits(model, val, device)
    out = {"features": "sorted softmax probabilities", "fit_on": "held-out split", "scored_on": "test split",
           "unlearned": per_model(v_u, p.test_logits)}
    if reference is not None and data.reference_predictions is not None:
        v_r = predict_logits(reference, val, device)
        t_r = data.reference_predictions.test_logits
        out["reference"] = per_model(v_r, t_r)
        out["auc_gap"] = round(abs(out["unlearned"]["auc"] - out["reference"]["auc"]), 4)
        vs = audit(sorted_probs(v_r[v_forgot]), sorted_probs(v_u[v_forgot]), sorted_probs(t_r[t_forgot]),
                   sorted_probs(p.test_logits[t_forgot]), data.seed)
        out["vs_reference"] = {"auc": vs["auc"], "gap_from_chance": round(abs(vs["auc"] - 0.5), 4)}
    return out


def load_discriminator(path: Path, num_classes: int) -> Discriminator | None:
    """The discriminator a run saved (None when it has none); a damaged file is a one-line `UserError`."""
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    disc = Discriminator(num_classes)
    try:
        disc.load_state_dict(load_file(str(path)))
    except Exception as err:  # noqa: BLE001 - any defect of the user's file: truncated, wrong keys or shapes
        raise UserError(f"{path} is not this run's discriminator ({type(err).__name__}): restore it from the "
                        f"run's original copy, or delete it to predict without discriminator scores") from err
    return disc
