"""Summary statistics for evaluation results: mean with a Student-t confidence interval, median and IQR.

Pure functions on 1-D arrays. scipy is not a dependency, so the t quantile is computed here: the t density is
integrated with Simpson's rule and the CDF inverted by bisection (accurate to ~1e-9, enough for reporting).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_SIMPSON_INTERVALS = 4000  # even; error ~1e-12 on the smooth t density over the ranges a CI needs
_NORMAL_DF = 1e7  # beyond this many degrees of freedom the t distribution is the normal to ~1e-7


def student_t_pdf(x: np.ndarray, df: float) -> np.ndarray:
    """Density of Student's t with ``df`` degrees of freedom."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return np.exp(log_norm - (df + 1) / 2 * np.log1p(np.asarray(x, dtype=np.float64) ** 2 / df))


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t), by Simpson integration of the density from 0 (the distribution is symmetric)."""
    x = np.linspace(0.0, abs(t), _SIMPSON_INTERVALS + 1)
    y = student_t_pdf(x, df)
    h = abs(t) / _SIMPSON_INTERVALS
    area = h / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum())
    return 0.5 + math.copysign(area, t)


def student_t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t: the t with P(T <= t) = p."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    if df > _NORMAL_DF:
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -student_t_ppf(1.0 - p, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:  # bracket: the upper tail can be far out for df = 1
        low, high = high, high * 2.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if student_t_cdf(mid, df) < p else (low, mid)
    return 0.5 * (low + high)


def _as_1d(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("values is empty: need at least one number")
    if not np.all(np.isfinite(arr)):
        raise ValueError("values contains NaN or inf")
    return arr


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t interval mean +- t_{(1+c)/2, n-1} * s / sqrt(n).

    With a single value the interval is undefined and both bounds are NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    arr = _as_1d(values)
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, math.nan, math.nan
    half = student_t_ppf(0.5 + confidence / 2, arr.size - 1) * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return mean, mean - half, mean + half


def median_iqr(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """``(median, q25, q75)`` with numpy's linear interpolation between order statistics."""
    arr = _as_1d(values)
    q25, median, q75 = np.percentile(arr, [25, 50, 75])
    return float(median), float(q25), float(q75)


@dataclass(frozen=True)
class Summary:
    """Location and spread of a sample, ready for a report row."""

    mean: float
    """Arithmetic mean."""
    std: float
    """Sample standard deviation (ddof=1); 0 for a single value."""
    ci95_low: float
    """Lower bound of the 95% Student-t confidence interval of the mean (NaN for a single value)."""
    ci95_high: float
    """Upper bound of the 95% Student-t confidence interval of the mean (NaN for a single value)."""
    median: float
    """Median."""
    iqr_low: float
    """25th percentile."""
    iqr_high: float
    """75th percentile."""
    count: int
    """Number of values."""


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Mean, sample std, 95% CI, median and IQR of ``values``."""
    arr = _as_1d(values)
    mean, low, high = mean_ci(arr)
    median, q25, q75 = median_iqr(arr)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return Summary(mean, std, low, high, median, q25, q75, int(arr.size))
