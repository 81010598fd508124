"""The generated object: the classifier head on the frozen features of a run's model.

A head is stored as one row per class, `[w_k (D values), b_k]`, shape (K, D+1): the last `nn.Linear`
written so that a class's weights and bias sit together. One row is one token of the hypernetwork
(G.pt's chunking within a layer, with the class as the natural chunk), and forgetting class c is, first of
all, a change of row c.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.bundle import DataBundle, Part
from ..data.splits import Split
from ..engine.evaluate import Predictions
from ..models.registry import last_linear


def get_head(model: nn.Module) -> Tensor:
    """The last linear layer as rows (K, D+1), float32 on the CPU."""
    lin = last_linear(model)
    if lin.bias is None:
        bias = torch.zeros(lin.out_features)
    else:
        bias = lin.bias.detach().float().cpu()
    return torch.cat([lin.weight.detach().float().cpu(), bias[:, None]], 1)


def set_head(model: nn.Module, rows: Tensor) -> nn.Module:
    """Write rows (K, D+1) into the model's last linear layer, in place; returns the model."""
    lin = last_linear(model)
    with torch.no_grad():
        lin.weight.copy_(rows[:, :-1].to(lin.weight))
        if lin.bias is not None:
            lin.bias.copy_(rows[:, -1].to(lin.bias))
    return model


@torch.no_grad()
def penultimate(model: nn.Module, part: Part, device: torch.device, batch_size: int = 512,
                desc: str = "features") -> Tensor:
    """The inputs of the last linear layer for every sample of `part` (eval mode), float32 on the CPU.

    Read with a forward hook, so any registered architecture whose last module is an `nn.Linear` works
    without a feature-extractor variant of it.
    """
    from ..engine.progress import progress

    lin = last_linear(model)
    got: list[Tensor] = []
    hook = lin.register_forward_hook(lambda _m, inp, _out: got.append(inp[0].detach().float().cpu()))
    model.eval()
    try:
        n_batches = (len(part) + batch_size - 1) // batch_size
        for x, _ in progress(part.batches(batch_size, device), desc, n_batches):
            model(x)
    finally:
        hook.remove()
    return torch.cat(got) if got else torch.zeros(0, lin.in_features)


def head_logits(rows: Tensor, feats: Tensor) -> Tensor:
    """Logits of one head (K, D+1) or a stack of heads (H, K, D+1) on features (N, D)."""
    return feats @ rows[..., :-1].transpose(-1, -2) + rows[..., -1].unsqueeze(-2)


@torch.no_grad()
def per_class_stats(heads: Tensor, feats: Tensor, y: Tensor, num_classes: int,
                    chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy and accuracy (%) per true class, for each head of a stack.

    Args:
        heads: (H, K, D+1) heads.
        feats, y: features (N, D) and labels (N,).
    Returns:
        (loss, acc), each (H, K); a class without samples gets 0.
    """
    h = heads.shape[0]
    loss_sum = torch.zeros(h, num_classes, dtype=torch.float64)
    hit_sum = torch.zeros(h, num_classes, dtype=torch.float64)
    for s in range(0, len(y), chunk):
        f, t = feats[s:s + chunk], y[s:s + chunk]
        logits = head_logits(heads, f)  # (H, n, K)
        ce = F.cross_entropy(logits.transpose(1, 2), t.expand(h, -1), reduction="none")  # (H, n)
        hit = (logits.argmax(-1) == t).double()
        loss_sum.index_add_(1, t, ce.double())
        hit_sum.index_add_(1, t, hit)
    count = torch.bincount(y, minlength=num_classes).double().clamp(min=1.0)
    loss = (loss_sum / count).float()
    acc = (hit_sum / count * 100.0).float()
    return loss, acc


def forget_retain(per_class: Tensor, counts: Tensor, forget_class: int) -> tuple[Tensor, Tensor]:
    """(forget-set value, retain-set value) from per-class values (..., K): the forgotten class's own
    value, and the sample-weighted mean of the other classes' (what a loss over the retain set gives)."""
    w = counts.double().clone()
    w[forget_class] = 0.0
    retain = (per_class.double() * w).sum(-1) / w.sum()
    return per_class[..., forget_class], retain.float()


@dataclass
class Features:
    """Frozen penultimate features of the training split (retain + forget) and of the test set.

    `idx_train` are the training-set indices of the rows of `train` (sorted), so any part of a split
    (retain, forget) can be looked up without another forward pass.
    """

    train: Tensor
    y_train: Tensor
    idx_train: Tensor
    test: Tensor
    y_test: Tensor
    num_classes: int

    def rows(self, idx: Tensor) -> Tensor:
        pos = torch.searchsorted(self.idx_train, idx)
        if len(idx) and (pos.max() >= len(self.idx_train) or not torch.equal(self.idx_train[pos], idx)):
            raise ValueError("indices outside the featurised training split")
        return self.train[pos]


def compute_features(model: nn.Module, bundle: DataBundle, train_idx: Tensor, device: torch.device) -> Features:
    """One forward pass over the training split and the test set."""
    idx = torch.sort(train_idx).values
    tr, te = bundle.train_part(idx, "none"), bundle.test_part()
    return Features(penultimate(model, tr, device, desc="features (train)"), tr.y.clone(), idx,
                    penultimate(model, te, device, desc="features (test)"), te.y.clone(), bundle.num_classes)


def feature_predictions(rows: Tensor, f: Features, bundle: DataBundle, split: Split) -> Predictions:
    """The `Predictions` that `engine.evaluate` would compute for the model with head `rows`, from cached
    features: the metrics are the same (up to float summation order) at the cost of a matrix product, which
    is what makes evaluating many sampled heads affordable."""
    p = Predictions.__new__(Predictions)  # skip __init__, which would run the whole model
    p.test = bundle.test_part()
    p.test_logits = head_logits(rows, f.test)
    p.retain = bundle.train_part(split.retain_idx, "none")
    p.retain_logits = head_logits(rows, f.rows(split.retain_idx))
    p.forget = bundle.train_part(split.forget_idx, "none") if len(split.forget_idx) else None
    p.forget_logits = head_logits(rows, f.rows(split.forget_idx)) if p.forget is not None else None
    return p
