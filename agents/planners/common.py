"""What CEM and MPPI share: config, result, the sampling loop, and candidate evaluation in one rollout call.

Planners are stateless and batched (TD-MPC2's ``_plan``): ``plan(model, state [B], prev_mean [B, H, A] | None,
generator)`` samples ``N`` action sequences per environment, scores all ``B x N`` of them with ONE
``model.rollout`` call on the expanded state batch, and refits a Gaussian over sequences with the subclass's rule.

Internally actions live in a normalised box ``[-1, 1]^A`` (the action space's centre and half-range), so the
sampling stds in the configs are unitless, as in TD-MPC2; dimensions with infinite bounds are left unscaled and
unclamped. Results are reported in the model's action units.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

from worldrl.agents.planners.step_scores import REWARD_SOURCES, TERMINATION_SOURCES, step_scores
from worldrl.agents.returns import discounted_return
from worldrl.config_loading import require
from worldrl.errors import ConfigError, EnvError
from worldrl.models.roles import Dynamics, RewardModel

ValueFn = Callable[[torch.Tensor], torch.Tensor]
"""``latent [M, L] -> value [M]`` (or ``[M, 1]``): bootstraps returns beyond the horizon."""
PolicyPrior = Callable[[torch.Tensor], torch.distributions.Distribution]
"""``latent [M, L] -> distribution over actions [M, A]`` in the model's action units (Normal-based)."""


@runtime_checkable
class PlanningModel(Dynamics, RewardModel, Protocol):
    """What planners use: the ``Dynamics`` and ``RewardModel`` roles plus latent features (for a value function
    or a policy prior). Any ``WorldModel`` satisfies it, and so does a TorchRL env seen through ``EnvDynamics``."""

    def latent(self, state: TensorDict) -> torch.Tensor: ...


@dataclass
class PlannerConfig:
    """Settings every sampling planner shares (defaults follow TD-MPC2's planner)."""

    horizon: int = 12
    """Number of imagined steps per candidate sequence."""
    num_samples: int = 512
    """Candidate sequences per environment and iteration (policy-prior samples included)."""
    num_elites: int = 64
    """Best candidates the distribution is refitted to (``num_elites == num_samples`` gives classic all-sample MPPI)."""
    iterations: int = 6
    """Refit rounds per ``plan`` call."""
    discount: float = 0.99
    """Per-step discount of imagined rewards and of the terminal value."""
    min_std: float = 0.05
    """Floor of the sampling std in normalised action units (keeps exploring)."""
    max_std: float = 2.0
    """Initial (and largest) sampling std in normalised action units."""
    num_prior_samples: int = 24
    """Candidates drawn by rolling out the policy prior, when a prior is given."""
    sample_dynamics: bool = True
    """Pass the generator to ``model.rollout`` (sampled dynamics, PETS-style); False plans on mean predictions."""
    reward: str = "model"
    """Per-step rewards: ``"model"`` (its reward head), ``"task"`` (the real task's known reward function on
    the predicted observations, as PETS plans) or ``"goal"`` (minus the latent distance to ``plan(goal=...)``);
    see ``worldrl.models.step_scoring``."""
    termination: str = "model"
    """Episode ends: ``"model"`` (its terminal head), ``"task"`` (the task's known rule) or ``"none"``."""

    def __post_init__(self) -> None:
        require(self, "reward", self.reward in REWARD_SOURCES, f"one of {list(REWARD_SOURCES)}")
        require(self, "termination", self.termination in TERMINATION_SOURCES, f"one of {list(TERMINATION_SOURCES)}")
        require(self, "horizon", self.horizon >= 1, ">= 1")
        require(self, "num_samples", self.num_samples >= 1, ">= 1")
        require(self, "num_elites", 1 <= self.num_elites <= self.num_samples, "in [1, num_samples]")
        require(self, "iterations", self.iterations >= 1, ">= 1")
        require(self, "discount", 0.0 < self.discount <= 1.0, "in (0, 1]")
        require(self, "min_std", 0.0 <= self.min_std <= self.max_std, "in [0, max_std]")
        require(self, "max_std", self.max_std > 0.0, "> 0")
        require(self, "num_prior_samples", self.num_prior_samples >= 0, ">= 0")

    @property
    def init_std(self) -> float:
        """Sampling std of the first iteration (normalised units)."""
        return self.max_std

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PlanResult:
    """One planning call's output, in the model's action units."""

    action: torch.Tensor
    """First action of the plan ``[B, A]``: what to execute now."""
    mean: torch.Tensor
    """The planned sequence ``[B, H, A]``: pass back as ``prev_mean`` next step for a warm start."""
    std: torch.Tensor
    """Final sampling std per step ``[B, H, A]``."""
    expected_return: torch.Tensor
    """Predicted return of the final elites ``[B]`` (CEM: their mean; MPPI: their weighted mean)."""


# ----------------------------------------------------------------------------- action box
@dataclass
class ActionBox:
    """Affine map between the normalised box ``[-1, 1]`` and the action space, per dimension."""

    centre: torch.Tensor
    half: torch.Tensor
    low: torch.Tensor
    """Normalised lower bound: -1 where the space is bounded, -inf where it is not."""
    high: torch.Tensor

    @classmethod
    def from_space(cls, space: gym.Space, device: torch.device, dtype: torch.dtype = torch.float32) -> ActionBox:
        check_continuous(space)
        lo, hi = np.asarray(space.low, np.float64).ravel(), np.asarray(space.high, np.float64).ravel()
        finite = np.isfinite(lo) & np.isfinite(hi)
        lo, hi = np.where(finite, lo, -1.0), np.where(finite, hi, 1.0)  # unbounded dims: identity map
        centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
        as_t = lambda x: torch.as_tensor(x, device=device, dtype=dtype)  # noqa: E731
        return cls(as_t(centre), as_t(half), as_t(np.where(finite, -1.0, -np.inf)), as_t(np.where(finite, 1.0, np.inf)))

    def to_units(self, u: torch.Tensor) -> torch.Tensor:
        return self.centre + self.half * u

    def to_normalised(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.centre) / self.half

    def clamp(self, u: torch.Tensor) -> torch.Tensor:
        return torch.clamp(u, self.low, self.high)


def check_continuous(space: gym.Space) -> None:
    """Planners sample Gaussian action sequences: they need a continuous ``Box`` action space."""
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        raise EnvError(
            f"CEM/MPPI planners need a continuous Box action space, got {space}; discrete actions are not supported"
        )


# ----------------------------------------------------------------------------- pure helpers
def shift_plan(mean: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Warm start: drop the executed first step of ``[B, H, A]`` and append ``fill`` at the end."""
    tail = torch.full_like(mean[:, :1], fill)
    return torch.cat([mean[:, 1:], tail], dim=1)


def expand_batch(state: TensorDict, n: int) -> TensorDict:
    """``[B] -> [B * n]``, each environment's state repeated ``n`` times in a row (env-major)."""
    index = torch.arange(state.batch_size[0], device=state_device(state)).repeat_interleave(n)
    return state[index]


def standard_normal(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Gaussian noise from ``generator`` (its own device), moved to ``like``'s device and dtype."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(device=like.device, dtype=like.dtype)


def sample_distribution(dist: torch.distributions.Distribution, generator: torch.Generator | None) -> torch.Tensor:
    """Reparameterised sample of a Normal-based distribution with noise from ``generator``.

    ``torch.distributions`` samples from the global RNG; the planners' randomness must come from the generator,
    so the base Normal is sampled here and the distribution's transforms applied on top.
    """
    transforms: list[torch.distributions.Transform] = []
    base = dist
    while True:
        if isinstance(base, torch.distributions.Independent):
            base = base.base_dist
        elif isinstance(base, torch.distributions.TransformedDistribution):
            transforms = list(base.transforms) + transforms
            base = base.base_dist
        else:
            break
    if not isinstance(base, torch.distributions.Normal):
        raise TypeError(f"a policy prior must return a Normal-based distribution, got {type(base).__name__}")
    x = base.loc + base.scale * standard_normal(tuple(base.loc.shape), generator, base.loc)
    for transform in transforms:
        x = transform(x)
    return x


def as_vector(x: torch.Tensor, n: int, what: str) -> torch.Tensor:
    """Flatten a per-sample read-out to ``[n]`` with a clear error when its size is wrong."""
    if x.numel() != n:
        raise ValueError(f"{what} returned shape {tuple(x.shape)}; expected {n} values (one per sample)")
    return x.reshape(n)


# ----------------------------------------------------------------------------- the shared loop
class SamplingPlanner(abc.ABC):
    """Sample, score in one rollout, refit; subclasses supply the refit rule (CEM elites, MPPI weights)."""

    config: PlannerConfig

    def __init__(
        self,
        config: PlannerConfig,
        value_fn: ValueFn | None = None,
        policy_prior: PolicyPrior | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        self.config = config
        self.value_fn = value_fn
        self.policy_prior = policy_prior
        if action_space is not None:
            check_continuous(action_space)
        if policy_prior is not None and not 0 < config.num_prior_samples < config.num_samples:
            raise ConfigError(
                f"with a policy prior, num_prior_samples must be in (0, num_samples={config.num_samples}),"
                f" got {config.num_prior_samples}"
            )
        self.action_space = action_space

    @abc.abstractmethod
    def refit(
        self, candidates: torch.Tensor, returns: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``candidates [B, N, H, A]`` (normalised), ``returns [B, N]`` -> new ``(mean, std, expected_return)``."""

    @torch.no_grad()
    def plan(
        self,
        model: PlanningModel,
        state: TensorDict,
        prev_mean: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        goal: torch.Tensor | None = None,
    ) -> PlanResult:
        """Plan for a batch of ``B`` environments from their current model states ``state [B]``.

        ``goal [B, D]``: each environment's goal embedding (``model.embed(goal_obs)``), for ``reward="goal"``.
        """
        cfg = self.config
        if len(state.batch_size) != 1:
            raise ValueError(f"plan expects a state with batch size [B], got {list(state.batch_size)}")
        batch = state.batch_size[0]
        box = self._box(model, state)
        horizon, dim = cfg.horizon, box.centre.shape[0]
        mean = torch.zeros(batch, horizon, dim, device=box.centre.device)
        if prev_mean is not None:
            if tuple(prev_mean.shape) != (batch, horizon, dim):
                raise ValueError(f"prev_mean must have shape {(batch, horizon, dim)}, got {tuple(prev_mean.shape)}")
            mean = shift_plan(box.to_normalised(prev_mean.to(mean)))
        std = torch.full_like(mean, cfg.init_std)
        prior = self._prior_candidates(model, state, box, generator) if self.policy_prior is not None else None
        num_gaussian = cfg.num_samples - (0 if prior is None else prior.shape[1])
        expected = torch.zeros(batch, device=mean.device)
        start = expand_batch(state, cfg.num_samples)  # once: a state may hold frames (the vrnn's last real one)
        for _ in range(cfg.iterations):
            noise = standard_normal((batch, num_gaussian, horizon, dim), generator, mean)
            candidates = box.clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise)
            if prior is not None:
                candidates = torch.cat([prior, candidates], dim=1)
            returns = self.evaluate(model, state, box.to_units(candidates), generator, goal, start)
            mean, std, expected = self.refit(candidates, returns, mean, std)
            std = std.clamp(cfg.min_std, cfg.max_std)
        mean_units = box.to_units(box.clamp(mean))
        return PlanResult(mean_units[:, 0], mean_units, std * box.half, expected)

    def evaluate(
        self,
        model: PlanningModel,
        state: TensorDict,
        actions: torch.Tensor,
        generator: torch.Generator | None,
        goal: torch.Tensor | None = None,
        start: TensorDict | None = None,
    ) -> torch.Tensor:
        """Returns ``[B, N]`` of ``actions [B, N, H, A]`` (model units), all scored in one ``model.rollout``.

        ``start``: ``state`` already repeated for the N candidates (``expand_batch``), when the caller has it.
        """
        batch, num, horizon, dim = actions.shape
        flat = batch * num
        start = expand_batch(state, num) if start is None else start
        actions = actions.reshape(flat, horizon, dim)
        states = model.rollout(start, actions, generator if self.config.sample_dynamics else None)
        goals = None if goal is None else goal.repeat_interleave(num, dim=0)
        rewards, continues = step_scores(
            model, start, states, actions, self.config.reward, self.config.termination, goals
        )
        value = None
        if self.value_fn is not None:
            value = as_vector(self.value_fn(model.latent(states[:, -1])), flat, "value_fn")
        total = discounted_return(rewards, continues, self.config.discount, value)
        # A diverged rollout (nan/inf) must rank last, not poison the refit.
        worst = torch.finfo(total.dtype).min
        total = torch.where(torch.isfinite(total), total, torch.full_like(total, worst))
        return total.reshape(batch, num)

    def _prior_candidates(
        self, model: PlanningModel, state: TensorDict, box: ActionBox, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Sequences from rolling the policy prior out in the model (TD-MPC2): normalised ``[B, P, H, A]``."""
        num, batch = self.config.num_prior_samples, state.batch_size[0]
        current = expand_batch(state, num)
        steps = []
        for _ in range(self.config.horizon):
            action = sample_distribution(self.policy_prior(model.latent(current)), generator)  # type: ignore[misc]
            steps.append(box.clamp(box.to_normalised(action.reshape(batch * num, -1))))
            current = model.imagine(
                current, box.to_units(steps[-1]), generator if self.config.sample_dynamics else None
            )
        return torch.stack(steps, dim=1).reshape(batch, num, self.config.horizon, -1)

    def _box(self, model: Any, state: TensorDict) -> ActionBox:
        space = self.action_space
        if space is None:
            task = getattr(model, "task", None)
            if task is None:
                raise ConfigError("the planner needs an action space: pass action_space= or use a model with .task")
            space = task.action_space
        return ActionBox.from_space(space, device=state_device(state))


def state_device(state: TensorDict) -> torch.device:
    """The device a state lives on (TensorDicts built without ``device=`` report None: ask a leaf)."""
    if state.device is not None:
        return state.device
    for leaf in state.values(include_nested=True, leaves_only=True):
        return leaf.device
    return torch.device("cpu")


__all__ = [
    "ActionBox",
    "PlanningModel",
    "PlanResult",
    "PlannerConfig",
    "PolicyPrior",
    "SamplingPlanner",
    "ValueFn",
    "as_vector",
    "check_continuous",
    "expand_batch",
    "sample_distribution",
    "shift_plan",
    "standard_normal",
    "state_device",
]
