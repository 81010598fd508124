"""DDPM over standardised parameters, with the denoiser predicting the clean sample (as G.pt does).

Training noises clean samples at a uniform random timestep of a 1,000-step linear schedule (beta 1e-4 to
0.02, Ho et al. 2020) and regresses the clean sample. Sampling runs the ancestral sampler on an evenly
respaced subsequence of timesteps (Nichol & Dhariwal 2021), so a sample costs `steps` network calls.

The clean-sample prediction is preconditioned as in EDM (Karras et al. 2022): `x0 = c_skip(t) x_t +
c_out(t) F(x_t, t)`, with c_skip, c_out the optimal linear denoiser of unit-variance data, and the loss weighted
by 1/c_out^2 (so F regresses a unit-variance target at every noise level). At low noise the input then
passes straight through and F only corrects it; without this, a network small enough for 2 CPU cores
never learns that identity, and every sample carries the error of its highest-noise prediction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]  # the network F: (x_t, t in [0, 1]) -> its output


class Diffusion:
    """A linear-beta DDPM schedule of `num_steps` steps."""

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        self.num_steps = num_steps
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        self.alpha_bar = torch.cumprod(1.0 - betas, 0)

    def _ab(self, t: Tensor, like: Tensor) -> Tensor:
        return self.alpha_bar[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def noise(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """q(x_t | x0) for integer timesteps t (B,)."""
        ab = self._ab(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def coefficients(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """(c_skip, c_out) at integer timesteps t: E[x0 | x_t] for unit-variance Gaussian data is c_skip x_t,
        and c_out is the standard deviation left around it."""
        ab = self._ab(t, like)
        return ab.sqrt(), (1 - ab).sqrt()  # unit-variance data: ab + (1 - ab) = 1 in the denominators

    def predict(self, net: Denoiser, x_t: Tensor, t: Tensor) -> Tensor:
        """The preconditioned clean-sample prediction c_skip x_t + c_out F(x_t, t)."""
        c_skip, c_out = self.coefficients(t, x_t)
        return c_skip * x_t + c_out * net(x_t, self.time(t))

    def loss(self, net: Denoiser, x0: Tensor, gen: torch.Generator) -> Tensor:
        """Squared error of the clean-sample prediction at uniform random timesteps, weighted by 1/c_out^2."""
        t = torch.randint(self.num_steps, (x0.shape[0],), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        x_t = self.noise(x0, t, eps)
        _, c_out = self.coefficients(t, x0)
        return ((self.predict(net, x_t, t) - x0) / c_out).pow(2).mean()

    def time(self, t: Tensor) -> Tensor:
        """Integer timesteps -> the network's time input in [0, 1]."""
        return t.float() / (self.num_steps - 1)

    @torch.no_grad()
    def sample(self, net: Denoiser, shape: tuple[int, ...], steps: int, gen: torch.Generator,
               eta: float = 1.0, temperature: float = 1.0) -> Tensor:
        """Sample on `steps` evenly spaced timesteps, from pure noise to a clean sample.

        `eta` = 1 is DDPM's ancestral sampler (fresh noise at every step); `eta` = 0 is DDIM (Song et al.
        2021), deterministic given the starting noise. `temperature` < 1 scales all injected noise down, which
        keeps samples nearer the modes the denoiser knows well (fewer, smaller outliers; less spread).
        """
        steps = max(1, min(steps, self.num_steps))
        ts = torch.linspace(self.num_steps - 1, 0, steps).round().long().unique_consecutive()
        x = temperature * torch.randn(shape, generator=gen)
        for i, t in enumerate(ts):
            x0 = self.predict(net, x, t.expand(shape[0]))
            if i + 1 == len(ts):
                return x0
            ab, ab_prev = self.alpha_bar[t], self.alpha_bar[ts[i + 1]]
            eps = (x - ab.sqrt().item() * x0) / (1 - ab).sqrt().item()
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
            x = (ab_prev.sqrt().item() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt().item() * eps
                 + temperature * sigma.item() * torch.randn(shape, generator=gen))
        return x
