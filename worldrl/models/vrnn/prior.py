"""Stick-breaking Dirichlet-process GMM prior p(z_t | h_t), truncated at K components.

From h three MLPs give: the Kumaraswamy(a, b) parameters of K-1 sticks, an amortised Gamma(shape, rate)
posterior over the DP concentration alpha (hyperprior Gamma(s0, r0)), and K diagonal Gaussian components.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldrl.models.vrnn import distributions as D
from worldrl.nn.mlp import mlp


@dataclass
class PriorParams:
    """Parameters of the mixture prior at every position ``[...]``."""

    stick_a: torch.Tensor
    """Kumaraswamy a of the K-1 sticks ``[..., K-1]``."""
    stick_b: torch.Tensor
    """Kumaraswamy b of the K-1 sticks ``[..., K-1]``."""
    alpha_shape: torch.Tensor
    """Gamma posterior shape of the concentration ``[...]``."""
    alpha_rate: torch.Tensor
    """Gamma posterior rate of the concentration ``[...]``."""
    means: torch.Tensor
    """Component means ``[..., K, D]``."""
    logvars: torch.Tensor
    """Component log-variances ``[..., K, D]`` (clamped)."""

    def log_weights(self, stochastic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        """log pi ``[..., K]`` from reparameterised stick samples, or from the sticks' means when not stochastic."""
        if stochastic:
            v = D.kumaraswamy_rsample(self.stick_a, self.stick_b, generator)
        else:
            v = D.kumaraswamy_mean(self.stick_a, self.stick_b)
        return D.stick_breaking_log_weights(v)

    def stick_kl(self, n_terms: int) -> torch.Tensor:
        """sum_k E_q(alpha) KL(Kuma(a_k, b_k) || Beta(1, alpha)) ``[...]``."""
        kl = D.kumaraswamy_dp_stick_kl(
            self.stick_a, self.stick_b, self.alpha_shape.unsqueeze(-1), self.alpha_rate.unsqueeze(-1), n_terms
        )
        return kl.sum(-1)

    def gamma_kl(self, prior_shape: float, prior_rate: float) -> torch.Tensor:
        """KL(Gamma_q(alpha) || Gamma(prior_shape, prior_rate)) ``[...]``."""
        s0 = torch.full_like(self.alpha_shape, prior_shape)
        r0 = torch.full_like(self.alpha_rate, prior_rate)
        return D.gamma_kl(self.alpha_shape, self.alpha_rate, s0, r0)

    def sample(self, log_pi: torch.Tensor, generator: torch.Generator | None, stochastic: bool) -> torch.Tensor:
        """z ``[..., D]``: a component drawn from pi then a Gaussian sample, or the mixture mean sum_k pi_k mu_k.

        The component choice is discrete (no gradient); gradients flow through the chosen mean and variance. The
        mixture mean is the point prediction with the least expected squared error in z.
        """
        if not stochastic:
            return (torch.exp(log_pi).unsqueeze(-1) * self.means).sum(-2)
        flat = torch.exp(log_pi.detach()).reshape(-1, log_pi.shape[-1])
        k = torch.multinomial(flat, 1, generator=generator).reshape(log_pi.shape[:-1])
        mean, logvar = _take(self.means, k), _take(self.logvars, k)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps


def _take(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``x [..., K, D]`` at component index ``k [...]`` -> ``[..., D]``."""
    index = k[..., None, None].expand(*k.shape, 1, x.shape[-1])
    return x.gather(-2, index).squeeze(-2)


class DPGMMPrior(nn.Module):
    """Amortised truncated DP-GMM: ``forward([h; c]) -> PriorParams``."""

    def __init__(
        self,
        in_dim: int,
        latent_dim: int,
        max_components: int,
        hidden_dim: int,
        logvar_range: tuple[float, float] = (-10.0, 2.0),
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.max_components = max_components
        self.logvar_range = logvar_range
        self.sticks = mlp(in_dim, [hidden_dim], 2 * (max_components - 1))
        self.concentration = mlp(in_dim, [hidden_dim], 2)
        self.components = mlp(in_dim, [hidden_dim], 2 * max_components * latent_dim)

    def forward(self, features: torch.Tensor) -> PriorParams:
        a, b = _positive(self.sticks(features)).chunk(2, dim=-1)
        shape, rate = _positive(self.concentration(features)).unbind(-1)
        comp = self.components(features).reshape(*features.shape[:-1], self.max_components, 2 * self.latent_dim)
        means, logvars = comp.chunk(2, dim=-1)
        return PriorParams(a, b, shape, rate, means, logvars.clamp(*self.logvar_range))


def _positive(x: torch.Tensor) -> torch.Tensor:
    """Softplus kept inside [1e-2, 100]: the Kumaraswamy/Gamma math degrades at extreme parameters."""
    return (F.softplus(x) + 1e-2).clamp(max=100.0)
