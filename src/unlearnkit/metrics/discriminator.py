"""Discriminator audits: can a small network tell two sets of model outputs apart?

A discriminator (the MLP of the adversarial method: C -> 512 -> 256 -> 1) is fitted on one pair of output
sets and scored on another. The ROC-AUC says how separable the sets are (0.5: not at all); the score
summary (mean, std, share below 0.3 and 0.5) is the described system's own way to report it.

The audit's default features are label-agnostic (softmax probabilities sorted in decreasing order): an
auditor that compares confidence profiles, not class identities, so two models that both forgot a class
but send its images to different neighbours are judged on how they answer, not on which neighbour won.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Discriminator(nn.Module):
    """MLP `in_dim -> 512 -> ReLU -> 256 -> ReLU -> 1` returning a logit (the one sigmoid is in the loss)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def sorted_probs(logits: Tensor) -> Tensor:
    """Softmax probabilities sorted in decreasing order: a label-agnostic view of a model's answer."""
    return F.softmax(logits.float(), 1).sort(1, descending=True).values


def score_summary(scores: Tensor) -> dict:
    """The described evaluation's summary of discriminator scores: mean, std, share below 0.3 and 0.5 (%)."""
    s = scores.float()
    if len(s) == 0:
        return {"n": 0}
    return {"n": len(s), "mean": round(float(s.mean()), 4), "std": round(float(s.std()) if len(s) > 1 else 0.0, 4),
            "below_0.3": round(float((s < 0.3).float().mean() * 100), 2),
            "below_0.5": round(float((s < 0.5).float().mean() * 100), 2)}


def roc_auc(pos: Tensor, neg: Tensor) -> float:
    """ROC-AUC of scores, positives above negatives (ties count half); 0.5 when either side is empty."""
    if len(pos) == 0 or len(neg) == 0:
        return 0.5
    from sklearn.metrics import roc_auc_score

    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).numpy()
    return float(roc_auc_score(y, torch.cat([pos, neg]).double().numpy()))


def fit_discriminator(real: Tensor, fake: Tensor, seed: int = 0, steps: int = 300, batch_size: int = 256,
                      lr: float = 1e-3) -> Discriminator:
    """Fit a fresh discriminator, real -> 1 and fake -> 0, classes weighted to balance.

    Uses Adam (betas 0.5, 0.999) as the adversarial method does; seeded without touching the global RNG.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        d = Discriminator(real.shape[1])
    x = torch.cat([real, fake]).float()
    y = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
    w = torch.cat([torch.full((len(real),), 0.5 / max(1, len(real))),
                   torch.full((len(fake),), 0.5 / max(1, len(fake)))])
    opt = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    for _ in range(steps):
        idx = torch.multinomial(w, min(batch_size, len(x)), replacement=True, generator=gen)
        loss = F.binary_cross_entropy_with_logits(d(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return d.eval()


@torch.no_grad()
def scores(d: nn.Module, x: Tensor) -> Tensor:
    """Sigmoid scores of a discriminator (probability of 'real')."""
    return torch.sigmoid(d(x.float())) if len(x) else torch.zeros(0)


def audit(real_fit: Tensor, fake_fit: Tensor, real_test: Tensor, fake_test: Tensor, seed: int = 0) -> dict:
    """Fit a fresh discriminator on (real_fit, fake_fit); report its AUC and the score summary of fake_test."""
    d = fit_discriminator(real_fit, fake_fit, seed)
    s_real, s_fake = scores(d, real_test), scores(d, fake_test)
    return {"auc": round(roc_auc(s_real, s_fake), 4), "fake_score": score_summary(s_fake),
            "real_score": score_summary(s_real)}


__all__ = ["Discriminator", "audit", "fit_discriminator", "roc_auc", "score_summary", "scores", "sorted_probs"]
