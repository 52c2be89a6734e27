"""The Fréchet distance against closed forms for two Gaussians, and on sampled features."""

from __future__ import annotations

import math

import pytest
import torch

from worldrl.errors import ConfigError
from worldrl.evaluation.frechet import frechet_distance, frechet_distance_of_features, gaussian_stats, psd_sqrt


def random_spd(dim: int, seed: int) -> torch.Tensor:
    a = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(dim, dtype=torch.float64)


def test_diagonal_gaussians_match_the_closed_form():
    """Diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum (sigma1 - sigma2)^2."""
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    s1, s2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([2.0, 1.0, 0.25])
    expected = float((mu1 - mu2).square().sum() + (s1 - s2).square().sum())
    assert frechet_distance(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2)) == pytest.approx(expected, rel=1e-10)


def test_general_gaussians_match_the_one_dimensional_and_scaled_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    f64 = {"dtype": torch.float64}
    assert frechet_distance(
        torch.tensor([0.3], **f64),
        torch.tensor([[4.0]], **f64),
        torch.tensor([-0.2], **f64),
        torch.tensor([[9.0]], **f64),
    ) == pytest.approx(0.25 + 1.0, rel=1e-10)
    # S2 = c^2 S1: tr(S1 + c^2 S1 - 2 c S1) = (1 - c)^2 tr(S1), for any full S1.
    cov = random_spd(6, 0)
    mu = torch.randn(6, dtype=torch.float64)
    c = 2.5
    assert frechet_distance(mu, cov, mu, c**2 * cov) == pytest.approx((1 - c) ** 2 * float(torch.trace(cov)), rel=1e-9)


def test_non_commuting_covariances_match_the_wasserstein_formula_by_matrix_roots():
    """The reference value uses tr((S2^{1/2} S1 S2^{1/2})^{1/2}), the other order, computed independently."""
    cov1, cov2 = random_spd(5, 1), random_spd(5, 2)
    assert not torch.allclose(cov1 @ cov2, cov2 @ cov1)
    mu1, mu2 = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    r2 = psd_sqrt(cov2)
    cross = torch.trace(psd_sqrt(r2 @ cov1 @ r2))
    expected = float(5.0 + torch.trace(cov1) + torch.trace(cov2) - 2 * cross)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, cov1, mu1, cov1) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(frechet_distance(mu2, cov2, mu1, cov1), rel=1e-9)


def test_sampled_features_converge_to_the_population_distance():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    b = 2.0 * torch.randn(20000, 3, generator=g, dtype=torch.float64) + 1.0
    expected = 3 * 1.0 + 3 * (2.0 - 1.0) ** 2  # mean shift 1 per dim, sigma 1 vs 2
    assert frechet_distance_of_features(a, b) == pytest.approx(expected, rel=0.05)
    mu, cov = gaussian_stats(a)
    assert mu.shape == (3,) and cov.shape == (3, 3)
    assert math.isclose(float(cov.diagonal().mean()), 1.0, rel_tol=0.05)


def test_bad_feature_shapes_are_one_line_errors():
    with pytest.raises(ConfigError, match="same D"):
        frechet_distance_of_features(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="at least 2 feature vectors"):
        frechet_distance_of_features(torch.zeros(1, 3), torch.zeros(4, 3))
