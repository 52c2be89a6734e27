"""The DPGMM prior's math, each piece against an independent computation (torch.distributions or Monte Carlo)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Beta, Categorical, Gamma, Independent, MixtureSameFamily, Normal, kl_divergence

from worldrl.models.vrnn import distributions as D

N_MC = 100_000


def _kuma_log_prob(v: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Kumaraswamy density written out: a b v^(a-1) (1 - v^a)^(b-1)."""
    return math.log(a * b) + (a - 1) * torch.log(v) + (b - 1) * torch.log1p(-v.pow(a))


def test_stick_breaking_weights_positive_sum_to_one_and_match_products():
    torch.manual_seed(0)
    v = torch.rand(64, 9) * 0.98 + 0.01
    pi = D.stick_breaking_log_weights(v).exp()
    assert pi.shape == (64, 10)
    assert (pi > 0).all()
    torch.testing.assert_close(pi.sum(-1), torch.ones(64), atol=1e-5, rtol=0)
    # Independent computation: explicit products; the last component takes the remainder of the stick.
    for k in range(9):
        torch.testing.assert_close(pi[:, k], v[:, k] * torch.prod(1 - v[:, :k], dim=-1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(pi[:, 9], torch.prod(1 - v, dim=-1), atol=1e-6, rtol=1e-5)


def test_stick_breaking_survives_extreme_sticks():
    v = torch.tensor([[0.0, 1.0, 0.5], [1.0, 1.0, 1.0]])
    pi = D.stick_breaking_log_weights(v).exp()
    assert torch.isfinite(pi).all()
    torch.testing.assert_close(pi.sum(-1), torch.ones(2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("a,b", [(0.7, 1.5), (2.0, 3.0)])
def test_kumaraswamy_samples_match_mean(a, b):
    gen = torch.Generator().manual_seed(1)
    v = D.kumaraswamy_rsample(
        torch.full((N_MC,), a, dtype=torch.float64), torch.full((N_MC,), b, dtype=torch.float64), gen
    )
    mean = D.kumaraswamy_mean(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    assert abs(float(v.mean() - mean)) < 4 * float(v.std()) / math.sqrt(N_MC)


@pytest.mark.parametrize("a,b,pa,pb", [(1.0, 2.0, 1.0, 3.0), (0.8, 1.5, 1.0, 0.7), (2.5, 4.0, 2.0, 5.0)])
def test_kumaraswamy_beta_kl_matches_monte_carlo(a, b, pa, pb):
    # v ~ Kuma(a, b) by inverse CDF with torch.rand (independent of the module's sampler); KL = E[log q - log p].
    torch.manual_seed(2)
    u = torch.rand(N_MC, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    v = (1 - u.pow(1 / b)).pow(1 / a).clamp(1e-12, 1 - 1e-12)
    log_ratio = _kuma_log_prob(v, a, b) - Beta(
        torch.tensor(pa, dtype=torch.float64), torch.tensor(pb, dtype=torch.float64)
    ).log_prob(v)
    mc, stderr = float(log_ratio.mean()), float(log_ratio.std()) / math.sqrt(N_MC)
    closed = float(
        D.kumaraswamy_beta_kl(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), pa, pb)
    )
    # Tolerance: 5 Monte Carlo standard errors plus 0.01 for the truncated (50-term) Taylor series.
    assert abs(closed - mc) < 5 * stderr + 0.01, (closed, mc, stderr)
    assert closed >= -1e-6


def test_dp_stick_kl_is_the_expectation_over_the_gamma_posterior():
    a = torch.tensor([0.9, 2.0], dtype=torch.float64)
    b = torch.tensor([1.7, 3.0], dtype=torch.float64)
    shape, rate = torch.tensor(3.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    alphas = Gamma(shape, rate).sample((20_000,))
    mc = D.kumaraswamy_beta_kl(a, b, torch.ones(()), alphas[:, None]).mean(0)
    exact = D.kumaraswamy_dp_stick_kl(a, b, shape, rate)
    torch.testing.assert_close(exact, mc, atol=0.02, rtol=0.02)


def test_gamma_kl_matches_torch_distributions():
    torch.manual_seed(3)
    sq, rq, sp, rp = (torch.rand(32) * 5 + 0.1 for _ in range(4))
    expected = kl_divergence(Gamma(sq, rq), Gamma(sp, rp))
    torch.testing.assert_close(D.gamma_kl(sq, rq, sp, rp), expected, atol=1e-4, rtol=1e-4)


def test_mixture_kl_with_one_component_matches_gaussian_closed_form():
    torch.manual_seed(4)
    mq, lq = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64) * 0.3
    mp, lp = torch.randn(1, 5, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64) * 0.3
    z = mq + torch.exp(0.5 * lq) * torch.randn(N_MC, 5, dtype=torch.float64)
    est = D.mixture_kl_mc(z, mq, lq, torch.zeros(1, dtype=torch.float64), mp, lp)
    closed = D.diag_gaussian_kl(mq, lq, mp[0], lp[0])
    torch_kl = kl_divergence(
        Independent(Normal(mq, (0.5 * lq).exp()), 1), Independent(Normal(mp[0], (0.5 * lp).exp()), 1)
    )
    torch.testing.assert_close(closed, torch_kl.reshape(closed.shape))
    assert abs(float(est.mean() - closed)) < 5 * float(est.std()) / math.sqrt(N_MC)


def test_mixture_log_prob_matches_torch_mixture():
    torch.manual_seed(5)
    log_pi = torch.log_softmax(torch.randn(4, 6), -1)
    means, logvars = torch.randn(4, 6, 3), torch.randn(4, 6, 3) * 0.5
    z = torch.randn(4, 3)
    ref = MixtureSameFamily(Categorical(logits=log_pi), Independent(Normal(means, (0.5 * logvars).exp()), 1)).log_prob(
        z
    )
    torch.testing.assert_close(D.mixture_log_prob(z, log_pi, means, logvars), ref, atol=1e-5, rtol=1e-5)


def test_effective_components_bounds():
    k = 7
    uniform = torch.full((10, k), -math.log(k))
    one_hot = torch.log(torch.nn.functional.one_hot(torch.zeros(10, dtype=torch.long), k).float().clamp_min(1e-30))
    assert float(D.effective_components(uniform)) == pytest.approx(k, rel=1e-4)
    assert float(D.effective_components(one_hot)) == pytest.approx(1.0, rel=1e-4)
    # Masked positions do not count.
    mixed = torch.cat([one_hot[:5], uniform[:5]])
    mask = torch.tensor([True] * 5 + [False] * 5)
    assert float(D.effective_components(mixed, mask)) == pytest.approx(1.0, rel=1e-4)
