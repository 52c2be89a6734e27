"""The Fréchet distance between two feature sets, each summarised as a Gaussian (the math behind FID and FVD).

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})

``tr((S_1 S_2)^{1/2})`` is computed as ``tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2})``: the two matrices are similar, and the
second one is symmetric positive semi-definite, so two symmetric eigendecompositions in float64 replace scipy's
general ``sqrtm`` (no complex parts to discard). Which features it is computed on is the caller's choice, and the
number is named after them: FVD means I3D features and FID Inception features, and neither is computed here.
"""

from __future__ import annotations

import torch

from worldrl.errors import ConfigError


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean ``[D]``, unbiased covariance ``[D, D]``) of ``features [N, D]`` in float64; needs N >= 2."""
    if features.ndim != 2:
        raise ConfigError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if features.shape[0] < 2:
        raise ConfigError(f"a covariance needs at least 2 feature vectors, got {features.shape[0]}")
    x = features.detach().double()
    return x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues clipped to 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2)."""
    mu1, cov1, mu2, cov2 = (t.double() for t in (mu1, cov1, mu2, cov2))
    root1 = psd_sqrt(cov1)
    cross = torch.linalg.eigvalsh(root1 @ cov2 @ root1).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * cross
    return float(value.clamp_min(0))


def frechet_distance_of_features(real: torch.Tensor, generated: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N, D]`` and ``[M, D]``."""
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ConfigError(
            f"feature sets must be [N, D] and [M, D] with the same D, got {tuple(real.shape)}, {tuple(generated.shape)}"
        )
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(generated))


__all__ = ["frechet_distance", "frechet_distance_of_features", "gaussian_stats", "psd_sqrt"]
