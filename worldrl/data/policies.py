"""Data-collection policies by spec string, found through a registry.

Every policy is batched: ``policy(obs)`` maps float32 observations ``[N, state_dim]`` (the rows
stored as ``observation.state``) to actions ``[N, *action_shape]`` (``[N]`` ints for Discrete);
``policy.reset(mask)`` tells it which of the N envs start a new episode.

Specs:

- ``"random"``: ``action_space.sample()`` from a space seeded with the collection seed.
- ``"ou"`` or ``"ou:theta=0.15,sigma=0.5"``: Ornstein-Uhlenbeck noise (Box actions). In units of
  the half-range of the action box, ``x <- x + theta * (mu - x) + sigma * sqrt(theta * (2 - theta)) * eps``,
  an AR(1) process whose stationary std is exactly ``sigma`` and whose correlation time is about
  ``1 / theta`` steps; each episode starts from a stationary draw; the action is
  ``center + half_range * clip(x, -1, 1)``. Correlated pushes reach far more of the state space
  than white noise, which is what world-model data needs. Parameters: ``theta`` (0.15), ``sigma``
  (0.5), ``mu`` (0.0).
- ``"scripted"``: a hand-written controller for the env id (Pendulum-v1: energy-based swing-up
  then PD balance; InvertedPendulum-v4/v5: PD on the pole and cart).
- ``"sb3:PATH.zip"`` or ``"sb3:ALGO:PATH.zip"``: a Stable-Baselines3 model acting
  deterministically; the algorithm is read from the zip when not given. Loading never unpickles:
  every pickled entry of the zip is replaced by a safe substitute (the env's spaces, the policy
  class resolved by name inside stable_baselines3) and weights load with ``weights_only``;
  training-only state (schedules, buffers) is not restored, so the model is for prediction.
- ``"module.path:function"``: an importable callable ``obs [N, D] -> actions [N, ...]``.

``make_policy(..., epsilon=e)`` replaces each env's action with a random one with probability e.
"""

from __future__ import annotations

import copy
import importlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from worldrl.errors import CheckpointError, ConfigError, InputNotFoundError


class Policy(Protocol):
    def __call__(self, obs: np.ndarray) -> np.ndarray: ...

    def reset(self, mask: np.ndarray) -> None: ...


@dataclass(frozen=True)
class PolicyContext:
    """What a policy builder may use."""

    env_id: str
    """Env id (scripted controllers are looked up by it)."""
    observation_space: spaces.Space
    """Space of one raw observation (before flattening)."""
    action_space: spaces.Space
    """Space of one action."""
    num_envs: int
    """Batch size N of every call."""
    seed: int
    """Seed for any randomness of the policy."""


class FunctionPolicy:
    """A stateless batched function as a policy."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]):
        self.fn = fn

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(obs))

    def reset(self, mask: np.ndarray) -> None:
        pass


# --------------------------------------------------------------------------- random and OU


class RandomPolicy:
    """Independent uniform samples from a seeded copy of the action space."""

    def __init__(self, action_space: spaces.Space, seed: int):
        self.space = copy.deepcopy(action_space)  # seeding must not touch the env's own space
        self.space.seed(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.stack([self.space.sample() for _ in range(len(obs))])

    def reset(self, mask: np.ndarray) -> None:
        pass


def ou_step(x: np.ndarray, eps: np.ndarray, theta: float, sigma: float, mu: float) -> np.ndarray:
    """One AR(1)/Ornstein-Uhlenbeck step with stationary mean ``mu`` and std ``sigma``."""
    return x + theta * (mu - x) + sigma * np.sqrt(theta * (2.0 - theta)) * eps


@dataclass(frozen=True)
class OUParams:
    """Ornstein-Uhlenbeck noise in units of the action half-range."""

    theta: float = 0.15
    """Mean reversion per step, in (0, 1]; correlation time ~ 1/theta steps (1 = white noise)."""
    sigma: float = 0.5
    """Stationary standard deviation."""
    mu: float = 0.0
    """Stationary mean (0 = the centre of the action box)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.theta <= 1.0:
            raise ConfigError(f"ou theta must be in (0, 1], got {self.theta}")
        if self.sigma < 0.0:
            raise ConfigError(f"ou sigma must be >= 0, got {self.sigma}")


class OUPolicy:
    """Temporally correlated exploration for Box action spaces (one process per env)."""

    def __init__(self, action_space: spaces.Box, num_envs: int, seed: int, params: OUParams):
        if not np.all(np.isfinite(action_space.low)) or not np.all(np.isfinite(action_space.high)):
            raise ConfigError(f"the ou policy needs a bounded action Box, got {action_space}")
        self.low, self.high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        self.dtype, self.params = action_space.dtype, params
        self.rng = np.random.default_rng(seed)
        self.x = self._stationary((num_envs, *action_space.shape))

    def _stationary(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.params.mu + self.params.sigma * self.rng.standard_normal(shape)

    def reset(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, bool)
        self.x[mask] = self._stationary(self.x[mask].shape)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        p = self.params
        self.x = ou_step(self.x, self.rng.standard_normal(self.x.shape), p.theta, p.sigma, p.mu)
        center, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        return (center + half * np.clip(self.x, -1.0, 1.0)).astype(self.dtype)


def _parse_params(arg: str, cls: type) -> Any:
    """``"a=1,b=2"`` -> ``cls(a=1.0, b=2.0)``, naming unknown or malformed entries."""
    fields = set(cls.__dataclass_fields__)
    values: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in arg.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise ConfigError(f"bad policy parameter {item!r}; expected key=value with key in {sorted(fields)}")
        try:
            values[key] = float(value)
        except ValueError as err:
            raise ConfigError(f"policy parameter {key!r} must be a number, got {value!r}") from err
    return cls(**values)


# --------------------------------------------------------------------------- scripted controllers


def pendulum_swingup(
    obs: np.ndarray,
    max_torque: float = 2.0,
    k_energy: float = 1.0,
    kp: float = 10.0,
    kd: float = 2.0,
    balance_cos: float = 0.9,
) -> np.ndarray:
    """Pendulum-v1: pump energy towards the upright level, then PD-balance near the top.

    With m = l = 1, g = 10: E = thdot^2 / 6 + 5 cos(th) and dE/dt = thdot * u, so
    u = k (E_top - E) sign(thdot) drives E to E_top = 5; near the top (cos th > balance_cos)
    u = -(kp th + kd thdot) makes the linearised dynamics thddot = 15 th + 3 u stable.
    """
    cos, sin, thdot = obs[:, 0], obs[:, 1], obs[:, 2]
    th = np.arctan2(sin, cos)
    energy = thdot**2 / 6.0 + 5.0 * cos
    pump = k_energy * (5.0 - energy) * np.where(thdot >= 0, 1.0, -1.0)
    balance = -(kp * th + kd * thdot)
    u = np.where(cos > balance_cos, balance, pump)
    return np.clip(u, -max_torque, max_torque)[:, None].astype(np.float32)


def inverted_pendulum_pd(
    obs: np.ndarray,
    k_angle: float = 10.0,
    k_angle_vel: float = 2.0,
    k_pos: float = 0.3,
    k_vel: float = 0.5,
    max_force: float = 3.0,
) -> np.ndarray:
    """InvertedPendulum-v4/v5 (obs: slider pos, hinge angle, slider vel, hinge vel): PD balance.

    Pushing the cart towards the side the pole leans to rights it; the small cart terms keep the
    cart near the middle of the rail (signs found for MuJoCo's hinge convention).
    """
    x, angle, xdot, angle_vel = obs[:, 0], obs[:, 1], obs[:, 2], obs[:, 3]
    u = k_angle * angle + k_angle_vel * angle_vel + k_pos * x + k_vel * xdot
    return np.clip(u, -max_force, max_force)[:, None].astype(np.float32)


SCRIPTED: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Pendulum-v1": pendulum_swingup,
    "InvertedPendulum-v4": inverted_pendulum_pd,
    "InvertedPendulum-v5": inverted_pendulum_pd,
}


# --------------------------------------------------------------------------- Stable-Baselines3


def _sb3_algorithms() -> dict[str, type]:
    import stable_baselines3 as sb3

    return {name.lower(): getattr(sb3, name) for name in ("A2C", "DDPG", "DQN", "PPO", "SAC", "TD3")}


def _read_sb3_data(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("data"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a Stable-Baselines3 model zip ({err})") from err


def _sb3_class_from_json(entry: dict[str, Any], path: Path, key: str) -> type:
    """A class stored by SB3 (module + method reprs), resolved by name inside stable_baselines3 only."""
    module = str(entry.get("__module__", ""))
    names = {v.split()[1].split(".")[0] for v in entry.values() if isinstance(v, str) and v.startswith("<function ")}
    if not module.startswith("stable_baselines3.") or len(names) != 1:
        raise CheckpointError(
            f"{path}: cannot resolve {key} from module {module!r}; only stable_baselines3 classes load safely"
        )
    return getattr(importlib.import_module(module), names.pop())


def _check_space(stored: dict[str, Any], space: spaces.Space, path: Path, key: str) -> None:
    shape = stored.get("_shape")
    shape = json.loads(shape) if isinstance(shape, str) else shape
    if shape is not None and tuple(shape) != tuple(space.shape):
        raise CheckpointError(f"{path}: the model's {key} has shape {tuple(shape)}, the env's is {space}")


def load_sb3_model(path: str | Path, algo: str | None, ctx: PolicyContext) -> Any:
    """An SB3 model for prediction, loaded without unpickling anything."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"Stable-Baselines3 model not found: {path}")
    data = _read_sb3_data(path)
    algorithms = _sb3_algorithms()
    if algo is None:
        module = str(data.get("policy_class", {}).get("__module__", ""))
        algo = module.split(".")[1] if module.startswith("stable_baselines3.") else None
        if algo not in algorithms:
            raise CheckpointError(
                f"{path}: cannot tell the algorithm from the zip; use 'sb3:ALGO:{path}' with ALGO in {sorted(algorithms)}"
            )
    if algo not in algorithms:
        raise CheckpointError(f"unknown Stable-Baselines3 algorithm {algo!r}; known: {sorted(algorithms)}")
    spaces_by_key = {"observation_space": ctx.observation_space, "action_space": ctx.action_space}
    substitutes: dict[str, Any] = {}
    for key, entry in data.items():
        if not (isinstance(entry, dict) and ":serialized:" in entry):
            continue
        if key in spaces_by_key:
            _check_space(entry, spaces_by_key[key], path, key)
            substitutes[key] = spaces_by_key[key]
        elif key == "policy_class":
            substitutes[key] = _sb3_class_from_json(entry, path, key)
        else:
            substitutes[key] = SB3_TRAINING_DEFAULTS.get(key)
    return algorithms[algo].load(path, device="cpu", custom_objects=substitutes)


# Training-only entries of an SB3 zip, replaced by values its `_setup_model` accepts (never unpickled).
SB3_TRAINING_DEFAULTS: dict[str, Any] = {
    "lr_schedule": 0.0,
    "clip_range": 0.2,
    "clip_range_vf": None,
    "train_freq": 1,
    "replay_buffer_class": None,
    "rollout_buffer_class": None,
    "action_noise": None,
}


# --------------------------------------------------------------------------- builders


def _build_random(arg: str, ctx: PolicyContext) -> Policy:
    return RandomPolicy(ctx.action_space, ctx.seed)


def _build_ou(arg: str, ctx: PolicyContext) -> Policy:
    if not isinstance(ctx.action_space, spaces.Box):
        raise ConfigError(f"the ou policy needs a Box action space; {ctx.env_id!r} has {ctx.action_space}")
    return OUPolicy(ctx.action_space, ctx.num_envs, ctx.seed, _parse_params(arg, OUParams))


def _build_scripted(arg: str, ctx: PolicyContext) -> Policy:
    if ctx.env_id not in SCRIPTED:
        raise ConfigError(f"no scripted controller for {ctx.env_id!r}; available for: {sorted(SCRIPTED)}")
    return FunctionPolicy(SCRIPTED[ctx.env_id])


def _build_sb3(arg: str, ctx: PolicyContext) -> Policy:
    if not arg:
        raise ConfigError("sb3 policy spec needs a path: 'sb3:PATH.zip' or 'sb3:ALGO:PATH.zip'")
    head, sep, rest = arg.partition(":")
    algo, path = (head.lower(), rest) if sep and head.lower() in _sb3_algorithms() else (None, arg)
    model = load_sb3_model(path, algo, ctx)
    return FunctionPolicy(lambda obs: model.predict(obs, deterministic=True)[0])


def _build_callable(spec: str, ctx: PolicyContext) -> Policy:
    module_name, _, attr = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"policy {spec!r}: cannot import module {module_name!r} ({err})") from err
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"policy {spec!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"policy {spec!r} is not callable")
    return target if hasattr(target, "reset") else FunctionPolicy(target)


# name -> builder(argument after "name:", context). Any other "module:function" is imported.
POLICIES: dict[str, Callable[[str, PolicyContext], Policy]] = {
    "random": _build_random,
    "ou": _build_ou,
    "scripted": _build_scripted,
    "sb3": _build_sb3,
}


class EpsilonMix:
    """With probability epsilon per env and step, a random action replaces the policy's."""

    def __init__(self, policy: Policy, action_space: spaces.Space, epsilon: float, seed: int):
        self.policy, self.epsilon = policy, epsilon
        self.random = RandomPolicy(action_space, seed + 1_000_003)  # a stream apart from the policy's
        self.rng = np.random.default_rng(seed + 1_000_003)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        actions = np.array(self.policy(obs), copy=True)
        mask = self.rng.random(len(obs)) < self.epsilon
        if mask.any():
            actions[mask] = self.random(obs[mask]).astype(actions.dtype)
        return actions

    def reset(self, mask: np.ndarray) -> None:
        self.policy.reset(mask)


def make_policy(spec: str, ctx: PolicyContext, epsilon: float = 0.0) -> Policy:
    """The policy for a spec string (see the module docstring), optionally epsilon-mixed with random."""
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
    name, sep, arg = spec.partition(":")
    if name in POLICIES:
        policy = POLICIES[name](arg, ctx)
    elif sep and arg:
        policy = _build_callable(spec, ctx)
    else:
        raise ConfigError(
            f"unknown policy {spec!r}; use one of {sorted(POLICIES)}, 'sb3:PATH.zip' or 'module.path:function'"
        )
    return EpsilonMix(policy, ctx.action_space, epsilon, ctx.seed) if epsilon > 0 else policy
