"""Distances between output distributions of two models."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def js_divergence(logits_p: Tensor, logits_q: Tensor) -> float:
    """Mean Jensen-Shannon divergence (natural log, in [0, ln 2]) between two models' softmax outputs."""
    p, q = F.softmax(logits_p.float(), 1), F.softmax(logits_q.float(), 1)
    m = 0.5 * (p + q)
    kl = lambda a, b: (a * (a.clamp_min(1e-12).log() - b.clamp_min(1e-12).log())).sum(1)  # noqa: E731
    return float((0.5 * kl(p, m) + 0.5 * kl(q, m)).mean())


def gap(a: float, b: float) -> float:
    return abs(float(a) - float(b))


def avg_gap(metrics: dict, reference: dict, keys: tuple[str, ...]) -> dict:
    """Per-key |metric - reference| and their mean over the keys present in both."""
    out = {k: gap(metrics[k], reference[k]) for k in keys if k in metrics and k in reference}
    if out:
        out["avg"] = sum(out.values()) / len(out)
    return out


__all__ = ["avg_gap", "gap", "js_divergence"]
