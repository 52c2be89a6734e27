"""The learning curve of an online run: one ``EvalRecord`` per real-env evaluation, as CSV, PNG and JSONL rows."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldrl.io import atomic_write_bytes


@dataclass
class EvalRecord:
    """One evaluation on the real env."""

    real_steps: int
    """Real steps collected when it ran."""
    mean: float
    """Mean episode return."""
    ci95_low: float
    """Lower bound of the 95% Student-t interval of the mean (NaN for one episode)."""
    ci95_high: float
    """Upper bound of that interval."""
    std: float
    """Sample standard deviation of the returns."""
    episodes: int
    """Episodes evaluated."""
    train_return: float
    """Mean return of the training episodes finished since the previous evaluation (NaN if none)."""
    wall_clock_s: float
    """Seconds since the run started."""


CSV_FIELDS = [f.name for f in dataclasses.fields(EvalRecord)]


def write_curve_csv(path: Path, records: list[EvalRecord]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for record in records:
        writer.writerow(dataclasses.asdict(record))
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def plot_curve(path: Path, records: list[EvalRecord], title: str) -> Path:
    """Real return vs real steps with its 95% CI band (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.array([r.real_steps for r in records], float)
    mean = np.array([r.mean for r in records])
    low, high = np.array([r.ci95_low for r in records]), np.array([r.ci95_high for r in records])
    ax.plot(x, mean, marker="o", label="real return (eval)")
    ok = np.isfinite(low) & np.isfinite(high)
    if ok.any():
        ax.fill_between(x[ok], low[ok], high[ok], alpha=0.25, label="95% CI")
    train = np.array([r.train_return for r in records])
    if np.isfinite(train).any():
        ax.plot(x, train, ls="--", marker=".", alpha=0.7, label="training episodes")
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(
            json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})
            + "\n"
        )


__all__ = ["EvalRecord", "append_jsonl", "plot_curve", "write_curve_csv"]
