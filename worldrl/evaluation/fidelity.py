"""Open-loop fidelity of a world model on recorded episodes.

For start steps t of held-out episodes the model observes the real context ``obs[t-context+1 .. t]`` (with the
previous actions, as ``WorldModel.observe`` expects), then imagines open loop under the recorded actions
``action[t .. t+H-1]`` in one batched ``rollout`` call, and the prediction is compared with the real future:

* vector observations: per-dimension RMSE divided by the dataset std of that dimension (nRMSE); a dimension with
  zero std (constant in the data) is divided by 1, i.e. reported in raw units;
* pixel observations: per-frame MSE on [0, 1] pixels (decoded frames are read in task units, 0..255) and PSNR;
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from worldrl.errors import ConfigError, DatasetError
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
    examples: TrajectoryExamples | None = field(default=None, repr=False)
    """Trajectories kept for plotting (not serialised)."""

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("examples")
        return _finite_or_none(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FidelityReport":
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
    def from_json(cls, path: str | Path) -> "FidelityReport":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"{path} is not a fidelity report ({err})") from None

    @property
    def is_pixel(self) -> bool:
        return any(h.psnr is not None for h in self.horizons)

    def mean_curve_nrmse(self) -> float | None:
        """Average of the nRMSE curve over the horizons that had starts (one number per model)."""
        values = [h.nrmse for h in self.curve if h.nrmse is not None]
        return float(np.mean(values)) if values else None

    def baseline_error(self, name: str, horizon: int) -> float | None:
        """The baseline's observation error (nRMSE, or PSNR for pixels) at ``horizon``; None if not measured."""
        for m in self.baselines.get(name, []):
            if m.horizon == horizon:
                return m.psnr if self.is_pixel else m.nrmse
        return None

    def to_markdown(self) -> str:
        head = (
            f"**{self.model}** on `{self.task_id}` ({self.obs_key}): {len(self.episodes)} episodes, "
            f"{self.num_starts} starts, context {self.context}, "
            f"{'sampled' if self.stochastic else 'mean'} prediction\n\n"
        )
        obs_col = "PSNR (dB)" if self.is_pixel else "nRMSE"
        header = ["horizon", "starts (obs)", obs_col, "starts (transitions)", "reward RMSE", "reward MAE", "termination acc."]
        names = [n for n in BASELINES if n in self.baselines]
        header += [f"{obs_col}: {BASELINES[n]}" for n in names]
        rows = ["| " + " | ".join(header) + " |", "|---:" * len(header) + "|"]
        for h in self.horizons:
            obs = h.psnr if self.is_pixel else h.nrmse
            cells = [h.horizon, h.count, obs, h.step_count, h.reward_rmse, h.reward_mae, h.termination_accuracy]
            cells += [self.baseline_error(n, h.horizon) for n in names]
            rows.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
        notes = list(self.notes)
        if names and self.baseline_mean_from:
            notes.append(f"trivial baselines on the same starts; the dataset mean is taken over {self.baseline_mean_from}")
        notes_text = "".join(f"\n- {n}" for n in notes)
        return head + "\n".join(rows) + ("\n" + notes_text if notes_text else "") + "\n"


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
            cells += [_obs_error(m, report.is_pixel), _fmt(m.reward_rmse if m else None)]
        last = by_h.get(horizons[-1])
        cells.append(_fmt(last.termination_accuracy if last else None))
        rows.append("| " + " | ".join(cells) + " |")
    rows += _baseline_rows(reports, horizons)
    legend = "\nobs err: nRMSE (RMSE / dataset std, mean over dimensions; lower is better) or PSNR in dB for pixels."
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
                cells += [_obs_error(by_h.get(h), report.is_pixel), "n/a"]
            cells.append("n/a")
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def _obs_error(m: HorizonMetrics | None, is_pixel: bool) -> str:
    if m is None:
        return "n/a"
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
    """Raise ``ValueError`` naming the key and shapes when the dataset is not data of the model's task."""
    features = reader.features
    if task.obs_key not in features:
        raise DatasetError(
            f"dataset {reader.root} has no feature {task.obs_key!r} that the model observes "
            f"(task {task.task_id!r}); its features are {sorted(features)}"
        )
    for key, expected in ((task.obs_key, task.obs_shape), (ACTION_KEY, tuple(task.action_space.shape))):
        if key not in features:
            raise DatasetError(f"dataset {reader.root} has no {key!r} feature")
        shape = tuple(features[key]["shape"])
        if _squeeze_one(shape) != _squeeze_one(expected):
            raise DatasetError(
                f"dataset {reader.root} feature {key!r} has shape {shape}, but the model (task {task.task_id!r}) "
                f"expects {expected}: this is data of another task"
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


def _windows(starts: list[tuple[int, int]], ranges: Mapping[int, tuple[int, int]], context: int, horizon: int) -> _Windows:
    lo = np.array([ranges[ep][0] for ep, _ in starts])
    last = np.array([ranges[ep][1] - 1 for ep, _ in starts])
    t = lo + np.array([s for _, s in starts])
    ctx = t[:, None] + np.arange(-context + 1, 1)[None]
    fut = t[:, None] + np.arange(1, horizon + 1)[None]
    last = last[:, None]
    return _Windows(
        ctx, ctx == lo[:, None], np.minimum(fut, last), fut <= last, np.minimum(fut - 1, last), fut - 1 <= last
    )


class _Data:
    """Columns of the dataset the evaluation needs, read once; frames read per batch."""

    def __init__(self, reader: Any, task: TaskSpec, term_key: str | None) -> None:
        self.reader, self.task = reader, task
        self.action = np.asarray(reader.column(ACTION_KEY), np.float32).reshape(reader.num_frames, -1)
        self.reward = _flat_column(reader, REWARD_KEY)
        self.terminated = _flat_column(reader, term_key)
        self.obs = None if task.is_pixel else np.asarray(reader.column(task.obs_key), np.float32)

    def observations(self, indices: np.ndarray) -> np.ndarray:
        if self.obs is not None:
            return self.obs[indices].reshape(*indices.shape, *self.task.obs_shape)
        unique, inverse = np.unique(indices.ravel(), return_inverse=True)
        frames = np.asarray(self.reader.frames(self.task.obs_key, unique))
        return frames[inverse].reshape(*indices.shape, *frames.shape[1:])

    def prev_actions(self, indices: np.ndarray, is_first: np.ndarray) -> np.ndarray:
        prev = self.action[np.maximum(indices - 1, 0)]
        prev[is_first] = 0.0
        return prev


def _flat_column(reader: Any, key: str | None) -> np.ndarray | None:
    if key is None or key not in reader.features:
        return None
    return np.asarray(reader.column(key)).reshape(reader.num_frames).astype(np.float64)


class _Accumulator:
    """Running sums of squared/absolute errors per horizon step, so batches of starts can be merged."""

    def __init__(self, horizon: int, obs_dim: int) -> None:
        self.count = np.zeros(horizon)
        self.step_count = np.zeros(horizon)
        self.obs_sq = np.zeros((horizon, obs_dim))
        self.frame_mse = np.zeros(horizon)
        self.psnr = np.zeros(horizon)
        self.reward_sq = np.zeros(horizon)
        self.reward_abs = np.zeros(horizon)
        self.term_correct = np.zeros(horizon)

    def add(self, valid: np.ndarray, step_valid: np.ndarray, obs, frames, reward, term) -> None:
        """Add one batch; each of obs/frames/reward/term is (prediction, truth) [B, H, ...] or None."""
        # np.where, not a 0/1 weight: predictions past the episode end may be inf and 0 * inf is NaN
        self.count += valid.sum(0)
        self.step_count += step_valid.sum(0)
        if obs is not None:
            err = (obs[0] - obs[1]).reshape(*valid.shape, -1)
            self.obs_sq += np.where(valid[..., None], err**2, 0.0).sum(0)
        if frames is not None:
            mse = frame_mse(*frames)
            self.frame_mse += np.where(valid, mse, 0.0).sum(0)
            self.psnr += np.where(valid, psnr_from_mse(mse), 0.0).sum(0)
        if reward is not None:
            diff = reward[0] - reward[1]
            self.reward_sq += np.where(step_valid, diff**2, 0.0).sum(0)
            self.reward_abs += np.where(step_valid, np.abs(diff), 0.0).sum(0)
        if term is not None:
            correct = (term[0] > TERMINAL_THRESHOLD) == (term[1] > 0.5)
            self.term_correct += np.where(step_valid, correct, 0.0).sum(0)

    def metrics(self, std: np.ndarray | None, has: dict[str, bool]) -> list[HorizonMetrics]:
        per_dim = normalized_rmse(self.obs_sq, self.count, std) if has["obs"] else None
        out = []
        for h in range(len(self.count)):
            n, k = self.count[h], self.step_count[h]
            obs_ok, step_ok = n > 0, k > 0
            out.append(
                HorizonMetrics(
                    horizon=h + 1,
                    count=int(n),
                    step_count=int(k),
                    nrmse=float(per_dim[h].mean()) if per_dim is not None and obs_ok else None,
                    nrmse_per_dim=per_dim[h].tolist() if per_dim is not None and obs_ok else None,
                    frame_mse=float(self.frame_mse[h] / n) if has["frames"] and obs_ok else None,
                    psnr=float(self.psnr[h] / n) if has["frames"] and obs_ok else None,
                    reward_rmse=float(np.sqrt(self.reward_sq[h] / k)) if has["reward"] and step_ok else None,
                    reward_mae=float(self.reward_abs[h] / k) if has["reward"] and step_ok else None,
                    termination_accuracy=float(self.term_correct[h] / k) if has["term"] and step_ok else None,
                )
            )
        return out


def _obs_std(reader: Any, task: TaskSpec, data: _Data) -> np.ndarray | None:
    if task.is_pixel:
        return None
    stats = (reader.stats or {}).get(task.obs_key, {})
    if "std" in stats:
        return np.asarray(stats["std"], np.float64).reshape(-1)
    return data.obs.reshape(len(data.obs), -1).std(0).astype(np.float64)


def _to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.to(device=device, dtype=torch.float32 if tensor.is_floating_point() else tensor.dtype)


def _predict(
    model: WorldModel, data: _Data, win: _Windows, idx: np.ndarray, device: torch.device, generator, has: dict
) -> dict[str, np.ndarray]:
    """Observe the context and roll out the recorded actions for one batch; numpy predictions [B, H, ...]."""
    ctx, fut = win.context[idx], win.future[idx]
    obs = _to_tensor(data.observations(ctx), device)
    prev = _to_tensor(data.prev_actions(ctx, win.is_first[idx]), device)
    first = torch.from_numpy(win.is_first[idx]).to(device)
    actions = data.action[win.step[idx]]  # action[t+h-1] leads to obs t+h (padding past the episode end is masked)
    state = model.observe_last(obs, prev, first)
    states = model.rollout(state, _to_tensor(actions, device), generator=generator)
    batch, horizon = fut.shape
    flat = states.reshape(batch * horizon)
    out: dict[str, np.ndarray] = {}
    if has["obs"] or has["frames"]:
        out["obs"] = model.decode(flat).reshape(batch, horizon, *model.task.obs_shape).float().cpu().numpy()
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
    has = _what_to_measure(task, caps, data, term_key, notes)

    ranges = {int(ep): tuple(int(i) for i in reader.episode_range(int(ep))) for ep in episodes}
    candidates = candidate_starts({ep: hi - lo for ep, (lo, hi) in ranges.items()}, context)
    if not candidates:
        raise DatasetError(f"no episode among {list(ranges)} has the context={context} steps to observe")
    starts = select_starts(candidates, num_starts, seed)
    max_h = horizons[-1]
    win = _windows(starts, ranges, context, max_h)
    std = _obs_std(reader, task, data)
    acc = _Accumulator(max_h, int(np.prod(task.obs_shape)) if has["obs"] else 1)
    example_rows = _example_rows(starts, win.valid, num_examples) if has["obs"] else np.zeros(0, np.int64)
    example_pred: dict[int, np.ndarray] = {}
    scores_obs = has["obs"] or has["frames"]
    if scores_obs:
        mean_obs, mean_from = _baseline_mean(reader, data, ranges)
        baseline_acc = {name: _Accumulator(max_h, acc.obs_sq.shape[1]) for name in BASELINES}

    model.eval()
    batches = range(0, len(starts), batch_size)
    with torch.no_grad():
        for lo in tqdm(batches, desc="open-loop rollouts", unit="batch", disable=not progress, leave=False):
            idx = np.arange(lo, min(lo + batch_size, len(starts)))
            pred = _predict(model, data, win, idx, device, generator, has)
            _accumulate(acc, data, win, idx, pred, has)
            if scores_obs:
                _accumulate_baselines(baseline_acc, data, win, idx, mean_obs, has)
            for i in example_rows[(example_rows >= idx[0]) & (example_rows <= idx[-1])]:
                example_pred[int(i)] = pred["obs"][i - idx[0]]

    metrics = acc.metrics(std, has)
    examples = _examples(data, win, starts, example_rows, example_pred) if len(example_rows) else None
    for m in metrics:
        m.nrmse_per_dim = m.nrmse_per_dim if m.horizon in horizons else None
    per_h = [metrics[h - 1] for h in horizons]
    baselines: dict[str, list[HorizonMetrics]] = {}
    if scores_obs:
        only_obs = {**has, "reward": False, "term": False}
        for name, b_acc in baseline_acc.items():
            b_metrics = b_acc.metrics(std, only_obs)
            baselines[name] = [HorizonMetrics(**{**asdict(b_metrics[h - 1]), "nrmse_per_dim": None}) for h in horizons]
    empty = [h.horizon for h in per_h if h.step_count == 0]
    if empty:
        notes.append(f"horizons {empty} exceed every evaluated episode's remaining length: no starts scored")
    return FidelityReport(
        model=name or getattr(model.config, "family", "") or type(model).__name__,
        task_id=task.task_id,
        obs_key=task.obs_key,
        episodes=sorted(ranges),
        num_starts=len(starts),
        context=context,
        horizons=per_h,
        curve=[HorizonMetrics(**{**asdict(m), "nrmse_per_dim": None}) for m in metrics],
        dim_names=_dim_names(reader, task) if has["obs"] else None,
        notes=notes,
        stochastic=generator is not None,
        baselines=baselines,
        baseline_mean_from=mean_from if scores_obs else None,
        examples=examples,
    )


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


def _what_to_measure(task: TaskSpec, caps, data: _Data, term_key: str | None, notes: list[str]) -> dict[str, bool]:
    has = {"obs": caps.can_decode and not task.is_pixel, "frames": caps.can_decode and task.is_pixel}
    if not caps.can_decode:
        notes.append("the model cannot decode observations (capabilities.can_decode=False): reward/termination only")
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
    real_obs = data.observations(win.future[idx]) if (has["obs"] or has["frames"]) else None
    acc.add(
        win.valid[idx],
        win.step_valid[idx],
        obs=(pred["obs"], real_obs) if has["obs"] else None,
        frames=(pred["obs"], real_obs) if has["frames"] else None,
        reward=(pred["reward"], data.reward[step]) if has["reward"] else None,
        term=(pred["term"], data.terminated[step]) if has["term"] else None,
    )


def _baseline_mean(reader: Any, data: _Data, evaluated: Mapping[int, tuple[int, int]]) -> tuple[np.ndarray, str]:
    """The mean observation over the episodes not evaluated (the training split), or over all episodes if none."""
    others = [ep for ep in range(reader.num_episodes) if ep not in evaluated]
    episodes = others or list(range(reader.num_episodes))
    rows = np.concatenate([np.arange(*reader.episode_range(ep)) for ep in episodes])
    mean = mean_observation(lambda idx: data.observations(idx), rows)
    where = f"the {len(episodes)} episodes not evaluated" if others else f"all {len(episodes)} episodes (none held out)"
    return mean, where


def _accumulate_baselines(accs: dict, data: _Data, win: _Windows, idx: np.ndarray, mean_obs: np.ndarray, has: dict) -> None:
    """Score the trivial baselines of one batch of starts against the same real futures as the model."""
    real = data.observations(win.future[idx])
    last = data.observations(win.context[idx, -1])
    batch, horizon = win.future[idx].shape
    preds = {
        "repeat_last": repeat_last_prediction(last, horizon),
        "dataset_mean": mean_prediction(mean_obs, batch, horizon),
    }
    for name, pred in preds.items():
        pair = (np.asarray(pred, np.float64), real)
        accs[name].add(
            win.valid[idx], win.step_valid[idx], obs=pair if has["obs"] else None,
            frames=pair if has["frames"] else None, reward=None, term=None,
        )


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
    dim = int(np.prod(task.obs_shape))
    if isinstance(names, dict):  # lerobot sometimes nests names under an axis key
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == dim and all(isinstance(n, str) for n in names):
        return names
    return [f"{task.obs_key}[{i}]" for i in range(dim)]
