"""Open-loop fidelity of a world model on recorded episodes.

For start steps t of held-out episodes the model observes the real context ``obs[t-context+1 .. t]`` (with the
previous actions, as ``WorldModel.observe`` expects), then imagines open loop under the recorded actions
``action[t .. t+H-1]`` in one batched ``rollout`` call, and the prediction is compared with the real future:

* vector observations: per-dimension RMSE divided by the dataset std of that dimension (nRMSE); a dimension with
  zero std (constant in the data) is divided by 1, i.e. reported in raw units;
* pixel observations: per-frame MSE on [0, 1] pixels (decoded frames are read in task units, 0..255), PSNR and
  SSIM (torchmetrics);
* keyed tasks: each observation key is scored as above (``HorizonMetrics.per_key``); the top-level fields
  repeat the task's first key, so single-key reports read as before;
* latent-only families (``can_decode=False``): the latent error ``distance(state_embedding(imagined t+h),
  embed(real t+h))`` in the model's own latent metric (V-JEPA 2's target-encoder embedding of the real future);
* reward: RMSE and mean absolute error of ``reward(state_{t+h})`` against ``reward[t+h-1]``;
* termination: accuracy of ``terminal(state_{t+h}) > 0.5`` against the recorded terminated flag.

A start counts for the observation error at horizon h only if step t+h still lies inside its episode (``count``).
Reward and termination are scored on every recorded transition, which includes the episode's last row (its
action's reward and terminated flag are recorded although the observation after it is not): ``step_count``.
Without that last row a terminating episode would contribute no positive example to the termination accuracy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from tqdm.auto import tqdm

from worldrl.errors import ConfigError, DatasetError
from worldrl.evaluation.stats import mean_ci
from worldrl.io import atomic_write_bytes
from worldrl.models.base import WorldModel
from worldrl.models.task_spec import TaskSpec

REWARD_KEY = "next.reward"
ACTION_KEY = "action"
PSNR_CAP_DB = 100.0  # PSNR of a perfect frame is infinite; capped so reports stay finite JSON
TERMINAL_THRESHOLD = 0.5


# ---------------------------------------------------------------------------------------------- pure math
def normalized_rmse(sq_err_sum: np.ndarray, count: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``sqrt(sum_sq / count) / std`` per horizon and dimension; NaN where count is 0. Shapes [H, D], [H], [D]."""
    scale = np.where(std > 0, std, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rmse = np.sqrt(sq_err_sum / count[:, None])
    return np.where(count[:, None] > 0, rmse / scale, np.nan)


def frame_mse(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-frame MSE of frames in task units (0..255) on the [0, 1] scale; reduces all but the leading axes."""
    diff = (np.asarray(pred, np.float64) - np.asarray(real, np.float64)) / 255.0
    return (diff**2).reshape(*diff.shape[:-3], -1).mean(axis=-1)


def psnr_from_mse(mse: np.ndarray, max_value: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB, capped at ``PSNR_CAP_DB`` for (near-)perfect frames."""
    mse = np.asarray(mse, np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(max_value**2 / mse)
    return np.minimum(psnr, PSNR_CAP_DB)


def frame_quality(pred: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PSNR (dB, capped) and SSIM of frames ``[N, H, W, C]`` in task units, through torchmetrics.

    torchmetrics' SSIM (Gaussian 11x11 window, as Wang et al.) needs frames of at least 11 pixels a side.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    def nchw(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, np.float32) / 255.0).permute(0, 3, 1, 2)

    p, r = nchw(pred), nchw(real)
    psnr = peak_signal_noise_ratio(p, r, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(p, r, data_range=1.0, reduction="none")
    return np.minimum(psnr.double().numpy(), PSNR_CAP_DB), ssim.double().numpy()


def repeat_last_prediction(last_obs: np.ndarray, horizon: int) -> np.ndarray:
    """Trivial baseline: the last observed observation, repeated for every future step. [B, *obs] -> [B, H, *obs]."""
    last = np.asarray(last_obs)
    return np.broadcast_to(last[:, None], (last.shape[0], horizon, *last.shape[1:]))


def mean_prediction(mean_obs: np.ndarray, batch: int, horizon: int) -> np.ndarray:
    """Trivial baseline: the dataset's mean observation at every step. [*obs] -> [B, H, *obs]."""
    mean = np.asarray(mean_obs)
    return np.broadcast_to(mean, (batch, horizon, *mean.shape))


def mean_observation(observations: Any, rows: np.ndarray, max_rows: int = 4096) -> np.ndarray:
    """Mean of ``observations(rows)`` (float64) over at most ``max_rows`` rows taken evenly from ``rows``.

    ``observations`` maps an index array to observations (a vector column or decoded frames): frames are read
    only for the rows kept, so a pixel dataset's mean frame costs at most ``max_rows`` frame reads.
    """
    rows = np.asarray(rows, np.int64)
    if len(rows) == 0:
        raise ValueError("mean_observation needs at least one row")
    if len(rows) > max_rows:
        rows = rows[np.linspace(0, len(rows) - 1, max_rows).round().astype(np.int64)]
    return np.asarray(observations(rows), np.float64).mean(axis=0)


BASELINES = {
    "repeat_last": "repeat the last observation",
    "dataset_mean": "predict the dataset mean",
}
"""Trivial baselines scored on the same starts and horizons as the model: name -> what it predicts."""


def candidate_starts(lengths: Mapping[int, int], context: int) -> list[tuple[int, int]]:
    """Every ``(episode, t)`` with a full context inside the episode.

    The last step of an episode is a start too: its transition (reward, terminated) is recorded even though the
    observation after it is not.
    """
    return [(ep, t) for ep, length in lengths.items() for t in range(context - 1, length)]


def select_starts(candidates: list[tuple[int, int]], num_starts: int | None, seed: int) -> list[tuple[int, int]]:
    """All candidates, or ``num_starts`` of them drawn without replacement (kept in dataset order)."""
    if num_starts is None or num_starts >= len(candidates):
        return candidates
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(candidates), size=num_starts, replace=False))
    return [candidates[i] for i in chosen]


# ---------------------------------------------------------------------------------------------- report
@dataclass
class HorizonMetrics:
    """Errors of predictions h steps after the start; None where the metric does not apply or count is 0."""

    horizon: int
    """Steps of open-loop imagination."""
    count: int
    """Starts whose episode still records the observation h steps after the start (scored for obs error)."""
    step_count: int = 0
    """Starts whose episode still records transition t+h-1 (scored for reward and termination)."""
    nrmse: float | None = None
    """Mean over observation dimensions of RMSE / dataset std (vector observations)."""
    nrmse_per_dim: list[float] | None = None
    """nRMSE of each observation dimension."""
    frame_mse: float | None = None
    """Mean per-frame MSE on [0, 1] pixels (pixel observations)."""
    psnr: float | None = None
    """Mean per-frame PSNR in dB (pixel observations), capped at 100 dB."""
    ssim: float | None = None
    """Mean per-frame SSIM (pixel observations; 1 is identical)."""
    latent_error: float | None = None
    """Mean latent distance between the imagined state and the embedding of the real observation (latent-only)."""
    per_key: dict[str, dict[str, Any]] | None = None
    """Keyed tasks: ``{key: {"nrmse" | "frame_mse", "psnr", "ssim": ...}}`` for every observation key."""
    reward_rmse: float | None = None
    """RMSE of the predicted reward of step t+h-1."""
    reward_mae: float | None = None
    """Mean absolute error of that reward."""
    termination_accuracy: float | None = None
    """Fraction of steps where (terminal probability > 0.5) equals the recorded terminated flag."""


@dataclass
class TrajectoryExamples:
    """A few real and imagined trajectories for plots: index 0 is the start observation, 1..H the future."""

    real: np.ndarray
    """[n, H+1, *obs_shape] recorded observations (NaN past the episode end)."""
    imagined: np.ndarray
    """[n, H+1, *obs_shape] decoded imagined observations (index 0 repeats the real start)."""
    length: np.ndarray
    """[n] number of future steps inside the episode."""
    episode: np.ndarray
    """[n] episode index of each start."""
    start: np.ndarray
    """[n] start step within the episode."""


@dataclass
class FidelityReport:
    """Everything ``evaluate_fidelity`` measured; ``to_dict``/``to_json``/``to_markdown`` for files and docs."""

    model: str
    """Model family (or a name given by the caller)."""
    task_id: str | None
    """The model's task."""
    obs_key: str
    """Dataset feature compared."""
    episodes: list[int]
    """Episodes evaluated."""
    num_starts: int
    """Start steps rolled out."""
    context: int
    """Observed real steps before imagining."""
    horizons: list[HorizonMetrics]
    """Metrics at the requested horizons."""
    curve: list[HorizonMetrics]
    """Metrics at every horizon 1..max(horizons) (per-dimension values left out)."""
    dim_names: list[str] | None = None
    """Names of the observation dimensions (vector observations)."""
    notes: list[str] = field(default_factory=list)
    """What was not measured and why."""
    stochastic: bool = False
    """True if the rollout sampled (a generator was given), False for the mean prediction."""
    baselines: dict[str, list[HorizonMetrics]] = field(default_factory=dict)
    """Observation error of the trivial baselines (``BASELINES``) at the requested horizons, same starts."""
    baseline_mean_from: str | None = None
    """Which episodes the ``dataset_mean`` baseline averages (the episodes not evaluated, or all of them)."""
    paired: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """The model minus each baseline, start by start, at the requested horizons (decoded observations):
    ``{baseline: [{"horizon", "count", "<metric>_diff", "<metric>_ci95", ...}]}``, the mean paired difference with
    its 95% Student-t interval, so a win is told from the spread of the starts. Metrics: per-frame ``ssim`` and
    ``psnr`` (dB, capped as the table's) for frames; ``nmse`` for vectors, the start's squared error over the
    dataset std, averaged over dimensions (lower is better)."""
    examples: TrajectoryExamples | None = field(default=None, repr=False)
    """Trajectories kept for plotting (not serialised)."""

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("examples")
        return _finite_or_none(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FidelityReport:
        data = dict(data)
        data["horizons"] = [HorizonMetrics(**h) for h in data.get("horizons", [])]
        data["curve"] = [HorizonMetrics(**h) for h in data.get("curve", [])]
        data["baselines"] = {k: [HorizonMetrics(**h) for h in v] for k, v in (data.get("baselines") or {}).items()}
        return cls(**data)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        if path is not None:
            atomic_write_bytes(path, text.encode())
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> FidelityReport:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"{path} is not a fidelity report ({err})") from None

    @property
    def is_pixel(self) -> bool:
        return any(h.psnr is not None for h in self.horizons)

    @property
    def is_latent(self) -> bool:
        """Scored in the model's latent space (a latent-only family)."""
        return (
            any(h.latent_error is not None for h in self.horizons)
            and not self.is_pixel
            and not any(h.nrmse is not None for h in self.horizons)
        )

    @property
    def error_name(self) -> str:
        return "latent error" if self.is_latent else "PSNR (dB)" if self.is_pixel else "nRMSE"

    def mean_curve_nrmse(self) -> float | None:
        """Average of the nRMSE curve over the horizons that had starts (one number per model)."""
        values = [h.nrmse for h in self.curve if h.nrmse is not None]
        return float(np.mean(values)) if values else None

    def baseline_error(self, name: str, horizon: int) -> float | None:
        """The baseline's observation error (nRMSE, PSNR for pixels, latent error) at ``horizon``; None if absent."""
        for m in self.baselines.get(name, []):
            if m.horizon == horizon:
                return observation_error(m, self.is_pixel, self.is_latent)
        return None

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Column names and one row of values per requested horizon (markdown and the CLI print the same)."""
        obs_col = self.error_name
        header = ["horizon", "starts (obs)", obs_col]
        header += ["SSIM"] if self.is_pixel else []
        keys = list(self.horizons[0].per_key or {}) if self.horizons else []
        header += [f"{key}: {_key_error_name(self.horizons[0].per_key[key])}" for key in keys]
        header += ["starts (transitions)", "reward RMSE", "reward MAE", "termination acc."]
        names = [n for n in BASELINES if n in self.baselines]
        header += [f"{obs_col}: {BASELINES[n]}" for n in names]
        rows = []
        for h in self.horizons:
            cells = [h.horizon, h.count, observation_error(h, self.is_pixel, self.is_latent)]
            cells += [h.ssim] if self.is_pixel else []
            cells += [_key_error((h.per_key or {}).get(key, {})) for key in keys]
            cells += [h.step_count, h.reward_rmse, h.reward_mae, h.termination_accuracy]
            cells += [self.baseline_error(n, h.horizon) for n in names]
            rows.append(cells)
        return header, rows

    def all_notes(self) -> list[str]:
        """The report's notes plus where the baselines' dataset mean comes from."""
        notes = list(self.notes)
        if self.baselines and self.baseline_mean_from:
            notes.append(
                f"trivial baselines on the same starts; the dataset mean is taken over {self.baseline_mean_from}"
            )
        return notes

    def to_markdown(self) -> str:
        head = (
            f"**{self.model}** on `{self.task_id}` ({self.obs_key}): {len(self.episodes)} episodes, "
            f"{self.num_starts} starts, context {self.context}, "
            f"{'sampled' if self.stochastic else 'mean'} prediction\n\n"
        )
        header, values = self.table()
        rows = ["| " + " | ".join(header) + " |", "|---:" * len(header) + "|"]
        rows += ["| " + " | ".join(_fmt(c) for c in cells) + " |" for cells in values]
        notes_text = "".join(f"\n- {n}" for n in self.all_notes())
        return head + "\n".join(rows) + ("\n" + notes_text if notes_text else "") + "\n" + self.paired_markdown()

    def paired_markdown(self) -> str:
        """The paired differences as a table (empty without them)."""
        if not self.paired:
            return ""
        first = next(iter(self.paired.values()))[0]
        metrics = [m for m in PAIRED_METRICS if f"{m}_diff" in first]
        head = " | ".join(f"{PAIRED_METRICS[m][0]}: model - baseline [95% CI]" for m in metrics)
        rows = [f"| horizon | baseline | starts | {head} |", "|---:|---|---:|" + "---|" * len(metrics)]
        for name, entries in self.paired.items():
            for e in entries:
                cells = " | ".join(_diff_cell(e[f"{m}_diff"], e[f"{m}_ci95"], PAIRED_METRICS[m][1]) for m in metrics)
                rows.append(f"| {e['horizon']} | {BASELINES.get(name, name)} | {e['count']} | {cells} |")
        return "\n" + "\n".join(rows) + "\n"


PAIRED_METRICS = {"ssim": ("SSIM", 4), "psnr": ("PSNR (dB)", 2), "nmse": ("nMSE (lower is better)", 4)}
"""Paired-difference metrics: their table name and decimals."""


def _diff_cell(diff: float | None, ci: list[float | None] | None, digits: int) -> str:
    if diff is None:
        return "n/a"
    low, high = ci or (None, None)
    interval = f" [{low:+.{digits}f}, {high:+.{digits}f}]" if low is not None and high is not None else ""
    return f"{diff:+.{digits}f}{interval}"


def paired_differences(
    model: Mapping[str, np.ndarray], baseline: Mapping[str, np.ndarray], horizons: Sequence[int]
) -> list[dict[str, Any]]:
    """Per requested horizon, the mean of model - baseline over the starts both scored (``{metric: [N, H]}``, NaN
    where unscored) for every metric of ``model``, with its 95% Student-t interval (None under two starts)."""
    out = []
    for h in horizons:
        diffs = {m: model[m][:, h - 1] - baseline[m][:, h - 1] for m in model}
        both = np.logical_and.reduce([np.isfinite(d) for d in diffs.values()])
        entry: dict[str, Any] = {"horizon": int(h), "count": int(both.sum())}
        for metric, diff in diffs.items():
            mean, low, high = mean_ci(diff[both]) if both.any() else (None, math.nan, math.nan)
            entry[f"{metric}_diff"] = mean
            entry[f"{metric}_ci95"] = [low, high] if math.isfinite(low) else None
        out.append(entry)
    return out


def observation_error(m: HorizonMetrics, is_pixel: bool, is_latent: bool = False) -> float | None:
    """The one number a table shows for a horizon: PSNR for pixels, latent error for latent-only, else nRMSE."""
    return m.latent_error if is_latent else m.psnr if is_pixel else m.nrmse


def _key_error_name(entry: Mapping[str, Any]) -> str:
    return "PSNR (dB)" if "psnr" in entry else "nRMSE"


def _key_error(entry: Mapping[str, Any]) -> float | None:
    return entry.get("psnr", entry.get("nrmse"))


def compare_reports(reports: Mapping[str, FidelityReport], horizons: Sequence[int] | None = None) -> str:
    """One markdown table with several models side by side: observation error and reward RMSE per horizon."""
    if not reports:
        raise ValueError("compare_reports needs at least one report")
    if horizons is None:
        horizons = sorted({h.horizon for r in reports.values() for h in r.horizons})
    header = ["model", "task", "starts"]
    for h in horizons:
        header += [f"obs err @{h}", f"reward RMSE @{h}"]
    header += ["term. acc @" + str(horizons[-1])]
    rows = ["| " + " | ".join(header) + " |", "|---" * 3 + "|---:" * (len(header) - 3) + "|"]
    for name, report in reports.items():
        by_h = {m.horizon: m for m in report.curve + report.horizons}
        cells = [name, f"`{report.task_id}`", str(report.num_starts)]
        for h in horizons:
            m = by_h.get(h)
            cells += [_obs_error(m, report.is_pixel, report.is_latent), _fmt(m.reward_rmse if m else None)]
        last = by_h.get(horizons[-1])
        cells.append(_fmt(last.termination_accuracy if last else None))
        rows.append("| " + " | ".join(cells) + " |")
    rows += _baseline_rows(reports, horizons)
    legend = (
        "\nobs err: nRMSE (RMSE / dataset std, mean over dimensions; lower is better), PSNR in dB for pixels, "
        "or the latent distance to the embedding of the real future for latent-only families."
    )
    return "\n".join(rows) + "\n" + legend + "\n"


def _baseline_rows(reports: Mapping[str, FidelityReport], horizons: Sequence[int]) -> list[str]:
    """One row per trivial baseline and distinct evaluation (task, episodes, starts, context) among the reports."""
    rows, seen = [], set()
    for report in reports.values():
        key = (report.task_id, report.obs_key, tuple(report.episodes), report.num_starts, report.context)
        if key in seen or not report.baselines:
            continue
        seen.add(key)
        for name in (n for n in BASELINES if n in report.baselines):
            label = f"baseline: {BASELINES[name]}" + (f" (context {report.context})" if report.context > 1 else "")
            cells = [label, f"`{report.task_id}`", str(report.num_starts)]
            by_h = {m.horizon: m for m in report.baselines[name]}
            for h in horizons:
                cells += [_obs_error(by_h.get(h), report.is_pixel, report.is_latent), "n/a"]
            cells.append("n/a")
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def _obs_error(m: HorizonMetrics | None, is_pixel: bool, is_latent: bool = False) -> str:
    if m is None:
        return "n/a"
    if is_latent:
        return f"{_fmt(m.latent_error)} (latent)"
    return f"{_fmt(m.psnr)} dB" if is_pixel and m.psnr is not None else _fmt(m.nrmse)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.4g}"


def _finite_or_none(value: Any) -> Any:
    """Strict JSON: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------- dataset checks
def check_dataset_matches(task: TaskSpec, reader: Any) -> None:
    """Raise ``DatasetError`` naming the key and shapes when the dataset is not data of the model's task."""
    features = reader.features
    for key in task.obs_keys:
        if key not in features:
            raise DatasetError(
                f"dataset {reader.root} has no feature {key!r} that the model observes "
                f"(task {task.task_id!r}); its features are {sorted(features)}"
            )
    expected = {**{k: tuple(s.shape) for k, s in task.key_spaces().items()}, ACTION_KEY: tuple(task.action_space.shape)}
    for key, shape_expected in expected.items():
        if key not in features:
            raise DatasetError(f"dataset {reader.root} has no {key!r} feature")
        shape = tuple(features[key]["shape"])
        if _squeeze_one(shape) != _squeeze_one(shape_expected):
            raise DatasetError(
                f"dataset {reader.root} feature {key!r} has shape {shape}, but the model (task {task.task_id!r}) "
                f"expects {shape_expected}: this is data of another task"
            )


def _squeeze_one(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


# ---------------------------------------------------------------------------------------------- evaluation
@dataclass
class _Windows:
    """Index arrays of one batch of starts: context frames, future frames, and which future steps are real."""

    context: np.ndarray  # [B, C] global frame indices
    is_first: np.ndarray  # [B, C] bool
    future: np.ndarray  # [B, H] global indices of obs t+1..t+H (clipped to the episode end)
    valid: np.ndarray  # [B, H] bool: observation t+h recorded
    step: np.ndarray  # [B, H] global row of transition t+h-1 (clipped to the episode end)
    step_valid: np.ndarray  # [B, H] bool: transition t+h-1 recorded


def _windows(
    starts: list[tuple[int, int]], ranges: Mapping[int, tuple[int, int]], context: int, horizon: int
) -> _Windows:
    lo = np.array([ranges[ep][0] for ep, _ in starts])
    last = np.array([ranges[ep][1] - 1 for ep, _ in starts])
    t = lo + np.array([s for _, s in starts])
    ctx = t[:, None] + np.arange(-context + 1, 1)[None]
    fut = t[:, None] + np.arange(1, horizon + 1)[None]
    last = last[:, None]
    return _Windows(
        ctx, ctx == lo[:, None], np.minimum(fut, last), fut <= last, np.minimum(fut - 1, last), fut - 1 <= last
    )


def _is_image(task: TaskSpec, key: str) -> bool:
    return len(task.key_space(key).shape) == 3


class _Data:
    """Columns of the dataset the evaluation needs, read once; frames read per batch."""

    def __init__(self, reader: Any, task: TaskSpec, term_key: str | None) -> None:
        self.reader, self.task = reader, task
        self.action = np.asarray(reader.column(ACTION_KEY), np.float32).reshape(reader.num_frames, -1)
        self.reward = _flat_column(reader, REWARD_KEY)
        self.terminated = _flat_column(reader, term_key)
        self.columns = {
            key: np.asarray(reader.column(key), np.float32) for key in task.obs_keys if not _is_image(task, key)
        }

    def observations(self, indices: np.ndarray, key: str | None = None) -> np.ndarray:
        """One key's observations at ``indices`` (any shape) in task units (the task's first key by default)."""
        key = key or self.task.obs_key
        shape = tuple(self.task.key_space(key).shape)
        if key in self.columns:
            return self.columns[key][indices].reshape(*indices.shape, *shape)
        unique, inverse = np.unique(indices.ravel(), return_inverse=True)
        frames = np.asarray(self.reader.frames(key, unique))
        return frames[inverse].reshape(*indices.shape, *frames.shape[1:])

    def model_input(self, indices: np.ndarray, device: torch.device) -> torch.Tensor | TensorDict:
        """What ``model.observe`` / ``model.embed`` take for these rows: a tensor, or a TensorDict of keys."""
        if not self.task.is_keyed:
            return _to_tensor(self.observations(indices), device)
        entries = {key: _to_tensor(self.observations(indices, key), device) for key in self.task.obs_keys}
        return TensorDict(entries, batch_size=list(indices.shape), device=device)

    def prev_actions(self, indices: np.ndarray, is_first: np.ndarray) -> np.ndarray:
        prev = self.action[np.maximum(indices - 1, 0)]
        prev[is_first] = 0.0
        return prev


def _flat_column(reader: Any, key: str | None) -> np.ndarray | None:
    if key is None or key not in reader.features:
        return None
    return np.asarray(reader.column(key)).reshape(reader.num_frames).astype(np.float64)


class _KeyAccumulator:
    """Running error sums of one observation key per horizon step: squared error per dimension, or frame scores."""

    def __init__(self, horizon: int, dim: int, pixel: bool, std: np.ndarray | None = None) -> None:
        self.pixel = pixel
        self.scale = np.where(std > 0, std, 1.0) if std is not None else np.ones(dim)  # nMSE per start
        self.obs_sq = np.zeros((horizon, dim))
        self.frame_mse, self.psnr, self.ssim = np.zeros(horizon), np.zeros(horizon), np.zeros(horizon)
        # [B, H] per batch, NaN where invalid
        self.per_start: dict[str, list[np.ndarray]] = {"psnr": [], "ssim": []} if pixel else {"nmse": []}

    def add(self, valid: np.ndarray, pred: np.ndarray, real: np.ndarray) -> None:
        # np.where, not a 0/1 weight: predictions past the episode end may be inf and 0 * inf is NaN
        if not self.pixel:
            err = (np.asarray(pred, np.float64) - real).reshape(*valid.shape, -1)
            self.obs_sq += np.where(valid[..., None], err**2, 0.0).sum(0)
            self.per_start["nmse"].append(np.where(valid, ((err / self.scale) ** 2).mean(-1), np.nan))
            return
        mse = frame_mse(pred, real)
        flat_pred = np.nan_to_num(np.asarray(pred, np.float64)).reshape(-1, *pred.shape[2:])
        psnr, ssim = frame_quality(flat_pred, np.asarray(real).reshape(-1, *real.shape[2:]))
        self.frame_mse += np.where(valid, mse, 0.0).sum(0)
        self.psnr += np.where(valid, psnr.reshape(valid.shape), 0.0).sum(0)
        self.ssim += np.where(valid, ssim.reshape(valid.shape), 0.0).sum(0)
        for name, value in (("psnr", psnr), ("ssim", ssim)):
            self.per_start[name].append(np.where(valid, value.reshape(valid.shape), np.nan))

    def stacked(self) -> dict[str, np.ndarray]:
        """Per-start scores ``[starts, H]`` (NaN where a start has no observation): ``psnr`` and ``ssim`` of frames,
        or ``nmse`` of vectors (squared error over the dataset std squared, averaged over dimensions)."""
        return {name: np.concatenate(chunks) for name, chunks in self.per_start.items()}

    def metrics(self, h: int, count: float, std: np.ndarray | None) -> dict[str, Any]:
        if count <= 0:
            return {}
        if self.pixel:
            return {
                "frame_mse": float(self.frame_mse[h] / count),
                "psnr": float(self.psnr[h] / count),
                "ssim": float(self.ssim[h] / count),
            }
        per_dim = normalized_rmse(self.obs_sq[h : h + 1], np.array([count]), std)[0]
        return {"nrmse": float(per_dim.mean()), "nrmse_per_dim": per_dim.tolist()}


class _Accumulator:
    """Running sums of errors per horizon step (observation keys, latent, reward, termination), batch by batch."""

    def __init__(
        self, horizon: int, keys: Mapping[str, tuple[int, bool]], stds: Mapping[str, np.ndarray] | None = None
    ) -> None:
        self.count = np.zeros(horizon)
        self.step_count = np.zeros(horizon)
        stds = stds or {}
        self.keys = {key: _KeyAccumulator(horizon, dim, pixel, stds.get(key)) for key, (dim, pixel) in keys.items()}
        self.latent = np.zeros(horizon)
        self.reward_sq = np.zeros(horizon)
        self.reward_abs = np.zeros(horizon)
        self.term_correct = np.zeros(horizon)

    def add(
        self,
        valid: np.ndarray,
        step_valid: np.ndarray,
        obs: Mapping[str, tuple] | None = None,
        latent: np.ndarray | None = None,
        reward: tuple | None = None,
        term: tuple | None = None,
    ) -> None:
        """One batch: ``obs`` maps key -> (prediction, truth) ``[B, H, ...]``; ``latent`` is distances ``[B, H]``."""
        self.count += valid.sum(0)
        self.step_count += step_valid.sum(0)
        for key, (pred, real) in (obs or {}).items():
            self.keys[key].add(valid, pred, real)
        if latent is not None:
            self.latent += np.where(valid, latent, 0.0).sum(0)
        if reward is not None:
            diff = reward[0] - reward[1]
            self.reward_sq += np.where(step_valid, diff**2, 0.0).sum(0)
            self.reward_abs += np.where(step_valid, np.abs(diff), 0.0).sum(0)
        if term is not None:
            correct = (term[0] > TERMINAL_THRESHOLD) == (term[1] > 0.5)
            self.term_correct += np.where(step_valid, correct, 0.0).sum(0)

    def metrics(
        self, stds: Mapping[str, np.ndarray | None], has: dict[str, bool], primary: str | None
    ) -> list[HorizonMetrics]:
        out = []
        for h in range(len(self.count)):
            n, k = self.count[h], self.step_count[h]
            per_key = {key: acc.metrics(h, n, stds.get(key)) for key, acc in self.keys.items()}
            top = per_key.get(primary, {}) if primary else {}
            out.append(
                HorizonMetrics(
                    horizon=h + 1,
                    count=int(n),
                    step_count=int(k),
                    nrmse=top.get("nrmse"),
                    nrmse_per_dim=top.get("nrmse_per_dim"),
                    frame_mse=top.get("frame_mse"),
                    psnr=top.get("psnr"),
                    ssim=top.get("ssim"),
                    latent_error=float(self.latent[h] / n) if has.get("latent") and n > 0 else None,
                    reward_rmse=float(np.sqrt(self.reward_sq[h] / k)) if has["reward"] and k > 0 else None,
                    reward_mae=float(self.reward_abs[h] / k) if has["reward"] and k > 0 else None,
                    termination_accuracy=float(self.term_correct[h] / k) if has["term"] and k > 0 else None,
                    per_key={key: {f: v for f, v in m.items() if f != "nrmse_per_dim"} for key, m in per_key.items()}
                    if len(per_key) > 1
                    else None,
                )
            )
        return out


def _obs_stds(reader: Any, task: TaskSpec, data: _Data) -> dict[str, np.ndarray]:
    """Dataset std of each vector key (``meta/stats.json``, else computed from the column)."""
    stds = {}
    for key, column in data.columns.items():
        stats = (reader.stats or {}).get(key, {})
        if "std" in stats:
            stds[key] = np.asarray(stats["std"], np.float64).reshape(-1)
        else:
            stds[key] = column.reshape(len(column), -1).std(0).astype(np.float64)
    return stds


def _to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.to(device=device, dtype=torch.float32 if tensor.is_floating_point() else tensor.dtype)


def _predict(
    model: WorldModel, data: _Data, win: _Windows, idx: np.ndarray, device: torch.device, generator, has: dict
) -> dict[str, Any]:
    """Observe the context and roll out the recorded actions for one batch; numpy predictions [B, H, ...]."""
    ctx, fut = win.context[idx], win.future[idx]
    prev = _to_tensor(data.prev_actions(ctx, win.is_first[idx]), device)
    first = torch.from_numpy(win.is_first[idx]).to(device)
    actions = data.action[win.step[idx]]  # action[t+h-1] leads to obs t+h (padding past the episode end is masked)
    state = model.observe_last(data.model_input(ctx, device), prev, first)
    states = model.rollout(state, _to_tensor(actions, device), generator=generator)
    batch, horizon = fut.shape
    flat = states.reshape(batch * horizon)
    out: dict[str, Any] = {}
    if has["obs"]:
        decoded = model.decode(flat)
        out["obs"] = {
            key: (decoded[key] if model.task.is_keyed else decoded)
            .reshape(batch, horizon, *model.task.key_space(key).shape)
            .float()
            .cpu()
            .numpy()
            for key in model.task.obs_keys
        }
    if has["latent"]:
        real = model.embed(data.model_input(fut.reshape(-1), device))
        distance = model.distance(model.state_embedding(flat).float(), real.float())
        out["latent"] = distance.reshape(batch, horizon).double().cpu().numpy()
    if has["reward"]:
        out["reward"] = model.reward(flat).reshape(batch, horizon).double().cpu().numpy()
    if has["term"]:
        out["term"] = model.terminal(flat).reshape(batch, horizon).double().cpu().numpy()
    return out


def _example_rows(starts: list[tuple[int, int]], valid: np.ndarray, n: int) -> np.ndarray:
    """Starts with the longest future, preferring distinct episodes, for trajectory plots."""
    order = np.argsort(-valid.sum(1), kind="stable")
    seen, first, rest = set(), [], []
    for i in order:
        (rest if starts[i][0] in seen else first).append(i)
        seen.add(starts[i][0])
    return np.array((first + rest)[:n], dtype=np.int64)


def evaluate_fidelity(
    model: WorldModel,
    reader: Any,
    episodes: Sequence[int],
    horizons: Sequence[int] = (1, 10, 50),
    context: int = 1,
    num_starts: int | None = 256,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 256,
    seed: int = 0,
    num_examples: int = 4,
    progress: bool = False,
    name: str | None = None,
) -> FidelityReport:
    """Open-loop fidelity of ``model`` on ``episodes`` of a ``LeRobotDatasetReader``.

    ``num_starts`` start steps are drawn (seeded by ``seed``; None = every start) among those with ``context``
    real steps and at least one future step in their episode; each batch of ``batch_size`` starts is one
    ``rollout`` call of ``max(horizons)`` steps. ``generator=None`` scores the model's mean prediction.
    """
    from worldrl.data import termination_key  # the data layer; imported here so evaluation imports stay light

    horizons = _check_args(horizons, context, num_starts, batch_size, episodes, reader)
    task, caps = model.task, model.capabilities
    check_dataset_matches(task, reader)
    device = torch.device(device) if device is not None else model.device
    term_key = termination_key(reader)
    data = _Data(reader, task, term_key)
    notes: list[str] = []
    has = _what_to_measure(task, caps, data, term_key, notes, _has_latent_targets(model))

    ranges = {int(ep): tuple(int(i) for i in reader.episode_range(int(ep))) for ep in episodes}
    candidates = candidate_starts({ep: hi - lo for ep, (lo, hi) in ranges.items()}, context)
    if not candidates:
        raise DatasetError(f"no episode among {list(ranges)} has the context={context} steps to observe")
    starts = select_starts(candidates, num_starts, seed)
    max_h = horizons[-1]
    win = _windows(starts, ranges, context, max_h)
    keys = _scored_keys(task) if has["obs"] else {}
    stds = _obs_stds(reader, task, data)
    acc = _Accumulator(max_h, keys, stds)
    example_rows = _example_rows(starts, win.valid, num_examples) if has["obs"] else np.zeros(0, np.int64)
    example_pred: dict[int, np.ndarray] = {}
    baseline = _Baselines(model, reader, data, ranges, keys, has, device, stds) if keys or has["latent"] else None

    model.eval()
    batches = range(0, len(starts), batch_size)
    with torch.no_grad():
        for lo in tqdm(batches, desc="open-loop rollouts", unit="batch", disable=not progress, leave=False):
            idx = np.arange(lo, min(lo + batch_size, len(starts)))
            pred = _predict(model, data, win, idx, device, generator, has)
            _accumulate(acc, data, win, idx, pred, has)
            if baseline is not None:
                baseline.add(win, idx)
            for i in example_rows[(example_rows >= idx[0]) & (example_rows <= idx[-1])]:
                example_pred[int(i)] = pred["obs"][task.obs_key][i - idx[0]]

    primary = task.obs_key if has["obs"] else None
    metrics = acc.metrics(stds, has, primary)
    examples = _examples(data, win, starts, example_rows, example_pred) if len(example_rows) else None
    for m in metrics:
        m.nrmse_per_dim = m.nrmse_per_dim if m.horizon in horizons else None
    per_h = [metrics[h - 1] for h in horizons]
    empty = [h.horizon for h in per_h if h.step_count == 0]
    if empty:
        notes.append(f"horizons {empty} exceed every evaluated episode's remaining length: no starts scored")
    return FidelityReport(
        model=name or getattr(model.config, "family", "") or type(model).__name__,
        task_id=task.task_id,
        obs_key=task.obs_key if not task.is_keyed else ", ".join(task.obs_keys),
        episodes=sorted(ranges),
        num_starts=len(starts),
        context=context,
        horizons=per_h,
        curve=[HorizonMetrics(**{**asdict(m), "nrmse_per_dim": None}) for m in metrics],
        dim_names=_dim_names(reader, task) if has["obs"] and not _is_image(task, task.obs_key) else None,
        notes=notes,
        stochastic=generator is not None,
        baselines=baseline.metrics(stds, horizons, primary) if baseline is not None else {},
        baseline_mean_from=baseline.mean_from if baseline is not None else None,
        paired=_paired(acc, baseline, primary, horizons),
        examples=examples,
    )


def _paired(acc: _Accumulator, baseline: _Baselines | None, primary: str | None, horizons: list[int]) -> dict:
    """Model minus each baseline, start by start, on the primary observation key (decoding models only)."""
    if baseline is None or primary is None:
        return {}
    model = acc.keys[primary].stacked()
    return {name: paired_differences(model, scores, horizons) for name, scores in baseline.per_start(primary).items()}


def _scored_keys(task: TaskSpec) -> dict[str, tuple[int, bool]]:
    """Each observation key with its flat size and whether it is an image."""
    return {key: (int(np.prod(space.shape)), _is_image(task, key)) for key, space in task.key_spaces().items()}


def _check_args(horizons, context, num_starts, batch_size, episodes, reader) -> list[int]:
    hs = sorted({int(h) for h in horizons})
    if not hs or hs[0] < 1:
        raise ConfigError(f"horizons must be positive integers, got {list(horizons)}")
    if context < 1:
        raise ConfigError(f"context must be >= 1, got {context}")
    if num_starts is not None and num_starts < 1:
        raise ConfigError(f"num_starts must be >= 1 or None, got {num_starts}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if len(episodes) == 0:
        raise ConfigError("episodes is empty: nothing to evaluate")
    bad = [ep for ep in episodes if not 0 <= int(ep) < reader.num_episodes]
    if bad:
        raise ConfigError(f"episodes {bad} do not exist: the dataset has episodes 0..{reader.num_episodes - 1}")
    return hs


def _has_latent_targets(model: WorldModel) -> bool:
    """The family gives its states a latent (``latent``) or embeds observations itself (``embed``)."""
    return type(model).latent is not WorldModel.latent or type(model).embed is not WorldModel.embed


def _what_to_measure(
    task: TaskSpec, caps, data: _Data, term_key: str | None, notes: list[str], latent_targets: bool = True
) -> dict[str, bool]:
    has = {"obs": caps.can_decode, "latent": not caps.can_decode and latent_targets}
    if has["latent"]:
        notes.append(
            "the model cannot decode observations (capabilities.can_decode=False): observation error is "
            "the latent distance to the model's embedding of the real future"
        )
    elif not caps.can_decode:
        notes.append("the model cannot decode observations and has no latent targets: reward/termination only")
    has["reward"] = caps.predicts_reward and data.reward is not None
    if not caps.predicts_reward:
        notes.append("the model does not predict rewards: reward error not measured")
    elif data.reward is None:
        notes.append(f"the dataset has no {REWARD_KEY!r}: reward error not measured")
    has["term"] = caps.predicts_terminal and data.terminated is not None
    if not caps.predicts_terminal:
        notes.append("the model does not predict termination: termination accuracy not measured")
    elif term_key is None:
        notes.append("the dataset records no termination (next.terminated / next.done): accuracy not measured")
    return has


def _accumulate(acc: _Accumulator, data: _Data, win: _Windows, idx: np.ndarray, pred: dict, has: dict) -> None:
    step = win.step[idx]  # row of the transition that produced obs t+h: its reward and terminated flag
    obs = {key: (value, data.observations(win.future[idx], key)) for key, value in pred.get("obs", {}).items()}
    acc.add(
        win.valid[idx],
        win.step_valid[idx],
        obs=obs,
        latent=pred.get("latent"),
        reward=(pred["reward"], data.reward[step]) if has["reward"] else None,
        term=(pred["term"], data.terminated[step]) if has["term"] else None,
    )


class _Baselines:
    """The trivial baselines (``BASELINES``) on the same starts: per observation key, or in the model's latent."""

    def __init__(
        self,
        model: WorldModel,
        reader: Any,
        data: _Data,
        evaluated: Mapping[int, tuple[int, int]],
        keys: Mapping[str, tuple[int, bool]],
        has: dict,
        device: torch.device,
        stds: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.model, self.data, self.keys, self.device, self.stds = model, data, keys, device, stds
        others = [ep for ep in range(reader.num_episodes) if ep not in evaluated]
        episodes = others or list(range(reader.num_episodes))
        rows = np.concatenate([np.arange(*reader.episode_range(ep)) for ep in episodes])
        self.mean_from = (
            f"the {len(episodes)} episodes not evaluated" if others else f"all {len(episodes)} episodes (none held out)"
        )
        self.means = {key: mean_observation(lambda i, k=key: data.observations(i, k), rows) for key in keys}
        self.latent = has["latent"]
        if self.latent:  # the mean embedding of the same rows (at most 1024, evenly spaced)
            sample = rows[np.linspace(0, len(rows) - 1, min(len(rows), 1024)).round().astype(np.int64)]
            self.mean_embedding = model.embed(data.model_input(sample, device)).float().mean(0, keepdim=True)
        self._accs: dict[str, _Accumulator] | None = None  # made on the first batch, which knows the horizon

    def add(self, win: _Windows, idx: np.ndarray) -> None:
        batch, horizon = win.future[idx].shape
        if self._accs is None:
            self._accs = {name: _Accumulator(horizon, self.keys, self.stds) for name in BASELINES}
        future, last = win.future[idx], win.context[idx, -1]
        for name in BASELINES:
            obs = {}
            for key in self.keys:
                real = self.data.observations(future, key)
                pred = (
                    repeat_last_prediction(self.data.observations(last, key), horizon)
                    if name == "repeat_last"
                    else mean_prediction(self.means[key], batch, horizon)
                )
                obs[key] = (np.asarray(pred, np.float64), real)
            latent = self._latent(name, future, last) if self.latent else None
            self._accs[name].add(win.valid[idx], win.step_valid[idx], obs=obs, latent=latent)

    def per_start(self, key: str) -> dict[str, dict[str, np.ndarray]]:
        """Each baseline's per-start scores of ``key`` (``_KeyAccumulator.stacked``)."""
        return {name: acc.keys[key].stacked() for name, acc in (self._accs or {}).items()}

    def _latent(self, name: str, future: np.ndarray, last: np.ndarray) -> np.ndarray:
        batch, horizon = future.shape
        real = self.model.embed(self.data.model_input(future.reshape(-1), self.device)).float()
        if name == "repeat_last":
            pred = self.model.embed(self.data.model_input(last, self.device)).float().repeat_interleave(horizon, 0)
        else:
            pred = self.mean_embedding.expand(batch * horizon, -1)
        return self.model.distance(pred, real).reshape(batch, horizon).double().cpu().numpy()

    def metrics(
        self, stds: Mapping[str, np.ndarray], horizons: Sequence[int], primary: str | None
    ) -> dict[str, list[HorizonMetrics]]:
        has = {"reward": False, "term": False, "latent": self.latent}
        out = {}
        for name, acc in (self._accs or {}).items():
            per_h = acc.metrics(stds, has, primary)
            out[name] = [HorizonMetrics(**{**asdict(per_h[h - 1]), "nrmse_per_dim": None}) for h in horizons]
        return out


def _examples(data: _Data, win: _Windows, starts, rows: np.ndarray, pred: dict[int, np.ndarray]) -> TrajectoryExamples:
    start_idx = win.context[rows, -1]
    real = data.observations(np.concatenate([start_idx[:, None], win.future[rows]], axis=1)).astype(np.float64)
    imagined = np.concatenate([real[:, :1], np.stack([pred[int(i)] for i in rows])], axis=1).astype(np.float64)
    valid = np.concatenate([np.ones((len(rows), 1), bool), win.valid[rows]], axis=1)
    real[~valid] = np.nan
    return TrajectoryExamples(
        real=real,
        imagined=imagined,
        length=win.valid[rows].sum(1),
        episode=np.array([starts[i][0] for i in rows]),
        start=np.array([starts[i][1] for i in rows]),
    )


def _dim_names(reader: Any, task: TaskSpec) -> list[str]:
    names = reader.features[task.obs_key].get("names")
    dim = int(np.prod(task.key_space(task.obs_key).shape))
    if isinstance(names, dict):  # lerobot sometimes nests names under an axis key
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == dim and all(isinstance(n, str) for n in names):
        return names
    return [f"{task.obs_key}[{i}]" for i in range(dim)]
