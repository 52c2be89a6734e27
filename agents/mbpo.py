"""Model-based policy optimisation (MBPO, Janner et al. 2019) with Stable-Baselines3's SAC (or TD3 / DDPG).

The recipe: keep the real transitions; from real states drawn at random, branch short rollouts of the current
policy through the learned simulator (``WorldModel-v0``'s batched vector env, sampled imagination); train SAC
on batches that mix real and model transitions at ``real_ratio``; let the rollout length grow linearly with the
number of real steps (``rollout_length``), because a model fitted on more data can be trusted further.

Design choice: rollouts are collected here by stepping the vector env with the SAC policy, then SAC learns with
``sac.train(gradient_steps, batch_size)`` on the ``MixedReplayBuffer``, rather than through ``sac.learn`` on
the SB3 adapter. ``learn`` would interleave one env step with each update and could not start episodes at
*sampled real states* in batches of hundreds; the explicit loop is exactly MBPO's (rollouts every
``gradient_steps_per_rollout`` updates, ``gradient_steps_per_real_step`` updates per real step) and keeps the
SAC itself unmodified. The SB3 ``VecEnv`` adapter (``sb3_vec_env.SB3VecEnv``) still gives SAC its spaces and
lets ``sac.learn`` run on the learned simulator directly when wanted.

Model rewards are clipped to the real rewards' range and penalised by the ensemble's disagreement (MOPO; see
``worldrl.agents.uncertainty``), so SAC does not learn from rewards far outside the data.

Weights save as ``agent.safetensors`` + ``agent.json`` (no pickle; SB3's zip format pickles, so it is not used).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from worldrl.agents.protocol import (
    AGENT_CONFIG_NAME,
    register_agent,
)
from worldrl.agents.sb3_vec_env import SB3VecEnv
from worldrl.agents.uncertainty import data_reward_bounds, disagreement_fn, observation_disagreement
from worldrl.config_loading import check_fields, config_from_dict
from worldrl.errors import CheckpointError, ConfigError, EnvError
from worldrl.io import atomic_write_bytes, read_json, write_json

WEIGHTS_NAME = "agent.safetensors"

ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {"sac": SAC, "td3": TD3, "ddpg": DDPG}
"""SB3 algorithms MBPO can drive: the off-policy ones, since MBPO trains from a (mixed) replay buffer. On-policy
algorithms (PPO, A2C) train on ``WorldModel-v0`` directly through ``sb3_vec_env.SB3VecEnv`` instead."""


# ----------------------------------------------------------------------------- config
@dataclass
class MBPOConfig:
    """MBPO settings (defaults after the MBPO paper, scaled down where a CPU budget needs it)."""

    algorithm: str = "sac"
    """The SB3 off-policy learner (``ALGORITHMS``): ``"sac"`` (MBPO's), ``"td3"`` or ``"ddpg"``."""
    real_ratio: float = 0.05
    """Fraction of each SAC batch drawn from real transitions (the rest from model rollouts)."""
    num_rollouts: int = 400
    """Branched rollouts per round: how many real start states are rolled out in one batched env step."""
    rollout_length_min: int = 1
    """Rollout length k at and before ``rollout_schedule_start`` real steps."""
    rollout_length_max: int = 5
    """Rollout length k at and after ``rollout_schedule_end`` real steps."""
    rollout_schedule_start: int = 0
    """Real steps where k starts growing linearly from ``rollout_length_min``."""
    rollout_schedule_end: int = 5000
    """Real steps where k reaches ``rollout_length_max``."""
    model_retain_rounds: int = 10
    """Rollout rounds kept in the model buffer (its capacity is ``num_rollouts * rollout_length_max`` times this)."""
    gradient_steps_per_real_step: int = 10
    """SAC updates per new real transition (MBPO's G; 20 in the paper)."""
    gradient_steps_per_rollout: int = 250
    """SAC updates between two rollout rounds (fresh model data for the current policy)."""
    batch_size: int = 256
    """SAC batch size (real + model rows)."""
    learning_rate: float = 1e-3
    """Adam learning rate of actor, critics and entropy coefficient (the RL Zoo's Pendulum value; 3e-4, SB3's
    default, learned nothing within 2000 real steps on Pendulum-v1 at G=5 here; 1e-3 reached -66 by 1500)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak coefficient of the target critics."""
    net_arch: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and of each critic."""
    ent_coef: str | float = "auto"
    """SAC entropy coefficient: ``"auto"`` (learned, SB3's default) or a fixed float (SAC only)."""
    algorithm_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Further keyword arguments of the SB3 algorithm's constructor (e.g. TD3's ``policy_delay``)."""
    sample_dynamics: bool = True
    """Sampled imagination (one ensemble member per rollout, PETS's TS-inf); False uses mean predictions."""
    real_buffer_size: int = 1_000_000
    """Capacity of the real part of the replay buffer (oldest rows are overwritten)."""
    uncertainty_penalty: float = 1.0
    """MOPO's penalty: model rewards minus this times the ensemble's disagreement (``agents.uncertainty``, in data
    stds); 0 turns it off; families without a disagreement measure are not penalised."""
    reward_range_margin: float | None = 0.0
    """Clip model rewards to the real rewards' range widened by this fraction of its width; None: no clipping."""

    def __post_init__(self) -> None:
        self.net_arch = tuple(int(h) for h in self.net_arch)
        self.algorithm = str(self.algorithm).lower()
        checks = {
            "algorithm": (self.algorithm in ALGORITHMS, f"one of {sorted(ALGORITHMS)}"),
            "algorithm_kwargs": (isinstance(self.algorithm_kwargs, dict), "a mapping"),
            "real_ratio": (0.0 <= self.real_ratio <= 1.0, "in [0, 1]"),
            "num_rollouts": (self.num_rollouts >= 1, ">= 1"),
            "rollout_length_min": (self.rollout_length_min >= 1, ">= 1"),
            "rollout_length_max": (self.rollout_length_max >= self.rollout_length_min, ">= rollout_length_min"),
            "rollout_schedule_start": (self.rollout_schedule_start >= 0, ">= 0"),
            "rollout_schedule_end": (
                self.rollout_schedule_end >= self.rollout_schedule_start,
                ">= rollout_schedule_start",
            ),
            "model_retain_rounds": (self.model_retain_rounds >= 1, ">= 1"),
            "gradient_steps_per_real_step": (self.gradient_steps_per_real_step >= 0, ">= 0"),
            "gradient_steps_per_rollout": (self.gradient_steps_per_rollout >= 1, ">= 1"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "learning_rate": (self.learning_rate > 0, "> 0"),
            "gamma": (0.0 < self.gamma <= 1.0, "in (0, 1]"),
            "tau": (0.0 < self.tau <= 1.0, "in (0, 1]"),
            "net_arch": (len(self.net_arch) > 0 and all(h > 0 for h in self.net_arch), "positive widths"),
            "ent_coef": (
                self.ent_coef == "auto"
                or str(self.ent_coef).startswith("auto_")
                or (isinstance(self.ent_coef, (int, float)) and self.ent_coef > 0),
                "'auto' or > 0",
            ),
            "real_buffer_size": (self.real_buffer_size >= 1, ">= 1"),
            "uncertainty_penalty": (self.uncertainty_penalty >= 0, ">= 0"),
            "reward_range_margin": (self.reward_range_margin is None or self.reward_range_margin >= 0, ">= 0 or null"),
        }
        check_fields(self, checks)

    @property
    def model_buffer_size(self) -> int:
        return self.num_rollouts * self.rollout_length_max * self.model_retain_rounds

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MBPOConfig:
        """The config from ``to_dict`` output or agent options (strict: ``config_from_dict``)."""
        return config_from_dict(cls, data, "mbpo")


# ----------------------------------------------------------------------------- math
def rollout_length(real_steps: int, k_min: int, k_max: int, start: int, end: int) -> int:
    """MBPO's linear schedule: ``k_min`` until ``start`` real steps, ``k_max`` from ``end``, linear between."""
    if real_steps <= start or end == start:
        return k_min if real_steps <= start else k_max
    fraction = min(1.0, (real_steps - start) / (end - start))
    return math.floor(k_min + fraction * (k_max - k_min))


def split_batch(batch_size: int, real_ratio: float, model_rows: int) -> tuple[int, int]:
    """``(real, model)`` rows of one batch; all real while there is no model data yet."""
    if model_rows == 0:
        return batch_size, 0
    real = round(real_ratio * batch_size)
    return real, batch_size - real


def extend_buffer(buffer: ReplayBuffer, obs, next_obs, action, reward, done) -> None:
    """Append ``N`` transitions to an SB3 ``ReplayBuffer`` with ``n_envs=1`` (a ring: the oldest are overwritten)."""
    n = len(obs)
    if n == 0:
        return
    keep = slice(max(0, n - buffer.buffer_size), n)  # more rows than capacity: only the newest fit
    obs, next_obs, action = np.asarray(obs)[keep], np.asarray(next_obs)[keep], np.asarray(action)[keep]
    reward, done = np.asarray(reward)[keep], np.asarray(done)[keep]
    n = len(obs)
    index = (buffer.pos + np.arange(n)) % buffer.buffer_size
    buffer.observations[index, 0] = obs.reshape(n, *buffer.obs_shape)
    buffer.next_observations[index, 0] = next_obs.reshape(n, *buffer.obs_shape)
    buffer.actions[index, 0] = action.reshape(n, buffer.action_dim)
    buffer.rewards[index, 0] = reward.reshape(n)
    buffer.dones[index, 0] = done.reshape(n)
    buffer.timeouts[index, 0] = 0.0
    buffer.full = buffer.full or buffer.pos + n >= buffer.buffer_size
    buffer.pos = int((buffer.pos + n) % buffer.buffer_size)


# ----------------------------------------------------------------------------- the mixed buffer
class MixedReplayBuffer(ReplayBuffer):
    """SB3 replay buffer whose ``sample`` mixes real rows (its own storage) and model rows (``model_part``).

    ``add_real`` / ``add_model`` append batches; SB3's own per-step ``add`` (what ``sac.learn`` calls while it
    collects from the env it was given, the learned simulator) goes to the model part. Time-outs are never
    stored as terminations: only true terminations set ``done``.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        real_ratio: float = 0.05,
        model_buffer_size: int = 100_000,
    ) -> None:
        if not 0.0 <= real_ratio <= 1.0:
            raise ConfigError(f"real_ratio must be in [0, 1], got {real_ratio}")
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device,
            n_envs=1,
            optimize_memory_usage=False,
            handle_timeout_termination=False,
        )
        self.real_ratio = real_ratio
        self.model_part = ReplayBuffer(
            model_buffer_size,
            observation_space,
            action_space,
            device,
            n_envs=1,
            optimize_memory_usage=False,
            handle_timeout_termination=False,
        )

    def add_real(self, obs, next_obs, action, reward, terminated) -> None:
        """Real transitions; ``action`` already scaled to the policy's ``[-1, 1]`` box."""
        extend_buffer(self, obs, next_obs, action, reward, terminated)

    def add_model(self, obs, next_obs, action, reward, terminated) -> None:
        """Imagined transitions; ``action`` already scaled to the policy's ``[-1, 1]`` box."""
        extend_buffer(self.model_part, obs, next_obs, action, reward, terminated)

    def add(self, obs, next_obs, action, reward, done, infos) -> None:
        timeouts = np.array([info.get("TimeLimit.truncated", False) for info in infos], bool)
        n = len(infos)
        self.add_model(
            np.asarray(obs).reshape(n, -1),
            np.asarray(next_obs).reshape(n, -1),
            action,
            reward,
            np.asarray(done, bool) & ~timeouts,
        )

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        if self.size() == 0:
            raise RuntimeError("MixedReplayBuffer.sample: no real transitions yet; add_real() some first")
        n_real, n_model = split_batch(batch_size, self.real_ratio, self.model_part.size())
        parts = [super().sample(n_real, env)] if n_real else []
        if n_model:
            parts.append(self.model_part.sample(n_model, env))
        if len(parts) == 1:
            return parts[0]
        return ReplayBufferSamples(*(None if fields[0] is None else torch.cat(fields) for fields in zip(*parts)))


# ----------------------------------------------------------------------------- the agent
class MBPOAgent:
    """``MBPOAgent(model).update(replay)`` learns from a worldrl ``ReplayBuffer`` of real steps; ``act(obs)``.

    Args:
        model: the world model (any family that can decode observations); used, never trained here.
        config: ``MBPOConfig`` (object or dict); keyword ``overrides`` replace its fields.
        device: where SAC runs; defaults to the model's device.
        seed: seeds SAC (SB3 seeds the global RNGs with it) and the start-state sampling.
    """

    def __init__(
        self,
        model: Any,
        config: MBPOConfig | dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        seed: int | None = 0,
        **overrides: Any,
    ) -> None:
        from worldrl.envs.vector_env import (
            WorldModelVectorEnv,  # the env package pulls in rendering
        )

        if isinstance(config, dict) or config is None:
            config = MBPOConfig.from_dict({**(config or {}), **overrides})
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config, self.model, self._seed = config, model, seed
        self.device = torch.device(device) if device is not None else model.device
        space = model.task.action_space
        if (
            not isinstance(space, spaces.Box)
            or not np.all(np.isfinite(space.low))
            or not np.all(np.isfinite(space.high))
        ):
            raise EnvError(f"SAC needs a bounded continuous Box action space, got {space}")
        placeholder = np.zeros((1, *model.task.obs_shape), dtype=model.task.observation_space.dtype)
        self.env = WorldModelVectorEnv(
            config.num_rollouts, model=model, sample=config.sample_dynamics, time_limit=None, start_states=placeholder
        )
        self.rng = np.random.default_rng(seed)
        extra = {"ent_coef": config.ent_coef} if config.algorithm == "sac" else {}
        self.sac = ALGORITHMS[config.algorithm](  # named for MBPO's learner; any of ALGORITHMS
            "MlpPolicy",
            SB3VecEnv(self.env, max_episode_steps=None, start_sampler=self.sample_starts),
            learning_rate=config.learning_rate,
            buffer_size=1,
            batch_size=config.batch_size,
            tau=config.tau,
            gamma=config.gamma,
            policy_kwargs={"net_arch": list(config.net_arch)},
            seed=seed,
            device=self.device,
            **extra,
            **config.algorithm_kwargs,
        )
        self.buffer = MixedReplayBuffer(
            config.real_buffer_size,
            self.sac.observation_space,
            self.sac.action_space,
            self.device,
            real_ratio=config.real_ratio,
            model_buffer_size=config.model_buffer_size,
        )
        self.sac.replay_buffer = self.buffer
        self.sac.set_logger(Logger(folder=None, output_formats=[]))
        self.synced = 0  # rows of the worldrl ReplayBuffer already copied into the real part
        self.disagreement = disagreement_fn(model) if config.uncertainty_penalty > 0 else None
        self.reward_bounds: tuple[float, float] | None = None  # the real rewards' range, from _sync
        self.updates = 0

    # ----------------------------------------------------------------- learning
    def update(self, replay: Any, real_steps: int | None = None) -> dict[str, float]:
        """Copy new real rows from ``replay``, then G updates per new real step with rollout rounds between."""
        new = self._sync(replay)
        real_steps = len(replay) if real_steps is None else real_steps
        cfg = self.config
        k = rollout_length(
            real_steps,
            cfg.rollout_length_min,
            cfg.rollout_length_max,
            cfg.rollout_schedule_start,
            cfg.rollout_schedule_end,
        )
        total = cfg.gradient_steps_per_real_step * new
        metrics: dict[str, float] = {"mbpo/rollout_length": float(k), "mbpo/gradient_steps": float(total)}
        done = 0
        while done < total:
            metrics.update(self.rollout(k))
            steps = min(cfg.gradient_steps_per_rollout, total - done)
            self.sac.train(gradient_steps=steps, batch_size=cfg.batch_size)
            done += steps
        if total:
            metrics.update(self._train_metrics())
        self.updates += total
        return metrics

    def _sync(self, replay: Any) -> int:
        if len(replay) < self.synced:
            raise ValueError(f"the replay buffer shrank from {self.synced} to {len(replay)} rows")
        if len(replay) == self.synced:
            return 0
        arrays = replay.arrays()
        if self.config.reward_range_margin is not None:
            self.reward_bounds = data_reward_bounds(arrays["reward"], self.config.reward_range_margin)
        a = {k: v[self.synced :] for k, v in arrays.items()}
        self.buffer.add_real(a["obs"], a["next_obs"], self._scaled(a["action"]), a["reward"], a["terminated"])
        new, self.synced = len(replay) - self.synced, len(replay)
        return new

    def sample_starts(self, count: int) -> np.ndarray:
        """Real observations drawn uniformly from the real part of the buffer."""
        size = self.buffer.size()
        if size == 0:
            raise RuntimeError("MBPO has no real states to branch from yet; call update(replay) with real data")
        return self.buffer.observations[self.rng.integers(size, size=count), 0]

    @torch.no_grad()
    def rollout(self, length: int) -> dict[str, float]:
        """One round of ``num_rollouts`` branched rollouts of ``length`` steps into the model buffer."""
        obs, _ = self.env.reset(options={"observation": self.sample_starts(self.config.num_rollouts)})
        alive = np.ones(self.env.num_envs, bool)
        rows, rewards, doubts = 0, [], []
        for _ in range(length):
            action, _ = self.sac.policy.predict(obs, deterministic=False)
            next_obs, reward, terminated, _, _ = self.env.step(action)
            reward, doubt = self._guarded(obs, action, np.asarray(reward, np.float64))
            if doubt is not None:
                doubts.append(doubt[alive])
            self.buffer.add_model(
                obs[alive], next_obs[alive], self._scaled(action[alive]), reward[alive], terminated[alive]
            )
            rows += int(alive.sum())
            rewards.append(reward[alive])
            alive &= ~np.asarray(terminated, bool)  # a finished row autoresets next step: its data ends here
            obs = next_obs
            if not alive.any():
                break
        reward_mean = float(np.concatenate(rewards).mean()) if rows else float("nan")
        metrics = {"mbpo/model_rows": float(self.buffer.model_part.size()), "mbpo/rollout_reward": reward_mean}
        if doubts and rows:
            metrics["mbpo/uncertainty"] = float(np.concatenate(doubts).mean())
        return metrics

    def _guarded(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Model rewards clipped to the real range, minus the disagreement penalty (``agents.uncertainty``)."""
        if self.reward_bounds is not None:
            reward = np.clip(reward, *self.reward_bounds)
        if self.disagreement is None:
            return reward, None
        doubt = observation_disagreement(self.model, self.disagreement, obs, action)
        return reward - self.config.uncertainty_penalty * doubt, doubt

    def _scaled(self, action: np.ndarray) -> np.ndarray:
        """Env-unit actions -> the ``[-1, 1]`` box SB3 stores and learns in."""
        return self.sac.policy.scale_action(np.asarray(action, np.float64)).astype(np.float32)

    def _train_metrics(self) -> dict[str, float]:
        values = self.sac.logger.name_to_value
        metrics = {
            f"{self.config.algorithm}/{k.split('/', 1)[1]}": float(values[k])
            for k in ("train/actor_loss", "train/critic_loss", "train/ent_coef")
            if k in values
        }
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(
                f"MBPO: {self.config.algorithm.upper()} losses became non-finite {bad} "
                "(model rollouts may have diverged)"
            )
        return metrics

    # ----------------------------------------------------------------- acting
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """SAC's action(s) in the task's action space for ``[*obs_shape]`` or ``[B, *obs_shape]``."""
        array = np.asarray(obs)
        obs_shape = tuple(self.model.task.obs_shape)
        if array.shape != obs_shape and array.shape[1:] != obs_shape:
            raise ValueError(f"observation has shape {array.shape}; expected {obs_shape} or (B, *{obs_shape})")
        action, _ = self.sac.policy.predict(array.astype(self.sac.observation_space.dtype), deterministic=deterministic)
        space = self.model.task.action_space
        return np.clip(action, space.low, space.high).astype(space.dtype)

    def reset(self, env_indices: Sequence[int] | None = None) -> None:
        """SAC's policy is memoryless: nothing to forget."""

    # ----------------------------------------------------------------- persistence
    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"policy.{k}": v for k, v in self.sac.policy.state_dict().items()}
        if getattr(self.sac, "log_ent_coef", None) is not None:
            tensors["log_ent_coef"] = self.sac.log_ent_coef
        # clone: safetensors refuses tensors that share memory
        return {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}

    def save(self, directory: str | os.PathLike) -> Path:
        """``agent.json`` (settings) + ``agent.safetensors`` (actor, critics, target critics, entropy coefficient)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(directory / WEIGHTS_NAME, save_safetensors(self._tensors(), metadata={"agent": "mbpo"}))
        write_json(
            directory / AGENT_CONFIG_NAME,
            {"agent": "mbpo", "config": self.config.to_dict(), "updates": self.updates, "seed": self._seed},
        )
        return directory

    def load(self, directory: str | os.PathLike) -> None:
        """Restore weights written by ``save``; the saved settings must describe the same networks."""
        directory = Path(directory)
        data = read_json(directory / AGENT_CONFIG_NAME)
        saved = MBPOConfig.from_dict(data.get("config", {}))
        for name in ("algorithm", "net_arch"):
            if getattr(saved, name) != getattr(self.config, name):
                raise CheckpointError(
                    f"{directory / AGENT_CONFIG_NAME} has {name} {getattr(saved, name)!r}, this agent "
                    f"{getattr(self.config, name)!r}; build the agent with the saved config before loading"
                )
        path = directory / WEIGHTS_NAME
        try:
            tensors = load_safetensors(path.read_bytes())
        except (FileNotFoundError, SafetensorError) as err:
            raise CheckpointError(f"cannot read agent weights {path}: {err}") from None
        policy = {k.removeprefix("policy."): v for k, v in tensors.items() if k.startswith("policy.")}
        try:
            self.sac.policy.load_state_dict(policy, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{path} does not match this agent's networks: {err}") from None
        if "log_ent_coef" in tensors and getattr(self.sac, "log_ent_coef", None) is not None:
            with torch.no_grad():
                self.sac.log_ent_coef.copy_(tensors["log_ent_coef"].to(self.sac.log_ent_coef.device))
        self.updates = int(data.get("updates", 0))


register_agent("mbpo", MBPOAgent)

__all__ = [
    "MBPOAgent",
    "MBPOConfig",
    "MixedReplayBuffer",
    "extend_buffer",
    "rollout_length",
    "split_batch",
]
