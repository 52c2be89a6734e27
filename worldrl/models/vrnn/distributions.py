"""Pure math of the DPGMM prior: stick breaking, Kumaraswamy sticks, and the KL terms of the ELBO.

Every function is stateless and works on arbitrary leading batch dimensions.
References: Nalisnick & Smyth 2017 (stick-breaking VAE, Kumaraswamy-Beta KL); Kingma & Welling 2014.
"""

from __future__ import annotations

import math

import torch

EULER_GAMMA = 0.5772156649015329
LOG_2PI = math.log(2.0 * math.pi)
_EPS = 1e-6


# ----------------------------------------------------------------------------- Gaussians
def diag_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(-1)


def diag_gaussian_kl(
    mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """Closed-form KL(N_q || N_p) for diagonal Gaussians, summed over the last dimension."""
    return 0.5 * (
        logvar_p - logvar_q + (torch.exp(logvar_q) + (mean_q - mean_p).pow(2)) * torch.exp(-logvar_p) - 1.0
    ).sum(-1)


def mixture_log_prob(z: torch.Tensor, log_pi: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log sum_k pi_k N(z; mu_k, sigma_k^2): ``z [..., D]``, ``log_pi [..., K]``, ``means/logvars [..., K, D]``."""
    component = diag_gaussian_log_prob(z.unsqueeze(-2), means, logvars)
    return torch.logsumexp(log_pi + component, dim=-1)


def mixture_kl_mc(
    z: torch.Tensor,
    mean_q: torch.Tensor,
    logvar_q: torch.Tensor,
    log_pi: torch.Tensor,
    means: torch.Tensor,
    logvars: torch.Tensor,
) -> torch.Tensor:
    """One-sample Monte Carlo estimate of KL(q || mixture) at ``z ~ q``: log q(z) - log p(z).

    The mixture KL has no closed form; the log-sum-exp over components keeps log p(z) stable.
    """
    return diag_gaussian_log_prob(z, mean_q, logvar_q) - mixture_log_prob(z, log_pi, means, logvars)


# ----------------------------------------------------------------------------- stick breaking
def stick_breaking_log_weights(v: torch.Tensor) -> torch.Tensor:
    """Mixture log-weights from ``K-1`` sticks ``v [..., K-1]`` in (0, 1): returns ``log pi [..., K]``.

    pi_k = v_k prod_{j<k}(1 - v_j) for k < K. Truncation: the last component takes the whole remainder
    pi_K = prod_{j<K}(1 - v_j) (its stick is fixed to 1), so the K weights sum to one exactly.
    """
    v = v.clamp(_EPS, 1.0 - _EPS)
    log_rest = torch.cumsum(torch.log1p(-v), dim=-1)  # log prod_{j<=k}(1 - v_j)
    before = torch.cat([torch.zeros_like(log_rest[..., :1]), log_rest[..., :-1]], dim=-1)
    return torch.cat([torch.log(v) + before, log_rest[..., -1:]], dim=-1)


def kumaraswamy_rsample(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised Kumaraswamy(a, b) sample by the inverse CDF: v = (1 - u^(1/b))^(1/a), u ~ U(0, 1)."""
    u = torch.rand(a.shape, generator=generator, device=a.device, dtype=a.dtype).clamp(_EPS, 1.0 - _EPS)
    log_one_minus = torch.log1p(-torch.exp(torch.log(u) / b).clamp(max=1.0 - _EPS))
    return torch.exp(log_one_minus / a).clamp(_EPS, 1.0 - _EPS)


def kumaraswamy_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """E[v] = b B(1 + 1/a, b): the deterministic stick used when no generator is given."""
    return torch.exp(torch.log(b) + log_beta_fn(1.0 + 1.0 / a, b)).clamp(_EPS, 1.0 - _EPS)


def log_beta_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log B(x, y) = lgamma(x) + lgamma(y) - lgamma(x + y)."""
    return torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)


def _kumaraswamy_kl(
    a: torch.Tensor,
    b: torch.Tensor,
    prior_a: torch.Tensor | float,
    prior_b_minus_one: torch.Tensor,
    log_beta_prior: torch.Tensor,
    n_terms: int,
) -> torch.Tensor:
    """KL(Kuma(a, b) || Beta(prior_a, prior_b)) written linearly in (prior_b - 1) and log B(prior_a, prior_b).

    The E[log(1 - v)] term is the Taylor series sum_m B(m/a, b) / (m + a b), truncated at ``n_terms``.
    """
    m = torch.arange(1, n_terms + 1, device=a.device, dtype=a.dtype)
    a_, b_ = a.unsqueeze(-1), b.unsqueeze(-1)
    series = (torch.exp(log_beta_fn(m / a_, b_)) / (m + a_ * b_)).sum(-1)
    return (
        (a - prior_a) / a * (-EULER_GAMMA - torch.digamma(b) - 1.0 / b)
        + torch.log(a * b)
        + log_beta_prior
        - (b - 1.0) / b
        + prior_b_minus_one * b * series
    )


def kumaraswamy_beta_kl(
    a: torch.Tensor, b: torch.Tensor, prior_a: torch.Tensor, prior_b: torch.Tensor, n_terms: int = 50
) -> torch.Tensor:
    """Closed-form KL(Kumaraswamy(a, b) || Beta(prior_a, prior_b)) (Nalisnick & Smyth 2017, Taylor series)."""
    prior_a = torch.as_tensor(prior_a, dtype=a.dtype, device=a.device)
    prior_b = torch.as_tensor(prior_b, dtype=a.dtype, device=a.device)
    return _kumaraswamy_kl(a, b, prior_a, prior_b - 1.0, log_beta_fn(prior_a, prior_b), n_terms)


def kumaraswamy_dp_stick_kl(
    a: torch.Tensor, b: torch.Tensor, alpha_shape: torch.Tensor, alpha_rate: torch.Tensor, n_terms: int = 50
) -> torch.Tensor:
    """E_{alpha ~ Gamma(shape, rate)} KL(Kumaraswamy(a, b) || Beta(1, alpha)), exact in alpha.

    With prior Beta(1, alpha) the KL is linear in alpha and in log B(1, alpha) = -log alpha, so the expectation
    over the Gamma posterior of the concentration only needs E[alpha] = shape/rate and
    E[log alpha] = digamma(shape) - log(rate): no sampling, gradients reach the Gamma parameters.
    ``alpha_shape/alpha_rate`` broadcast against the sticks ``a, b [..., K-1]``.
    """
    mean_alpha = alpha_shape / alpha_rate
    mean_log_alpha = torch.digamma(alpha_shape) - torch.log(alpha_rate)
    return _kumaraswamy_kl(a, b, 1.0, mean_alpha - 1.0, -mean_log_alpha, n_terms)


# ----------------------------------------------------------------------------- Gamma
def gamma_kl(shape_q: torch.Tensor, rate_q: torch.Tensor, shape_p: torch.Tensor, rate_p: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(Gamma(shape_q, rate_q) || Gamma(shape_p, rate_p)) (shape/rate parameterisation)."""
    return (
        (shape_q - shape_p) * torch.digamma(shape_q)
        - torch.lgamma(shape_q)
        + torch.lgamma(shape_p)
        + shape_p * (torch.log(rate_q) - torch.log(rate_p))
        + shape_q * (rate_p - rate_q) / rate_q
    )


# ----------------------------------------------------------------------------- metrics
def effective_components(log_pi: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Effective number of mixture components in use: exp(entropy of the average weights pi).

    ``log_pi [..., K]`` is averaged over all leading positions (weighted by ``weight [...]`` if given, e.g. the
    padding mask). It is K when every component is used equally and 1 when one component takes all the mass.
    """
    pi = torch.exp(log_pi).reshape(-1, log_pi.shape[-1])
    w = torch.ones(pi.shape[0], device=pi.device, dtype=pi.dtype) if weight is None else weight.reshape(-1).to(pi.dtype)
    mean_pi = (pi * w[:, None]).sum(0) / w.sum().clamp_min(1.0)
    mean_pi = mean_pi / mean_pi.sum().clamp_min(_EPS)
    return torch.exp(-(mean_pi * torch.log(mean_pi.clamp_min(1e-12))).sum())


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is true (``mask`` broadcasts to ``x``); 0 if none."""
    m = mask.to(x.dtype).expand_as(x)
    return (x * m).sum() / m.sum().clamp_min(1.0)
