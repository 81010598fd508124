"""K-FAC / EKFAC natural-gradient preconditioning of one `nn.Linear` layer.

For a linear layer the Fisher block of its parameters [W | b] is approximated by a Kronecker product
G ⊗ A (Martens & Grosse 2015), with A = E[a aᵀ] over layer inputs (a bias column of ones appended) and
G = E[g gᵀ] over per-sample gradients w.r.t. the layer's outputs. With eigendecompositions A = Q_A Λ_A Q_Aᵀ
and G = Q_G Λ_G Q_Gᵀ the damped inverse applied to a gradient matrix ∇ (out x in+1) is

    Q_G [(Q_Gᵀ ∇ Q_A) / (λ_G λ_Aᵀ + damping)] Q_Aᵀ  =  (G ⊗ A + damping·I)⁻¹ vec(∇),

and EKFAC (George et al. 2018) replaces λ_G λ_Aᵀ by a running average of the per-sample gradients' second
moments in that eigenbasis. The step is then scaled down so that lr²·vᵀ∇ stays under a KL budget
(`kl_clip`), as in the K-FAC code the NGF authors built on; an ordinary SGD optimiser applies it.

Why our own ~100 lines and not a library: `kfac-pytorch` is not on PyPI, `nngeometry` computes Fisher
matrices from whole data loaders but is not an optimiser (no running factors, no periodic
eigendecomposition, no KL clipping), and `curvlinops`/`backpack` give curvature operators, not steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def with_bias_column(a: Tensor) -> Tensor:
    """Append a column of ones, so the bias is the last column of the layer's [W | b] matrix."""
    return torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)


def precondition(grad: Tensor, q_a: Tensor, q_g: Tensor, scale: Tensor, damping: float) -> Tensor:
    """Q_G [(Q_Gᵀ grad Q_A) / (scale + damping)] Q_Aᵀ, where K-FAC's scale is λ_G λ_Aᵀ."""
    return q_g @ ((q_g.T @ grad @ q_a) / (scale + damping)) @ q_a.T


class LayerTap:
    """A forward hook keeping the last input and output of a layer (inputs flattened to rows)."""

    def __init__(self, layer: nn.Module) -> None:
        self.input: Tensor | None = None
        self.output: Tensor | None = None
        self._handle = layer.register_forward_hook(self._hook)

    def _hook(self, _module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self.input = inputs[0].detach().reshape(-1, inputs[0].shape[-1])
        self.output = output

    def close(self) -> None:
        self._handle.remove()


class KFACLinear:
    """Natural-gradient preconditioner of one linear layer; pair it with `torch.optim.SGD`.

    Per step: `update_stats(a, g)` when `wants_stats` (every `cov_every` steps), `loss.backward()`, then
    `precondition_(lr)` rewrites the layer's `.grad` in place, then the SGD optimiser steps. Factors are
    exponential moving averages (decay `stat_decay`) started from the first batch; their eigenbases are
    recomputed every `inv_every` steps.

    Args:
        layer: the `nn.Linear` to precondition (with or without bias).
        damping: added to the eigenvalue products (Tikhonov damping of G ⊗ A).
        kl_clip: upper bound on lr²·vᵀ∇ (the step's predicted KL change); `inf` disables clipping.
        ekfac: re-estimate the eigenvalues in the Kronecker eigenbasis (EKFAC) between decompositions.
    """

    def __init__(self, layer: nn.Linear, damping: float = 1e-3, kl_clip: float = 1e-2, stat_decay: float = 0.95,
                 cov_every: int = 10, inv_every: int = 100, ekfac: bool = False) -> None:
        self.layer = layer
        self.damping, self.kl_clip, self.decay = damping, kl_clip, stat_decay
        self.cov_every, self.inv_every, self.ekfac = cov_every, inv_every, ekfac
        self.steps = 0
        self.A: Tensor | None = None
        self.G: Tensor | None = None
        self.q_a = self.q_g = self.scale = None
        self.last_nu = 1.0

    @property
    def wants_stats(self) -> bool:
        return self.steps % self.cov_every == 0

    def _bias(self) -> bool:
        return self.layer.bias is not None

    @torch.no_grad()
    def update_stats(self, a: Tensor, g: Tensor) -> None:
        """Fold one batch into the factors.

        Args:
            a: layer inputs, (N, in).
            g: per-sample gradients of the loss w.r.t. the layer outputs, (N, out); for the true Fisher, the
                loss of labels sampled from the model, summed (not averaged) over the batch.
        """
        a = with_bias_column(a) if self._bias() else a
        n = a.shape[0]
        A, G = a.T @ a / n, g.T @ g / n
        if self.A is None:
            self.A, self.G = A, G
        else:
            self.A.mul_(self.decay).add_(A, alpha=1 - self.decay)
            self.G.mul_(self.decay).add_(G, alpha=1 - self.decay)
        if self.ekfac and self.q_a is not None:
            s = (g @ self.q_g).square().T @ (a @ self.q_a).square() / n
            self.scale.mul_(self.decay).add_(s, alpha=1 - self.decay)

    @torch.no_grad()
    def _decompose(self) -> None:
        if self.A is None:
            raise RuntimeError("KFACLinear: update_stats() must run before the first step")
        l_a, self.q_a = torch.linalg.eigh(self.A)
        l_g, self.q_g = torch.linalg.eigh(self.G)
        self.scale = l_g.clamp_min(0)[:, None] * l_a.clamp_min(0)[None, :]

    def grad_matrix(self) -> Tensor:
        """The layer's gradient as one (out, in[+1]) matrix, bias last."""
        w = self.layer.weight.grad
        return torch.cat([w, self.layer.bias.grad[:, None]], dim=1) if self._bias() else w

    @torch.no_grad()
    def precondition_(self, lr: float) -> float:
        """Replace the layer's gradient by its KL-clipped natural gradient; return the clip factor ν ≤ 1."""
        if self.steps % self.inv_every == 0:
            self._decompose()
        grad = self.grad_matrix()
        v = precondition(grad, self.q_a, self.q_g, self.scale, self.damping)
        vg = float((v * grad).sum()) * lr * lr
        nu = min(1.0, math.sqrt(self.kl_clip / vg)) if vg > 0 else 1.0
        v.mul_(nu)
        n_in = self.layer.weight.shape[1]
        self.layer.weight.grad.copy_(v[:, :n_in])
        if self._bias():
            self.layer.bias.grad.copy_(v[:, n_in])
        self.steps += 1
        self.last_nu = nu
        return nu
