"""PNG plots of evaluation results: imagined vs real trajectories (frame strips for pixels), nRMSE vs horizon,
learning curves.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, so no global backend switch and no GUI), and
written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from worldrl.evaluation.fidelity import FidelityReport, TrajectoryExamples
from worldrl.io import atomic_write_bytes

_PANEL_W, _PANEL_H = 3.2, 2.2


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _save(fig: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches=None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_trajectories(
    examples: TrajectoryExamples, path: str | Path, dim_names: Sequence[str] | None = None, title: str | None = None
) -> Path:
    """One panel per observation dimension: real trajectories solid, imagined dashed, one colour per start."""
    real = examples.real.reshape(*examples.real.shape[:2], -1)
    imagined = examples.imagined.reshape(*examples.imagined.shape[:2], -1)
    n_starts, steps, dims = real.shape
    names = list(dim_names) if dim_names and len(dim_names) == dims else [f"dim {d}" for d in range(dims)]
    if dims > _MAX_PANELS:  # thousands of subplots (a frame's pixels) would take minutes to lay out
        real, imagined, dims, names = (
            real[..., :_MAX_PANELS],
            imagined[..., :_MAX_PANELS],
            _MAX_PANELS,
            names[:_MAX_PANELS],
        )
        title = title or f"real (solid) vs imagined (dashed), open loop: first {_MAX_PANELS} dimensions"
    rows, cols = _grid(dims)
    fig = Figure(figsize=(_PANEL_W * cols, _PANEL_H * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    x = np.arange(steps)
    for d, ax in enumerate(axes[:dims]):
        for i in range(n_starts):
            colour = f"C{i % 10}"
            label = f"ep {examples.episode[i]} t={examples.start[i]}" if d == 0 else None
            ax.plot(x, real[i, :, d], color=colour, lw=1.4, label=label)
            ax.plot(
                x[: examples.length[i] + 1], imagined[i, : examples.length[i] + 1, d], color=colour, lw=1.2, ls="--"
            )
        ax.set_title(names[d], fontsize=9)
        ax.set_xlabel("steps after start", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[dims:]:
        ax.set_visible(False)
    if n_starts:
        axes[0].legend(fontsize=6, loc="best")
    fig.suptitle(title or "real (solid) vs imagined (dashed), open loop", fontsize=10)
    return _save(fig, path)


_MAX_PANELS = 32  # a vector observation wider than this shows its first panels (one panel per dimension)


def plot_frame_strip(
    examples: TrajectoryExamples,
    path: str | Path,
    steps: Sequence[int] = (0, 1, 2, 4, 6, 8, 10, 15, 20),
    title: str | None = None,
) -> Path | None:
    """Pixel examples: real frames (top row) over imagined ones (bottom row) at ``steps`` after the start, for the
    example whose real frames change the most (a static example shows nothing). None when the examples are not
    frames ([n, H+1, height, width, channels])."""
    if examples.real.ndim != 5:
        return None
    steps = [t for t in steps if t < examples.real.shape[1]]
    last = steps[-1]
    motion = [
        np.nanmean(np.abs(examples.real[i, 1 : min(examples.length[i], last) + 1] - examples.real[i, :1]))
        if examples.length[i] > 0
        else 0.0
        for i in range(len(examples.real))
    ]
    i = int(np.nanargmax(motion))
    rows = {"real": examples.real[i, steps], "imagined": examples.imagined[i, steps]}
    where = f"episode {examples.episode[i]}, start {examples.start[i]}"
    title = f"{title}: {where}" if title else f"{where}: real (top) vs imagined (bottom)"
    return plot_frame_rows(rows, path, [f"t+{t}" for t in steps], title)


def plot_frame_rows(rows: Mapping[str, np.ndarray], path: str | Path, column_labels: Sequence[str], title: str) -> Path:
    """One row of frames per entry of ``rows`` (``[columns, height, width, channels]``, uint8 range; NaN frames
    past an episode's end are drawn black), labelled by its key, under ``column_labels``."""
    grid = np.concatenate([np.concatenate(list(np.nan_to_num(f)), axis=1) for f in rows.values()], axis=0)
    grid = grid.clip(0, 255).astype(np.uint8)
    side_h, side_w = next(iter(rows.values())).shape[1:3]
    columns = len(column_labels)
    fig = Figure(figsize=(1.25 * columns * side_w / side_h + 1.6, 0.3 + 1.25 * len(rows)), layout="compressed")
    ax = fig.subplots()
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray" if grid.shape[-1] == 1 else None)
    ax.set_xticks([side_w * (k + 0.5) for k in range(columns)], list(column_labels))
    ax.set_yticks([side_h * (k + 0.5) for k in range(len(rows))], list(rows))
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_nrmse_curves(reports: FidelityReport | Mapping[str, FidelityReport], path: str | Path) -> Path:
    """nRMSE (or PSNR for pixel models) against horizon, one line per model; log x, and log y for nRMSE, whose
    values span decades (a good model's 1e-3 next to a diverging one's 1e1)."""
    if isinstance(reports, FidelityReport):
        reports = {reports.model: reports}
    if not reports:
        raise ValueError("plot_nrmse_curves needs at least one report")
    fig = Figure(figsize=(5.5, 3.5), layout="constrained")
    ax = fig.subplots()
    pixel = any(r.is_pixel for r in reports.values())
    for name, report in reports.items():
        points = [(m.horizon, m.psnr if pixel else m.nrmse) for m in report.curve]
        points = [(h, v) for h, v in points if v is not None and math.isfinite(v) and (pixel or v > 0)]
        if points:
            h, v = zip(*points)
            ax.plot(h, v, marker="." if len(h) < 30 else None, label=name)
    ax.set_xscale("log")
    if not pixel:
        ax.set_yscale("log")
    ax.set_xlabel("horizon (steps of open-loop imagination)")
    ax.set_ylabel("PSNR (dB)" if pixel else "nRMSE (RMSE / dataset std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def read_learning_curves(source: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Series ``name -> (steps, values)`` from a trainer ``metrics.jsonl`` or a CSV with a ``step`` column.

    JSONL lines are objects with ``step``, optionally ``split`` and either a nested ``metrics`` object or flat
    numeric fields; series are named ``<split>/<metric>``. Non-numeric values are skipped.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no metrics file at {source}")
    rows = _read_csv(source) if source.suffix == ".csv" else _read_jsonl(source)
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for i, row in enumerate(rows):
        step = row.pop("step", i)
        split = row.pop("split", None)
        nested = row.pop("metrics", None)
        values = {**row, **(nested if isinstance(nested, dict) else {})}
        for key, value in values.items():
            number = _as_number(value)
            if number is not None:
                series[f"{split}/{key}" if split else key].append((float(step), number))
    return {k: (np.array([s for s, _ in v]), np.array([y for _, y in v])) for k, v in series.items()}


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n} is not valid JSON ({err.msg})") from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return [dict(row) for row in csv.DictReader(f)]


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plot_learning_curves(source: str | Path, path: str | Path, keys: Sequence[str] | None = None) -> Path:
    """One panel per metric (train and validation of the same metric share a panel) against training step."""
    series = read_learning_curves(source)
    if keys is not None:
        missing = [k for k in keys if k not in series]
        if missing:
            raise KeyError(f"{source} has no series {missing}; it has {sorted(series)}")
        series = {k: series[k] for k in keys}
    if not series:
        raise ValueError(f"{source} holds no numeric metrics to plot")
    panels: dict[str, list[str]] = defaultdict(list)
    for name in series:
        panels[name.split("/", 1)[-1]].append(name)
    rows, cols = _grid(len(panels), max_cols=3)
    fig = Figure(figsize=(_PANEL_W * 1.2 * cols, _PANEL_H * 1.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (metric, names) in zip(axes, panels.items()):
        for name in names:
            steps, values = series[name]
            ax.plot(steps, values, label=name.split("/", 1)[0] if "/" in name else None, lw=1.2)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if any("/" in n for n in names):
            ax.legend(fontsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return _save(fig, path)
