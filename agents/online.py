"""The online loop: collect real steps -> fit the world model -> improve the agent in imagination -> repeat.

``train_agent(OnlineConfig(agent="mpc-cem", env_id="Pendulum-v1", real_steps=5000))`` runs, per iteration of
``steps_per_iteration`` real steps:

1. collect in the REAL env (``worldrl.tasks.real_envs.make_real_env``) with the agent (uniform random actions for the
   first ``initial_random_steps``), into an in-memory ``worldrl.data.replay.ReplayBuffer``;
2. fine-tune the SAME world model with the shared ``Trainer`` on ``ReplayBuffer.windows(T)`` for ``model_steps``
   optimiser steps, normalisation refitted from the buffer's statistics first;
3. check that imagination stays finite (random-action rollouts from real states);
4. improve the agent through a registered *improver* (``IMPROVERS``): MPC agents only plan, so nothing learns
   beyond the model; ``dreamer`` runs ``ImaginationActorCritic.update`` from start states observed on real
   windows; ``mbpo`` branches SAC rollouts from real states and trains on the mixed buffer;
5. every ``eval_every`` real steps (and at the end), evaluate on the REAL env: mean return and 95% CI over
   ``eval_episodes`` episodes (``worldrl.evaluation.evaluate_on_real_env``), appended to ``learning_curve.csv``
   and drawn in ``learning_curve.png``;
6. keep the last good state in ``checkpoints/last_good`` (model via ``save_pretrained``, agent via its ``save``).

A NaN in model training, in imagination or in the agent's losses stops the run with ``OnlineTrainingError``
naming the last good checkpoint, which is left untouched. At the end: ``model/``, ``agent/``, the curve files,
``iterations.jsonl`` (every iteration's metrics), optionally ``data/`` (the real steps as a LeRobot dataset), and a
summary table.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from tensordict import TensorDict
from tqdm.auto import tqdm
from worldrl.agents.protocol import available_agents, make_agent

from worldrl.config_loading import check_fields, config_from_dict
from worldrl.data.replay import ReplayBuffer
from worldrl.errors import ConfigError, DivergedError, EnvError, InputNotFoundError
from worldrl.io import atomic_directory, atomic_write_bytes, write_json
from worldrl.models.base import WorldModel, build_model
from worldrl.models.checkpoint import load_pretrained
from worldrl.models.task_spec import TaskSpec

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
"""Presets of a source checkout (``configs/`` beside ``agents/``); ``./configs`` is searched first."""

GENERIC_MODEL: dict[str, Any] = {
    "data": {"window": 2},
    "model": {"family": "ensemble", "num_members": 5, "num_elites": 3, "hidden_dims": [200, 200, 200],
              "predict_delta": True, "predict_terminal": True},
    "trainer": {"batch_size": 256, "lr": 1.0e-3, "weight_decay": 1.0e-5, "grad_clip": 10.0},
}
"""The small probabilistic ensemble used when a task has no ``configs/ensemble_<task>.yaml`` preset."""

DEFAULT_AGENT_OPTIONS: dict[str, dict[str, Any]] = {
    # Sized so Pendulum-v1 at 5000 real steps runs in minutes on two CPU cores; raise them on a GPU.
    "mpc-cem": {"horizon": 12, "num_samples": 200, "num_elites": 20, "iterations": 2},
    "mpc-mppi": {"horizon": 12, "num_samples": 200, "num_elites": 50, "iterations": 2},
    "dreamer": {"actor_lr": 1e-4, "critic_lr": 3e-4},
    "mbpo": {},
}
"""Agent settings the loop starts from; ``OnlineConfig.agent_options`` override them key by key."""


# =========================================================================== config and results
@dataclass
class OnlineConfig:
    """One online run: which agent on which real env, for how many real steps, and how to fit the model."""

    agent: str = "mpc-cem"
    """Registered agent name (``worldrl.agents.available_agents()``): mpc-cem, mpc-mppi, dreamer, mbpo."""
    env_id: str = "Pendulum-v1"
    """The real environment (a Gymnasium id or ``dmc:domain-task``); actions must be a continuous Box."""
    real_steps: int = 5000
    """Total real environment steps (the budget every comparison is made at)."""
    seed: int = 0
    """Seeds the real env, the random warm-up actions, the model fits and the agent."""
    initial_random_steps: int | None = None
    """Real steps with uniform random actions before the agent acts; None: one episode of the task."""
    steps_per_iteration: int = 250
    """Real steps collected between two model fits / agent improvements (MBPO refits every 250)."""
    model_config: str | None = None
    """YAML with ``model``/``trainer``/``data.window`` sections (``worldrl train`` layout); None:
    ``configs/ensemble_<task>.yaml`` when it exists, else a small generic ensemble."""
    model: str | None = None
    """A pretrained world-model checkpoint to start from (must be trained for ``env_id``); None: fresh model."""
    model_steps: int = 100
    """Optimiser steps of each model fit (fine-tuning the same model every iteration)."""
    eval_every: int = 1000
    """Evaluate on the real env every this many real steps (and always at the end)."""
    eval_episodes: int = 5
    """Real episodes per evaluation (run in parallel, one env copy each)."""
    output_dir: str = "runs/train_agent"
    """Where curves, checkpoints, the final model and agent are written."""
    device: str = "auto"
    """Torch device of model and agent (``"cpu"``, ``"cuda"``, ...); ``"auto"`` picks CUDA when available."""
    agent_options: dict[str, Any] = field(default_factory=dict)
    """Agent settings on top of ``DEFAULT_AGENT_OPTIONS[agent]`` (planner fields, actor-critic or MBPO config)."""
    updates_per_step: float = 1.0
    """dreamer: imagination updates per new real step."""
    start_batch: int = 64
    """dreamer: real windows per update whose observed states start the imagined rollouts."""
    save_dataset: bool = True
    """Write the real steps as a LeRobot v3.0 dataset under ``output_dir/data`` at the end."""
    video: bool = True
    """Record one real episode of the final agent as ``output_dir/final_episode.mp4`` at the end."""

    def __post_init__(self) -> None:
        check_fields(self, {
            "real_steps": (self.real_steps >= 1, ">= 1"),
            "initial_random_steps": (self.initial_random_steps is None or self.initial_random_steps >= 0, ">= 0"),
            "steps_per_iteration": (self.steps_per_iteration >= 1, ">= 1"),
            "model_steps": (self.model_steps >= 1, ">= 1"),
            "eval_every": (self.eval_every >= 1, ">= 1"),
            "eval_episodes": (self.eval_episodes >= 1, ">= 1"),
            "updates_per_step": (self.updates_per_step >= 0, ">= 0"),
            "start_batch": (self.start_batch >= 1, ">= 1"),
            "agent_options": (isinstance(self.agent_options, dict), "a mapping"),
            "agent": (self.agent in available_agents(), f"a known agent {available_agents()} (unknown agent)"),
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnlineConfig:
        """The config from a saved run's ``state.json`` or a YAML mapping (strict: ``config_from_dict``)."""
        return config_from_dict(cls, data, "online")


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


@dataclass
class OnlineResult:
    """What ``train_agent`` returns."""

    output_dir: Path
    model_path: Path
    agent_path: Path
    checkpoint_path: Path
    curve_csv: Path
    curve_png: Path
    evaluations: list[EvalRecord]
    real_steps: int
    seconds: float
    final_returns: list[float]
    """Every episode return of the last evaluation (for pooling across seeds)."""
    video_path: Path | None = None
    """One real episode of the final agent (``final_episode.mp4``); None when off or rendering failed."""

    @property
    def final(self) -> EvalRecord:
        return self.evaluations[-1]

    def summary(self) -> str:
        lines = [f"{'real steps':>10}  {'return':>10}  {'95% CI':>22}  {'train return':>12}  {'time':>8}"]
        for r in self.evaluations:
            ci = "n/a" if math.isnan(r.ci95_low) else f"[{r.ci95_low:.1f}, {r.ci95_high:.1f}]"
            lines.append(f"{r.real_steps:>10d}  {r.mean:>10.1f}  {ci:>22}  {r.train_return:>12.1f}  "
                         f"{r.wall_clock_s:>7.0f}s")
        lines.append(f"model: {self.model_path}\nagent: {self.agent_path}\ncurve: {self.curve_csv}, {self.curve_png}")
        if self.video_path is not None:
            lines.append(f"video: {self.video_path}")
        return "\n".join(lines)


class OnlineTrainingError(DivergedError):
    """The world model or the agent diverged (NaN/inf); the message names the last good checkpoint."""


# =========================================================================== setup
@dataclass
class ModelSpec:
    """The parts of a ``worldrl train`` YAML the loop uses."""

    model: dict[str, Any]
    trainer: dict[str, Any]
    window: int
    source: str


def preset_names(env_id: str) -> list[str]:
    """``HalfCheetah-v5`` -> ``["half_cheetah", "halfcheetah"]``: the preset file stems to look for."""
    base = re.sub(r"-v\d+$", "", env_id.split(":")[-1])
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", base).replace("-", "_").lower()
    return list(dict.fromkeys([snake, snake.replace("_", "")]))


def default_model_config(env_id: str) -> Path | None:
    for folder in (Path.cwd() / "configs", REPO_CONFIGS):
        for name in preset_names(env_id):
            path = folder / f"ensemble_{name}.yaml"
            if path.is_file():
                return path
    return None


def load_model_spec(path: str | os.PathLike | None, env_id: str) -> ModelSpec:
    """Model and trainer sections from ``path`` (or the task's preset, or the generic ensemble)."""
    from worldrl.training.run import coerce_numbers

    path = Path(path) if path is not None else default_model_config(env_id)
    if path is None:
        cfg, source = GENERIC_MODEL, "generic ensemble"
    else:
        if not path.is_file():
            raise InputNotFoundError(f"model config {path} does not exist")
        try:
            cfg = coerce_numbers(yaml.safe_load(path.read_text()) or {})
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
        source = str(path)
    model = dict(cfg.get("model") or {})
    if not model.get("family"):
        raise ConfigError(f"{source}: model.family is required (e.g. ensemble, vrnn)")
    window = int((cfg.get("data") or {}).get("window", 2))
    if window < 2:
        raise ConfigError(f"{source}: data.window must be >= 2 (a transition needs two steps), got {window}")
    return ModelSpec(model, dict(cfg.get("trainer") or {}), window, source)


def task_for_env(env: gym.Env, env_id: str) -> TaskSpec:
    """The TaskSpec of a real env; only flat Box observations and continuous Box actions are supported."""
    from worldrl.tasks.real_envs import env_fps

    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise EnvError(f"{env_id} observes {obs_space}; the online loop needs a flat Box state observation")
    spec = getattr(env, "spec", None)
    return TaskSpec(obs_space, act_space, task_id=env_id, fps=float(env_fps(env)),
                    max_episode_steps=spec.max_episode_steps if spec is not None else None)


def check_action_space(agent: str, env_id: str, space: gym.Space) -> None:
    """Every agent here samples or squashes continuous actions: discrete spaces get a clear refusal."""
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        raise EnvError(f"agent {agent!r} needs a continuous Box action space, but {env_id} has {space}; "
                         "discrete actions are not supported by the world-model agents")


def build_world_model(config: OnlineConfig, task: TaskSpec, spec: ModelSpec, device: torch.device) -> WorldModel:
    """A fresh model from the spec, or the pretrained ``config.model`` after checking it models this task."""
    if config.model is None:
        torch.manual_seed(config.seed)
        options = dict(spec.model)
        return build_model(options.pop("family"), options, task).to(device)
    model = load_pretrained(config.model, device=device)
    if model.task.task_id != config.env_id:
        raise ConfigError(f"the world model at {config.model} was trained for task {model.task.task_id!r}, "
                         f"not --env {config.env_id!r}")
    model.task.check_compatible(task.observation_space, task.action_space)
    return model


# =========================================================================== model fitting
def buffer_stats(replay: ReplayBuffer) -> dict[str, dict[str, np.ndarray]]:
    """Normalisation statistics of the real data, plus ``delta`` (next obs - obs) for delta-predicting models."""
    stats = replay.stats()
    a = replay.arrays()
    delta = a["next_obs"] - a["obs"]
    stats["delta"] = {"mean": delta.mean(0), "std": delta.std(0)}
    return stats


def split_episodes_for_fit(replay: ReplayBuffer, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Train/validation episodes: a random 10% held out once there are 4+ episodes (elites need validation)."""
    episodes = np.unique(replay.arrays()["episode"])
    if len(episodes) < 4:
        return episodes, None
    held = rng.choice(episodes, size=max(1, len(episodes) // 10), replace=False)
    return np.setdiff1d(episodes, held), held


def trainer_config(spec: ModelSpec, config: OnlineConfig, iteration: int, device: torch.device) -> Any:
    from worldrl.training import TrainerConfig

    steps = config.model_steps
    options = {
        **spec.trainer,
        "max_steps": steps,
        "warmup_steps": min(int(spec.trainer.get("warmup_steps", 0)), steps // 4),
        "eval_every": 0,  # validate once, at the end of the fit (elite selection)
        "checkpoint_every": 0,
        "keep_last": 1,
        "early_stopping_patience": None,
        "log_every": max(1, min(int(spec.trainer.get("log_every", 10)), steps)),
        "num_workers": 0,  # the windows are in memory: a worker process would only add start-up time
        "loggers": ["jsonl"],
        "progress": False,  # the loop's own bar shows progress; nested fit bars would scroll the terminal
        "device": str(device),
        "seed": config.seed * 100_003 + iteration,  # the trainer re-seeds the global RNGs per fit
    }
    try:
        return TrainerConfig.from_dict(options)
    except ConfigError as err:
        raise ConfigError(f"{spec.source}: trainer: {' '.join(str(err).split())}") from None


def fit_model(model: WorldModel, replay: ReplayBuffer, spec: ModelSpec, config: OnlineConfig, iteration: int,
              workdir: Path) -> dict[str, float]:
    """Fine-tune ``model`` in place on all real windows; returns the fit's final losses."""
    from worldrl.training import Trainer

    train_eps, val_eps = split_episodes_for_fit(replay, np.random.default_rng([config.seed, iteration]))
    train = replay.windows(spec.window, train_eps)
    val = replay.windows(spec.window, val_eps) if val_eps is not None else train
    model.fit_normalization(buffer_stats(replay))
    fit_dir = workdir / f"fit_{iteration:04d}"
    shutil.rmtree(fit_dir, ignore_errors=True)
    trainer = Trainer(model, train, val, trainer_config(spec, config, iteration, model.device), fit_dir)
    with (workdir.parent / "model_fits.log").open("a") as log, contextlib.redirect_stdout(log):
        result = trainer.fit()  # its per-fit summary goes to the log, not between the loop's progress lines
    if trainer.ema is not None:  # act with the weights the trainer validated and saved
        model.load_state_dict(trainer.eval_model.state_dict())
    model.eval()
    for old in workdir.glob("fit_*"):
        if old != fit_dir:
            shutil.rmtree(old, ignore_errors=True)
    return {"model/train_loss": _nan_if_none(result.final_train_loss), "model/val_loss": _nan_if_none(result.final_val_loss)}


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


@torch.no_grad()
def check_imagination(model: WorldModel, starts: np.ndarray, action_space: gym.spaces.Box, horizon: int = 10,
                      seed: int = 0) -> None:
    """Roll random actions from real states through the model; ``FloatingPointError`` if anything is non-finite."""
    device = model.device
    gen = torch.Generator(device=device).manual_seed(seed)
    obs = torch.as_tensor(starts, dtype=torch.float32, device=device)
    batch = obs.shape[0]
    state = model.observe_last(obs[:, None], torch.zeros(batch, 1, model.task.action_dim, device=device),
                               torch.ones(batch, 1, dtype=torch.bool, device=device))
    low = torch.as_tensor(action_space.low, dtype=torch.float32, device=device).reshape(-1)
    high = torch.as_tensor(action_space.high, dtype=torch.float32, device=device).reshape(-1)
    actions = low + (high - low) * torch.rand(batch, horizon, low.numel(), generator=gen, device=device)
    states = model.rollout(state, actions, gen)
    readouts = {"reward": model.reward(states)}
    readouts["observation" if model.capabilities.can_decode else "latent"] = (
        model.decode(states) if model.capabilities.can_decode else model.latent(states))
    for name, value in readouts.items():
        if not bool(torch.isfinite(value).all()):
            raise FloatingPointError(f"the world model's imagined {name} is NaN/inf within {horizon} steps of real "
                                     "states: the model diverged")


# =========================================================================== improvers
@dataclass
class ImproveContext:
    """What an improver may use to make the agent better after a model fit."""

    model: WorldModel
    replay: ReplayBuffer
    new_steps: int
    window: int
    config: OnlineConfig
    rng: np.random.Generator


Improver = Callable[[Any, ImproveContext], dict[str, float]]
IMPROVERS: dict[str, Improver] = {}


def register_improver(agent: str, improver: Improver) -> None:
    """How the online loop improves agent ``agent`` in imagination (its planners need nothing)."""
    IMPROVERS[agent] = improver


def _plan_only(agent: Any, ctx: ImproveContext) -> dict[str, float]:
    return {}  # MPC plans with the freshly fitted model at every step: nothing else learns


def observed_start_states(model: WorldModel, windows: Any, batch: int, rng: np.random.Generator) -> TensorDict:
    """Posterior states of ``batch`` random real windows, flattened to ``[N]`` (padding steps dropped)."""
    from worldrl.training.trainer import collate_windows, to_task_shapes

    items = [windows[int(i)] for i in rng.integers(len(windows), size=batch)]
    b = to_task_shapes(collate_windows(items), model.task).to(model.device)
    prev = torch.zeros_like(b["action"])
    prev[:, 1:] = b["action"][:, :-1]
    prev[b["is_first"]] = 0.0
    with torch.no_grad():
        states = model.observe(b["obs"], prev, b["is_first"])
    return states[b["mask"]]


def _improve_dreamer(agent: Any, ctx: ImproveContext) -> dict[str, float]:
    windows = ctx.replay.windows(ctx.window)
    updates = max(1, round(ctx.config.updates_per_step * ctx.new_steps))
    totals: dict[str, float] = {}
    for _ in range(updates):
        metrics = agent.update(observed_start_states(ctx.model, windows, ctx.config.start_batch, ctx.rng))
        for key, value in metrics.items():
            totals[key] = totals.get(key, 0.0) + float(value) / updates
    return {f"dreamer/{k}": v for k, v in totals.items()}


def _improve_mbpo(agent: Any, ctx: ImproveContext) -> dict[str, float]:
    return agent.update(ctx.replay)


register_improver("mpc-cem", _plan_only)
register_improver("mpc-mppi", _plan_only)
register_improver("dreamer", _improve_dreamer)
register_improver("mbpo", _improve_mbpo)


def improver_for(name: str, agent: Any) -> Improver:
    if name in IMPROVERS:
        return IMPROVERS[name]
    if callable(getattr(agent, "update", None)):
        raise TypeError(f"agent {name!r} learns (it has update()), but the online loop has no improver for it; "
                         "register one with worldrl.agents.online.register_improver")
    return _plan_only


def check_finite(metrics: dict[str, float], what: str) -> None:
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"{what} produced non-finite values {bad}")


# =========================================================================== real experience
class RealCollector:
    """Steps one real env with a policy, writes every transition into the replay buffer, tracks returns."""

    def __init__(self, env: gym.Env, replay: ReplayBuffer, seed: int) -> None:
        self.env, self.replay = env, replay
        self.env.action_space.seed(seed)
        self.obs, _ = env.reset(seed=seed)
        self.episode, self.running = 0, 0.0
        self.finished_returns: list[float] = []

    def collect(self, steps: int, agent: Any, random_actions: bool) -> None:
        for _ in range(steps):
            action = self.env.action_space.sample() if random_actions else agent.act(self.obs, deterministic=False)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.replay.add(self.obs, action, reward, terminated, truncated, next_obs, self.episode)
            self.running += float(reward)
            self.obs = next_obs
            if terminated or truncated:
                self.finished_returns.append(self.running)
                self.episode, self.running = self.episode + 1, 0.0
                self.obs, _ = self.env.reset()
                agent.reset()

    def pop_returns(self) -> list[float]:
        returns, self.finished_returns = self.finished_returns, []
        return returns


def evaluate_agent(agent: Any, config: OnlineConfig) -> Any:
    """Mean return and 95% CI of the agent's deterministic policy on ``eval_episodes`` real episodes."""
    from worldrl.evaluation import evaluate_on_real_env

    agent.reset()
    try:
        return evaluate_on_real_env(lambda obs: agent.act(obs, deterministic=True), config.env_id,
                                    episodes=config.eval_episodes, seed=config.seed + 10_000,
                                    num_envs=config.eval_episodes)
    finally:
        agent.reset()  # the collection env's episode continues with a fresh agent memory


# =========================================================================== files
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


def save_state(directory: Path, model: WorldModel, agent: Any, info: dict[str, Any]) -> Path:
    """``model/`` (save_pretrained) + ``agent/`` (agent.save) + ``state.json``, written atomically."""
    with atomic_directory(directory) as tmp:
        model.save_pretrained(str(tmp / "model"))
        agent.save(tmp / "agent")
        write_json(tmp / "state.json", info)
    return directory


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for k, v in row.items()}) + "\n")


# =========================================================================== the loop
class OnlineRun:
    """State of one ``train_agent`` call; each method is one step of the loop."""

    def __init__(self, config: OnlineConfig) -> None:
        from worldrl.tasks.real_envs import make_real_env

        from worldrl.training.trainer import resolve_device

        self.config, self.start = config, time.perf_counter()
        self.out = Path(config.output_dir)
        self.env = make_real_env(config.env_id)  # unknown ids raise UnknownEnvError naming close matches
        check_action_space(config.agent, config.env_id, self.env.action_space)
        self.task = task_for_env(self.env, config.env_id)
        self.spec = load_model_spec(config.model_config, config.env_id)
        self.device = resolve_device(config.device)
        self.model = build_world_model(config, self.task, self.spec, self.device)
        options = {**DEFAULT_AGENT_OPTIONS.get(config.agent, {}), **config.agent_options}
        self.agent = make_agent(config.agent, model=self.model, seed=config.seed, device=self.device, **options)
        self.improve = improver_for(config.agent, self.agent)
        self.replay = ReplayBuffer(self.task.obs_shape, self.task.action_dim, capacity=max(config.real_steps, 1))
        self.collector = RealCollector(self.env, self.replay, config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.records: list[EvalRecord] = []
        self.last_returns: list[float] = []
        self.checkpoint = self.out / "checkpoints" / "last_good"
        self.has_checkpoint = False
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in ("iterations.jsonl", "model_fits.log"):
            (self.out / stale).unlink(missing_ok=True)
        episode = self.task.max_episode_steps or config.steps_per_iteration
        self.random_steps = min(config.real_steps, config.initial_random_steps
                                if config.initial_random_steps is not None else episode)

    def fail(self, what: str, err: BaseException | str) -> OnlineTrainingError:
        where = self.checkpoint if self.has_checkpoint else "none written yet"
        return OnlineTrainingError(f"{what} at {len(self.replay)} real steps: {err}; last good checkpoint: {where}")

    def iteration(self, index: int, steps: int) -> dict[str, float]:
        from worldrl.training import TrainingDivergedError

        collected = len(self.replay)
        random_part = max(0, min(steps, self.random_steps - collected))
        clock = time.perf_counter()
        self.collector.collect(random_part, self.agent, random_actions=True)
        self.collector.collect(steps - random_part, self.agent, random_actions=False)
        timings = {"time/collect_s": time.perf_counter() - clock}
        clock = time.perf_counter()
        try:
            metrics = fit_model(self.model, self.replay, self.spec, self.config, index, self.out / "model_fits")
            check_finite(metrics, "world-model training")
            check_imagination(self.model, self.replay.sample_obs(64, self.rng), self.task.action_space,
                              seed=self.config.seed + index)
        except (TrainingDivergedError, FloatingPointError) as err:
            # the trainer's own "last good checkpoint" is a per-fit scratch directory: name ours instead
            reason = err.reason if isinstance(err, TrainingDivergedError) else str(err)
            raise self.fail("world model diverged", reason) from None
        timings["time/fit_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        try:
            context = ImproveContext(self.model, self.replay, steps, self.spec.window, self.config, self.rng)
            agent_metrics = self.improve(self.agent, context)
            check_finite(agent_metrics, f"the {self.config.agent} update")
        except FloatingPointError as err:
            raise self.fail(f"agent {self.config.agent!r} diverged", err) from None
        timings["time/improve_s"] = time.perf_counter() - clock
        return {**metrics, **agent_metrics, **timings}  # the timings say where a run's wall-clock goes

    def evaluate(self) -> EvalRecord:
        stats = evaluate_agent(self.agent, self.config)
        train = self.collector.pop_returns()
        record = EvalRecord(len(self.replay), stats.mean, stats.ci95_low, stats.ci95_high, stats.std,
                            stats.episodes, float(np.mean(train)) if train else float("nan"),
                            time.perf_counter() - self.start)
        self.records.append(record)
        self.last_returns = list(stats.returns)
        write_curve_csv(self.out / "learning_curve.csv", self.records)
        plot_curve(self.out / "learning_curve.png", self.records, f"{self.config.agent} on {self.config.env_id}")
        return record

    def save_checkpoint(self, index: int) -> None:
        save_state(self.checkpoint, self.model, self.agent,
                   {"iteration": index, "real_steps": len(self.replay), "agent": self.config.agent,
                    "env_id": self.config.env_id, "config": dataclasses.asdict(self.config)})
        self.has_checkpoint = True

    def finish(self) -> OnlineResult:
        self.model.save_pretrained(str(self.out / "model"))
        self.agent.save(self.out / "agent")
        if self.config.save_dataset:
            self.replay.to_lerobot(self.out / "data", fps=round(self.task.fps) or 30, task=self.config.env_id)
        shutil.rmtree(self.out / "model_fits", ignore_errors=True)
        self.env.close()
        video = self.record_video() if self.config.video else None
        return OnlineResult(self.out, self.out / "model", self.out / "agent", self.checkpoint,
                            self.out / "learning_curve.csv", self.out / "learning_curve.png", self.records,
                            len(self.replay), time.perf_counter() - self.start, self.last_returns, video)

    def record_video(self) -> Path | None:
        """The final agent's first evaluation episode, rendered; a rendering failure (no GL, no pygame) only
        warns, because the trained model and agent are already saved and are what the run is for."""
        from worldrl.evaluation.episode_video import record_real_episode

        self.agent.reset()
        try:
            return record_real_episode(lambda obs: self.agent.act(obs, deterministic=True), self.config.env_id,
                                       self.out / "final_episode.mp4", seed=self.config.seed + 10_000).path
        except Exception as err:  # noqa: BLE001 - any renderer error: report it and keep the run's results
            tqdm.write(f"warning: could not record final_episode.mp4 ({type(err).__name__}: {err})", file=sys.stderr)
            return None
        finally:
            self.agent.reset()


def train_agent(config: OnlineConfig) -> OnlineResult:
    """Run the online loop of ``config``; see the module docstring."""
    run = OnlineRun(config)
    next_eval, index = config.eval_every, 0
    bar = tqdm(total=config.real_steps, desc=f"{config.agent} on {config.env_id}", unit="step", dynamic_ncols=True)
    try:
        while len(run.replay) < config.real_steps:
            steps = min(config.steps_per_iteration, config.real_steps - len(run.replay))
            metrics = run.iteration(index, steps)
            bar.update(steps)
            row: dict[str, Any] = {"iteration": index, "real_steps": len(run.replay), **metrics}
            if len(run.replay) >= next_eval or len(run.replay) >= config.real_steps:
                clock = time.perf_counter()
                record = run.evaluate()
                row["time/eval_s"] = time.perf_counter() - clock
                next_eval = (len(run.replay) // config.eval_every + 1) * config.eval_every
                row.update(real_return=record.mean, real_return_ci95_low=record.ci95_low,
                           real_return_ci95_high=record.ci95_high)
                bar.set_postfix(real_return=f"{record.mean:.1f}", refresh=False)
            append_jsonl(run.out / "iterations.jsonl", row)
            run.save_checkpoint(index)
            index += 1
    except BaseException:
        run.env.close()
        raise
    finally:
        bar.close()
    result = run.finish()
    tqdm.write(result.summary())
    return result


__all__ = [
    "DEFAULT_AGENT_OPTIONS",
    "IMPROVERS",
    "EvalRecord",
    "ImproveContext",
    "OnlineConfig",
    "OnlineResult",
    "OnlineTrainingError",
    "check_imagination",
    "default_model_config",
    "load_model_spec",
    "observed_start_states",
    "register_improver",
    "train_agent",
]
