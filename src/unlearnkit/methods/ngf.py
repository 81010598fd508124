"""`ngf`: Natural Gradient Fine-tuning (Karim et al. 2023) — purify a backdoored model with a natural-gradient step.

The final linear classifier is fine-tuned on the small clean set with a K-FAC natural-gradient step
(`engine/kfac.py`): a backdoored model sits in a sharp minimum, and a curvature-aware step reaches a smoother one
that plain SGD on that layer does not find. The paper's variant also adds a Fisher-weighted (EWC-form) penalty
towards the starting weights, (η/2)·Σ F_i (θ_i − θ0_i)², with the diagonal Fisher F computed once on the clean
set, to keep what the layer knows about clean data (its "clean distribution-aware regulariser"; the exact form is
inferred from the authors' later FIP code).

Two presets (`--set preset=...`; a setting given explicitly wins over its preset):

- `released` (the default): what the authors' released script runs. Its optimiser also moves every other layer
  with plain SGD (`all_layers=true`, BatchNorm in training mode); it means to use the true Fisher but, by a
  mismatched optimiser name, gathers statistics from the true labels (`fisher=empirical`); no regulariser
  (`eta=0`), lr 1e-3 dropped x0.1 at 40% of the steps.
- `paper`: the paper's method, the last layer alone (the rest frozen, BatchNorm statistics too), true Fisher,
  η = 1e-3, lr 0.01 dropped at 35% and 75%.

Why `released` is the default, chosen on held-out images (the held-out split outside the clean set, never the
test split; `benchmarks/probe_variants.py`, BENCHMARKS.md): on a CIFAR-10 vgg-small BadNets model it is the only
variant that removed the backdoor (probe ASR 94.6% -> 4.7% at 6.6 points of clean accuracy; `paper` 16.6% at
9.5), and it is better there on both counts. It is not better everywhere: on the Fashion-MNIST suite's resnet18
BadNets model neither removes it (`released` 91.0% at 2.3 points, `paper` 17.4% at 3.3; lr 3e-3 33.5%; all
layers at lr 0.01 2.2% at 11.7 points, and on the CIFAR model it collapsed). There `anp` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.bundle import Part
from ..engine.kfac import KFACLinear, LayerTap, with_bias_column
from ..engine.progress import progress
from ..errors import UserError
from ..models.registry import last_linear
from ..settings import apply_preset
from .base import Method, Unlearned, UnlearnTask, register_method

FISHERS = ("true", "empirical")
#: Values a preset gives to every setting left unset (None); see the module docstring for why `released` leads.
PRESETS: dict[str, dict] = {
    "released": {"all_layers": True, "fisher": "empirical", "eta": 0.0, "lr": 1e-3, "milestones": (0.4,)},
    "paper": {"all_layers": False, "fisher": "true", "eta": 1e-3, "lr": 0.01, "milestones": (0.35, 0.75)},
}
WATCH_EVERY = 100  # steps between two guard checkpoints (the released code's "epoch" of 100 batches)


def output_grads(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-sample gradients of the summed cross-entropy w.r.t. the logits: softmax − one-hot."""
    return torch.softmax(logits, 1) - F.one_hot(labels, logits.shape[1]).to(logits.dtype)


def fisher_labels(logits: Tensor, labels: Tensor, kind: str, generator: torch.Generator) -> Tensor:
    """Labels for the Fisher statistics: drawn from the model's softmax (true Fisher) or the given ones."""
    if kind == "empirical":
        return labels
    probs = torch.softmax(logits.detach().float(), 1).cpu()
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(labels.device)


@torch.no_grad()
def head_inputs(model: nn.Module, head: nn.Linear, data: Part, device: torch.device,
                batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """The inputs the head sees for every sample of `data` (model in eval mode), with their logits."""
    tap = LayerTap(head)
    feats, logits = [], []
    try:
        for x, _ in data.batches(batch_size, device):
            out = model(x)
            check_head_is_output(tap, out)
            feats.append(tap.input)
            logits.append(out)
    finally:
        tap.close()
    return torch.cat(feats), torch.cat(logits)


def check_head_is_output(tap: LayerTap, logits: Tensor) -> None:
    if tap.output is not logits:
        raise UserError("ngf tunes the final linear layer, but this model's output is not that layer's output: "
                        "use an architecture that ends in nn.Linear")


@torch.no_grad()
def diagonal_fisher(feats: Tensor, logits: Tensor, bias: bool) -> Tensor:
    """Diagonal true Fisher of a linear head's [W | b], in closed form, averaged over samples.

    For logits z = W a + b and y ~ softmax(z), E_y[(∂ log p(y)/∂z_k)²] = p_k (1 − p_k), so the Fisher of
    W_kj is E_x[p_k (1 − p_k) a_j²]: exact, and no per-sample backward passes.
    """
    a = with_bias_column(feats) if bias else feats
    p = torch.softmax(logits.to(a.dtype), 1)
    return (p * (1 - p)).T @ a.square() / len(a)


def head_params(head: nn.Linear) -> Tensor:
    """[W | b] as one matrix (a view-free copy), the layout of the Kronecker factors."""
    w = head.weight
    return torch.cat([w, head.bias[:, None]], 1) if head.bias is not None else w


@register_method("ngf")
class NGF(Method):
    """Natural-gradient fine-tuning on the clean set: the last linear layer, by default with the rest at plain SGD."""

    needs = frozenset({"clean"})
    scenarios = frozenset()
    backdoor_needs = frozenset({"clean"})
    summary = ("natural-gradient (K-FAC) fine-tuning on a clean set: the last layer natural, the rest SGD (the "
               "released code; preset=paper: the last layer alone, Fisher-regularised)")

    @dataclass
    class Config:
        """Settings left at None take the preset's value (see PRESETS)."""

        preset: str = "released"
        steps: int = 500
        batch_size: int = 128
        lr: float | None = None
        milestones: tuple[float, ...] | None = None  # fractions of `steps` where the learning rate drops x0.1
        momentum: float = 0.9
        weight_decay: float = 1e-4
        damping: float = 1e-3
        kl_clip: float = 1e-2
        stat_decay: float = 0.95
        cov_every: int = 10
        inv_every: int = 100
        ekfac: bool = False
        natural: bool = True  # false: plain SGD on the same layer (the paper's ablation)
        fisher: str | None = None  # true (model-sampled labels) | empirical (the true labels)
        eta: float | None = None  # weight of the Fisher (EWC-form) regulariser; 0 disables it
        reinit: bool = False  # Xavier re-initialisation of the classifier first (disables the regulariser)
        all_layers: bool | None = None  # true: the other layers move too, with plain SGD (the released code)
        augment: bool = True

        def validate(self) -> None:
            apply_preset(self, PRESETS)
            ok = (self.steps >= 1 and self.batch_size >= 1 and self.lr > 0 and self.damping > 0 and self.kl_clip > 0
                  and 0 <= self.stat_decay < 1 and self.cov_every >= 1 and self.inv_every >= 1 and self.eta >= 0
                  and self.momentum >= 0 and self.weight_decay >= 0 and all(0 < f < 1 for f in self.milestones))
            if not ok:
                raise UserError("ngf settings out of range: steps, batch_size, cov_every, inv_every >= 1; lr, "
                                "damping, kl_clip > 0; 0 <= stat_decay < 1; eta, momentum, weight_decay >= 0; "
                                "milestones in (0, 1)")
            if self.fisher not in FISHERS:
                raise UserError(f"--set fisher={self.fisher}: choose one of {', '.join(FISHERS)}")

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> Unlearned:
        c = self.config
        data = task.clean
        head = last_linear(model)
        own = {id(p) for p in head.parameters()}
        others = [p for p in model.parameters() if id(p) not in own]
        for p in others:
            p.requires_grad_(c.all_layers)
        model.eval()  # BatchNorm statistics stay as trained unless the other layers are tuned too
        if c.reinit:
            nn.init.xavier_uniform_(head.weight)
            if head.bias is not None:
                nn.init.zeros_(head.bias)
        cached = not c.all_layers and not (c.augment and data.augment != "none")
        feats, logits0 = head_inputs(model, head, data, task.device)
        anchor = fisher = None
        if c.eta > 0 and not c.reinit:
            fisher = diagonal_fisher(feats, logits0, head.bias is not None)
            anchor = head_params(head).detach().clone()
        batches = (_feature_batches(feats, data.y.to(task.device), c.batch_size, task.generator) if cached
                   else data.cycle(c.batch_size, task.device, task.generator, augment=c.augment))
        forward = head if cached else model

        pre = KFACLinear(head, c.damping, c.kl_clip, c.stat_decay, c.cov_every, c.inv_every, c.ekfac)
        groups = [{"params": list(head.parameters())}] + ([{"params": others}] if c.all_layers else [])
        opt = torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, round(f * c.steps)) for f in c.milestones], 0.1)
        tap = LayerTap(head)
        losses, nus = [], []
        try:
            model.train(c.all_layers)
            for step in progress(range(c.steps), "ngf", c.steps):
                x, y = next(batches)
                logits = forward(x)
                check_head_is_output(tap, logits)
                loss = F.cross_entropy(logits, y)
                if fisher is not None:
                    loss = loss + 0.5 * c.eta * (fisher * (head_params(head) - anchor).square()).sum()
                task.check(loss, "ngf", step)
                if c.natural and pre.wants_stats:
                    pre.update_stats(tap.input, output_grads(logits.detach(), fisher_labels(
                        logits, y, c.fisher, task.generator)))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if c.natural:
                    nus.append(pre.precondition_(opt.param_groups[0]["lr"]))
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                if (step + 1) % WATCH_EVERY == 0 or step + 1 == c.steps:
                    if not task.watch(model, f"step {step + 1}"):
                        break
                    model.train(c.all_layers)
        finally:
            tap.close()
            model.eval()
            for p in others:
                p.requires_grad_(True)
        return Unlearned(model, {
            "tuned": "all layers (last one natural-gradient)" if c.all_layers else "last linear layer",
            "head_params": sum(p.numel() for p in head.parameters()),
            "regulariser": fisher is not None, "cached_features": cached,
            "loss_first": round(losses[0], 5), "loss_last": round(sum(losses[-10:]) / len(losses[-10:]), 5),
            "kl_clip_share": round(sum(n < 1.0 for n in nus) / max(1, len(nus)), 4),
        })


def _feature_batches(feats: Tensor, labels: Tensor, batch_size: int,
                     generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled batches of cached head inputs (no augmentation, frozen body: one forward in all)."""
    n = len(labels)
    while True:
        order = torch.randperm(n, generator=generator).to(feats.device)
        for start in range(0, n, batch_size):
            sel = order[start:start + batch_size]
            yield feats[sel], labels[sel]
