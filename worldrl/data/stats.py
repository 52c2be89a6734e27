"""Feature statistics as lerobot stores them: min, max, mean, std, count, q01, q10, q50, q90, q99.

Vector features get per-dimension statistics over frames. Image/video features get per-channel
statistics over frames and pixels, scaled to [0, 1] and shaped (C, 1, 1) so they broadcast over CHW
tensors. Image statistics are exact: a uint8 channel has 256 values, so a per-channel histogram holds
everything (quantiles included) at O(pixels) cost and constant memory while a long episode streams in.
Quantiles follow numpy's default (linear interpolation); lerobot approximates them with histograms,
so values computed here can differ from a lerobot-written ``stats.json`` in the last digits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def _to_lists(stats: Mapping[str, np.ndarray]) -> dict[str, list]:
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


def compute_feature_stats(values: np.ndarray, is_image: bool = False) -> dict[str, list]:
    """Statistics of one feature over frames (axis 0), as JSON-ready lists.

    ``values``: ``[N, *shape]`` for vectors (``[N]`` is treated as shape (1,)); ``[N, H, W, C]`` uint8 for
    images (float images in [0, 1] are accepted and quantised to uint8 first).
    """
    values = np.asarray(values)
    if values.shape[0] == 0:
        raise ValueError("compute_feature_stats: values has no frames (axis 0 is empty)")
    if is_image:
        acc = ImageStatsAccumulator()
        for frame in values:
            acc.update(frame)
        return acc.result()
    return _to_lists(vector_stats(values))


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per-dimension statistics of ``[N, D]`` (or ``[N]``) values; min/max keep integer dtypes."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if values.dtype == np.bool_:
        values = values.astype(np.float64)
    as_float = values.astype(np.float64)
    out: dict[str, np.ndarray] = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": as_float.mean(axis=0),
        "std": as_float.std(axis=0),
        "count": np.array([values.shape[0]], dtype=np.int64),
    }
    qs = np.quantile(as_float, list(QUANTILES.values()), axis=0)
    out.update({name: q for name, q in zip(QUANTILES, qs)})
    return out


class ImageStatsAccumulator:
    """Streams HWC (or CHW) frames in; ``result()`` gives exact per-channel statistics in [0, 1]."""

    def __init__(self) -> None:
        self.hist: np.ndarray | None = None  # [C, 256] pixel counts
        self.frames = 0

    def update(self, frame: np.ndarray) -> None:
        frame = _as_uint8_hwc(frame)
        c = frame.shape[-1]
        flat = frame.reshape(-1, c)
        # One bincount over (channel, value) pairs instead of C separate ones.
        codes = (flat.astype(np.int64) + 256 * np.arange(c)).ravel()
        hist = np.bincount(codes, minlength=256 * c).reshape(c, 256)
        self.hist = hist if self.hist is None else self.hist + hist
        self.frames += 1

    def result(self) -> dict[str, list]:
        if self.hist is None:
            raise ValueError("ImageStatsAccumulator: no frames were added")
        return _to_lists({k: v if k == "count" else v.reshape(-1, 1, 1) for k, v in self.arrays().items()})

    def arrays(self) -> dict[str, np.ndarray]:
        hist = self.hist.astype(np.float64)
        levels = np.arange(256, dtype=np.float64) / 255.0
        n = hist.sum(axis=1)
        mean = hist @ levels / n
        var = hist @ levels**2 / n - mean**2
        nonzero = hist > 0
        out = {
            "min": np.array([levels[row].min() for row in nonzero]),
            "max": np.array([levels[row].max() for row in nonzero]),
            "mean": mean,
            "std": np.sqrt(np.maximum(var, 0.0)),
            "count": np.array([self.frames], dtype=np.int64),
        }
        for name, q in QUANTILES.items():
            out[name] = np.array([_hist_quantile(h, q) for h in hist]) / 255.0
        return out


def _as_uint8_hwc(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3:
        raise ValueError(f"image stats need [H, W, C] frames, got shape {frame.shape}")
    if frame.shape[0] in (1, 3) and frame.shape[-1] not in (1, 3):
        frame = frame.transpose(1, 2, 0)  # CHW -> HWC
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return frame


def _hist_quantile(hist: np.ndarray, q: float) -> float:
    """numpy's linear-interpolation quantile of the multiset described by a value histogram."""
    cum = np.cumsum(hist)
    pos = q * (cum[-1] - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    v_lo = int(np.searchsorted(cum, lo, side="right"))
    v_hi = int(np.searchsorted(cum, hi, side="right"))
    return v_lo + (pos - lo) * (v_hi - v_lo)


def aggregate_stats(stats_list: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, list]]:
    """Combine per-episode statistics into dataset statistics (as lerobot does).

    min/max/mean/std/count are exact (pooled variance); quantiles are the count-weighted mean of the
    episodes' quantiles, an approximation lerobot makes too.
    """
    keys = {k for stats in stats_list for k in stats}
    return {k: _aggregate_feature([s[k] for s in stats_list if k in s]) for k in sorted(keys)}


def _aggregate_feature(items: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    counts = np.array([float(np.asarray(s["count"]).reshape(-1)[0]) for s in items])
    w = counts / counts.sum()
    means = [np.asarray(s["mean"], dtype=np.float64) for s in items]
    mean = sum(wi * m for wi, m in zip(w, means))
    var = sum(wi * (np.asarray(s["std"], dtype=np.float64) ** 2 + (m - mean) ** 2) for wi, s, m in zip(w, items, means))
    out: dict[str, Any] = {
        "min": np.min(np.stack([np.asarray(s["min"]) for s in items]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"]) for s in items]), axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
        "count": np.array([int(counts.sum())], dtype=np.int64),
    }
    for name in QUANTILES:
        if all(name in s for s in items):
            out[name] = sum(wi * np.asarray(s[name], dtype=np.float64) for wi, s in zip(w, items))
    return _to_lists(out)


def stats_arrays(stats: Mapping[str, Any], dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """One feature's JSON statistics as numpy arrays (``count`` stays int64)."""
    return {k: np.asarray(v, dtype=np.int64 if k == "count" else dtype) for k, v in stats.items()}
