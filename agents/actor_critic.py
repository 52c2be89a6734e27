"""Dreamer-style actor-critic learned purely in imagination on a world model's latent states.

From given start states the actor is rolled out ``horizon`` steps through ``model.imagine``; rewards come from
``model.reward`` (clipped to the real rewards' range and minus an ensemble-disagreement penalty,
``worldrl.agents.uncertainty``, so the actor stops chasing rewards far outside the data) and continuation from
``1 - model.terminal``. A slow (EMA) target critic supplies the values
inside the TD(lambda) returns (DreamerV2's slow critic), the critic regresses onto those returns, and the actor
maximises them, scaled by DreamerV3's return range ``max(1, P95 - P5)`` (EMA), plus an entropy bonus.

Actor gradients (``ActorCriticConfig.gradient``):

* ``"dynamics"`` (default, continuous actions): backpropagate the scaled lambda-returns through the learned
  dynamics, reward and value heads into the reparameterised actions (DreamerV1). Lowest variance; needs a
  differentiable model. The model's own parameters are frozen during the update: only the actor learns.
* ``"reinforce"``: the score-function estimator with the critic as baseline, ``log pi(a|s) * (R - v) / S``
  (DreamerV3's default for discrete control); works with non-differentiable models.

The actor is a tanh-Gaussian policy scaled into the (bounded) action box; its std lies in ``[min_std, max_std]``
through a shifted sigmoid (DreamerV3). The critic is a plain MLP regressing the returns with a squared error
(DreamerV3's two-hot symlog critic is not reproduced). Losses are weighted by the probability that a step is
still inside the episode. Weights save to ``agent.safetensors`` next to ``agent.json`` (no pickle; optimiser
moments are not saved, so a loaded agent restarts Adam).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from tensordict import TensorDict
from torch import nn

from worldrl.agents.protocol import (
    AGENT_CONFIG_NAME,
    ObservationHistory,
    as_batch,
    default_context_length,
    register_agent,
    to_action_array,
)
from worldrl.agents.returns import ReturnNormalizer, alive_weights, discounted_return, lambda_returns
from worldrl.agents.start_states import observed_start_states
from worldrl.agents.uncertainty import clip_reward, data_reward_bounds, disagreement_fn, penalised_reward
from worldrl.config_loading import check_fields, config_from_dict
from worldrl.errors import CheckpointError, EnvError
from worldrl.io import atomic_write_bytes, read_json, write_json
from worldrl.nn.mlp import mlp

WEIGHTS_NAME = "agent.safetensors"
GRADIENT_MODES = ("dynamics", "reinforce")
ACTOR_OBJECTIVES = ("all_steps", "start")


@dataclass
class ActorCriticConfig:
    """Imagination actor-critic settings (defaults after DreamerV3 where the task statement does not fix them)."""

    horizon: int = 15
    """Imagined steps per update."""
    discount: float = 0.99
    """Per-step discount gamma."""
    lambda_: float = 0.95
    """TD(lambda) mixing of the returns."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor MLP."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the critic MLP."""
    layer_norm: bool = True
    """LayerNorm after each hidden layer of both MLPs."""
    actor_lr: float = 3e-5
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-5
    """Adam learning rate of the critic."""
    adam_eps: float = 1e-5
    """Adam epsilon of both optimisers."""
    grad_clip: float = 100.0
    """Global gradient-norm clip per network."""
    entropy_coef: float = 3e-4
    """Weight of the policy-entropy bonus (on normalised returns)."""
    target_decay: float = 0.98
    """EMA decay of the slow target critic per update (it moves 1 - decay toward the critic)."""
    return_norm_decay: float = 0.99
    """EMA decay of the 5th/95th return percentiles."""
    return_percentiles: tuple[float, float] = (0.05, 0.95)
    """Percentiles whose range scales the returns."""
    min_std: float = 0.1
    """Smallest pre-tanh std of the actor."""
    max_std: float = 1.0
    """Largest pre-tanh std of the actor."""
    gradient: str = "dynamics"
    """Actor gradient estimator: ``"dynamics"`` (backprop through the model) or ``"reinforce"``."""
    actor_objective: str = "all_steps"
    """``"dynamics"`` gradient only: what the actor maximises. ``"all_steps"`` (DreamerV1-3) averages the
    lambda-returns of every imagined step, so an early action is also credited with the value of each later state
    it leads to; ``"start"`` maximises the start states' lambda-return only (the policy's value, as SVG(inf)),
    which does not over-reward actions that reach good states fast at a cost paid now."""
    sample_dynamics: bool = True
    """Imagine with the generator (sampled transitions); False uses the model's mean predictions."""
    updates_per_real_step: float = 1.0
    """``update(replay)``: actor-critic updates per real step added to the buffer since the last call (at least 1)."""
    start_batch: int = 64
    """``update(replay)``: real windows per update whose observed states start the imagined rollouts."""
    start_window: int = 2
    """``update(replay)``: length of those real windows (the model observes them before imagining)."""
    first_state_fraction: float = 0.0
    """``update(replay)``: fraction of those windows drawn among the ones that open an episode (0: uniform over
    all windows, where episode starts are rare although every episode and every evaluation begins there)."""
    uncertainty_penalty: float = 1.0
    """MOPO-style penalty: imagined rewards minus this times the ensemble's disagreement (``agents.uncertainty``;
    in data stds, ~0.05 on the data); 0 turns it off; families without a disagreement measure are not penalised."""
    exploration_bonus: float = 0.0
    """Optimism where the model is unsure (Plan2Explore's disagreement as an intrinsic reward, Sekar et al. 2020):
    imagined rewards plus this times the disagreement. For sparse rewards that random actions never reach
    (DMC pendulum-swingup); it offsets ``uncertainty_penalty`` (the net weight is penalty - bonus)."""
    reward_range_margin: float | None = 0.0
    """``update(replay)``: clip imagined rewards to the real rewards' range widened by this fraction of its width;
    None turns the cut-off off."""

    def __post_init__(self) -> None:
        checks = {
            "horizon": (self.horizon >= 1, ">= 1"),
            "discount": (0.0 < self.discount <= 1.0, "in (0, 1]"),
            "lambda_": (0.0 <= self.lambda_ <= 1.0, "in [0, 1]"),
            "actor_lr": (self.actor_lr > 0, "> 0"),
            "critic_lr": (self.critic_lr > 0, "> 0"),
            "adam_eps": (self.adam_eps > 0, "> 0"),
            "grad_clip": (self.grad_clip > 0, "> 0"),
            "entropy_coef": (self.entropy_coef >= 0, ">= 0"),
            "target_decay": (0.0 <= self.target_decay < 1.0, "in [0, 1)"),
            "return_norm_decay": (0.0 <= self.return_norm_decay < 1.0, "in [0, 1)"),
            "return_percentiles": (
                0.0 <= self.return_percentiles[0] < self.return_percentiles[1] <= 1.0,
                "an increasing pair in [0, 1]",
            ),
            "min_std": (0.0 < self.min_std <= self.max_std, "in (0, max_std]"),
            "gradient": (self.gradient in GRADIENT_MODES, f"one of {GRADIENT_MODES}"),
            "actor_objective": (
                self.actor_objective in ACTOR_OBJECTIVES
                and (self.actor_objective == "all_steps" or self.gradient == "dynamics"),
                f"one of {ACTOR_OBJECTIVES} ('start' needs gradient 'dynamics')",
            ),
            "actor_hidden": (all(int(h) > 0 for h in self.actor_hidden), "positive widths"),
            "critic_hidden": (all(int(h) > 0 for h in self.critic_hidden), "positive widths"),
            "updates_per_real_step": (self.updates_per_real_step >= 0, ">= 0"),
            "start_batch": (self.start_batch >= 1, ">= 1"),
            "start_window": (self.start_window >= 1, ">= 1"),
            "first_state_fraction": (0.0 <= self.first_state_fraction <= 1.0, "in [0, 1]"),
            "uncertainty_penalty": (self.uncertainty_penalty >= 0, ">= 0"),
            "exploration_bonus": (self.exploration_bonus >= 0, ">= 0"),
            "reward_range_margin": (self.reward_range_margin is None or self.reward_range_margin >= 0, ">= 0 or null"),
        }
        check_fields(self, checks)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActorCriticConfig:
        """The config from ``to_dict`` output or agent options (strict: ``config_from_dict``)."""
        return config_from_dict(cls, data, "dreamer")


# ----------------------------------------------------------------------------- math
def actor_loss_of(
    objective: torch.Tensor, entropy: torch.Tensor, weights: torch.Tensor, entropy_coef: float, mode: str
) -> torch.Tensor:
    """The actor's loss from its per-step ``objective`` and ``entropy`` ``[B, H]``: the alive-weighted mean over
    all imagined steps (``"all_steps"``), or the start states' objective (alive weight 1) plus the weighted
    entropy bonus of every step (``"start"``)."""
    if mode == "start":
        return -(objective[:, 0].mean() + (weights * entropy_coef * entropy).mean())
    return -(weights * (objective + entropy_coef * entropy)).mean()


def tanh_log_det(raw: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)`` computed stably as ``2 * (log 2 - u - softplus(-2u))``, summed over the last dim."""
    return (2.0 * (math.log(2.0) - raw - nn.functional.softplus(-2.0 * raw))).sum(dim=-1)


def bounded_std(raw: torch.Tensor, min_std: float, max_std: float) -> torch.Tensor:
    """DreamerV3's std parameterisation: ``(max - min) * sigmoid(raw + 2) + min``."""
    return (max_std - min_std) * torch.sigmoid(raw + 2.0) + min_std


def ema_(target: nn.Module, source: nn.Module, decay: float) -> None:
    """``target <- decay * target + (1 - decay) * source``, parameter by parameter."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, 1.0 - decay)


# ----------------------------------------------------------------------------- networks
class TanhGaussianActor(nn.Module):
    """``latent -> tanh(Normal(mean, std))`` scaled into the action box ``[low, high]``."""

    def __init__(self, latent_dim: int, low: torch.Tensor, high: torch.Tensor, config: ActorCriticConfig) -> None:
        super().__init__()
        self.net = mlp(latent_dim, config.actor_hidden, 2 * low.numel(), layer_norm=config.layer_norm)
        self.min_std, self.max_std = config.min_std, config.max_std
        self.register_buffer("centre", (high + low) / 2.0)
        self.register_buffer("half_range", (high - low) / 2.0)

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh ``(mean, std)``; the mean is soft-limited to ``[-5, 5]`` so tanh never fully saturates."""
        mean, std = self.net(latent).chunk(2, dim=-1)
        return 5.0 * torch.tanh(mean / 5.0), bounded_std(std, self.min_std, self.max_std)

    def squash(self, raw: torch.Tensor) -> torch.Tensor:
        return self.centre + self.half_range * torch.tanh(raw)

    def log_prob(self, latent: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Log density of the squashed action whose pre-tanh value is ``raw``."""
        mean, std = self(latent)
        base = torch.distributions.Normal(mean, std).log_prob(raw).sum(dim=-1)
        return base - tanh_log_det(raw) - torch.log(self.half_range).sum()

    def sample(self, latent: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised ``(action, raw)`` with noise from ``generator``."""
        mean, std = self(latent)
        device = generator.device if generator is not None else mean.device
        noise = torch.randn(mean.shape, generator=generator, device=device).to(mean)
        raw = mean + std * noise
        return self.squash(raw), raw

    def mode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.squash(self(latent)[0])

    def distribution(self, latent: torch.Tensor) -> torch.distributions.Distribution:
        """The policy as a torch distribution (usable as a CEM/MPPI policy prior)."""
        mean, std = self(latent)
        transforms = [
            torch.distributions.TanhTransform(cache_size=1),
            torch.distributions.AffineTransform(self.centre, self.half_range),
        ]
        base = torch.distributions.Independent(torch.distributions.Normal(mean, std), 1)
        return torch.distributions.TransformedDistribution(base, transforms)


class Critic(nn.Module):
    def __init__(self, latent_dim: int, config: ActorCriticConfig) -> None:
        super().__init__()
        self.net = mlp(latent_dim, config.critic_hidden, 1, layer_norm=config.layer_norm)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent).squeeze(-1)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Stop gradients from accumulating in ``module``'s parameters (they still flow through its activations)."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


# ----------------------------------------------------------------------------- the learner
@dataclass
class Imagined:
    """One imagined batch: latents ``[B, H + 1, L]``, pre-tanh actions, rewards (penalised and clipped) and
    continues ``[B, H]``, and the model's disagreement per step ``[B, H]`` (None when its family has none)."""

    latents: torch.Tensor
    raw_actions: torch.Tensor
    rewards: torch.Tensor
    continues: torch.Tensor
    uncertainty: torch.Tensor | None = None


class ImaginationActorCritic(nn.Module):
    """``ImaginationActorCritic(model, config).update(replay) -> metrics``; ``act(obs | latent | state)``."""

    def __init__(
        self,
        model: Any,
        config: ActorCriticConfig | dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        seed: int | None = 0,
        context_length: int | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if isinstance(config, dict) or config is None:
            config = ActorCriticConfig.from_dict({**(config or {}), **overrides})
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.device = torch.device(device) if device is not None else model.device
        # A plain attribute (not a submodule): the world model is used, never trained or saved here.
        object.__setattr__(self, "model", model)
        low, high = _bounded_box(model.task.action_space, self.device)
        latent_dim = int(model.latent_dim)
        self.actor = TanhGaussianActor(latent_dim, low, high, config).to(self.device)
        self.critic = Critic(latent_dim, config).to(self.device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.return_norm = ReturnNormalizer(config.return_norm_decay, config.return_percentiles).to(self.device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, eps=config.adam_eps)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, eps=config.adam_eps)
        self.generator = torch.Generator(device=self.device)
        self._seed = seed
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self.history = ObservationHistory(model, context_length or default_context_length(model), self.device)
        self.updates = 0
        self.seen_steps = 0  # replay rows already accounted for by update(replay)
        self.rng = np.random.default_rng(seed)  # which real windows start the imagination
        uses_disagreement = config.uncertainty_penalty > 0 or config.exploration_bonus > 0
        self.disagreement = disagreement_fn(model) if uses_disagreement else None
        self.reward_bounds: tuple[float, float] | None = None  # set from the replay buffer by update(replay)

    # ----------------------------------------------------------------- learning
    def imagine(self, start: TensorDict, grad: bool) -> Imagined:
        """Roll the actor out ``horizon`` steps from ``start [B]``; gradients flow only when ``grad``."""
        gen = self.generator if self.config.sample_dynamics else None
        net_penalty = self.config.uncertainty_penalty - self.config.exploration_bonus  # the bonus offsets it
        with torch.set_grad_enabled(grad):
            state = start
            latents = [self.model.latent(state)]
            raws, rewards, continues, doubts = [], [], [], []
            for _ in range(self.config.horizon):
                action, raw = self.actor.sample(latents[-1], self.generator)
                doubt = self._doubt(state, action)
                state = self.model.imagine(state, action, gen)
                latents.append(self.model.latent(state))
                raws.append(raw)
                # clip first: the penalty must still count where the data's rewards are all alike (+1 per step)
                reward = clip_reward(self.model.reward(state).reshape(-1), self.reward_bounds)
                rewards.append(penalised_reward(reward, doubt, net_penalty))
                continues.append(1.0 - self.model.terminal(state).reshape(-1))
                if doubt is not None:
                    doubts.append(doubt.reshape(-1))
        stack = lambda xs: torch.stack(xs, dim=1)  # noqa: E731
        return Imagined(
            stack(latents), stack(raws), stack(rewards), stack(continues), stack(doubts).detach() if doubts else None
        )

    def _doubt(self, state: TensorDict, action: torch.Tensor) -> torch.Tensor | None:
        """The ensemble's disagreement on this imagined step, without gradient: every elite member's forward pass
        would otherwise be backpropagated too (5x the cost on CPU); the penalty still reaches the actor through
        the critic, whose targets include it."""
        if self.disagreement is None:
            return None
        with torch.no_grad():
            return self.disagreement(self.model, state.detach(), action.detach())

    def update(self, replay: Any) -> dict[str, float]:
        """The learner update of the online loop (every learner's ``update(replay)``): ``updates_per_real_step``
        steps per real step added since the last call, each from states observed on random real windows."""
        new_steps, self.seen_steps = len(replay) - self.seen_steps, len(replay)
        updates = max(1, round(self.config.updates_per_real_step * new_steps))
        windows = replay.windows(self.config.start_window)
        if self.config.reward_range_margin is not None:
            self.reward_bounds = data_reward_bounds(replay.arrays()["reward"], self.config.reward_range_margin)
        totals: dict[str, float] = {}
        for _ in range(updates):
            starts = observed_start_states(
                self.model, windows, self.config.start_batch, self.rng, self.config.first_state_fraction
            )
            for key, value in self.update_from_starts(starts).items():
                totals[key] = totals.get(key, 0.0) + float(value) / updates
        return {f"dreamer/{k}": v for k, v in totals.items()}

    def update_from_starts(self, start_states: TensorDict) -> dict[str, float]:
        """One actor and one critic step from imagined rollouts started at ``start_states`` (``[B]`` or ``[B, T]``)."""
        start = _flat_start(start_states).detach()
        dynamics = self.config.gradient == "dynamics"
        with frozen(self.model):
            traj = self.imagine(start, grad=dynamics)
            actor_loss, returns, metrics = self._actor_loss(traj, dynamics)
            self._step(self.actor_opt, self.actor, actor_loss)
        critic_loss = self._critic_loss(traj.latents.detach(), returns.detach(), traj.continues.detach())
        self._step(self.critic_opt, self.critic, critic_loss)
        ema_(self.target_critic, self.critic, self.config.target_decay)
        self.updates += 1
        return {**metrics, "actor_loss": float(actor_loss.detach()), "critic_loss": float(critic_loss.detach())}

    def _actor_loss(self, traj: Imagined, dynamics: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        cfg = self.config
        values = self.target_critic(traj.latents)
        returns = lambda_returns(traj.rewards, traj.continues, values, cfg.discount, cfg.lambda_)
        weights = alive_weights(traj.continues.detach())[:, :-1]
        scale = self.return_norm.update(returns)
        log_prob = self.actor.log_prob(
            traj.latents[:, :-1] if dynamics else traj.latents[:, :-1].detach(),
            traj.raw_actions if dynamics else traj.raw_actions.detach(),
        )
        if dynamics:
            objective = returns / scale
        else:
            objective = log_prob * ((returns - values[:, :-1]) / scale).detach()
        entropy = -log_prob  # single-sample estimate: the tanh-Gaussian has no closed-form entropy
        loss = actor_loss_of(objective, entropy, weights, cfg.entropy_coef, cfg.actor_objective)
        metrics = {
            "imagined_return": float(returns[:, 0].detach().mean()),
            "imagined_reward": float(traj.rewards.detach().mean()),
            "return_scale": float(scale),
            "entropy": float(entropy.detach().mean()),
        }
        if traj.uncertainty is not None:
            metrics["uncertainty"] = float(traj.uncertainty.mean())
        return loss, returns, metrics

    def _critic_loss(self, latents: torch.Tensor, returns: torch.Tensor, continues: torch.Tensor) -> torch.Tensor:
        weights = alive_weights(continues)[:, :-1]
        return 0.5 * (weights * (self.critic(latents[:, :-1]) - returns) ** 2).mean()

    def _step(self, optimizer: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        optimizer.step()

    @torch.no_grad()
    def evaluate(self, start_states: TensorDict, deterministic: bool = True) -> float:
        """Mean discounted imagined return of the current policy from ``start_states`` (no bootstrap, no learning)."""
        state = _flat_start(start_states)
        gen = self.generator if self.config.sample_dynamics else None
        rewards, continues = [], []
        for _ in range(self.config.horizon):
            latent = self.model.latent(state)
            action = self.actor.mode(latent) if deterministic else self.actor.sample(latent, self.generator)[0]
            state = self.model.imagine(state, action, gen)
            rewards.append(self.model.reward(state).reshape(-1))
            continues.append(1.0 - self.model.terminal(state).reshape(-1))
        total = discounted_return(torch.stack(rewards, 1), torch.stack(continues, 1), self.config.discount)
        return float(total.mean())

    # ----------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, inputs: Any, deterministic: bool = True) -> Any:
        """Actions for observations (numpy in -> numpy out, Gymnasium style), latents (tensor ``[L]``/``[B, L]``
        -> tensor) or model states (TensorDict ``[B]`` -> tensor)."""
        if isinstance(inputs, TensorDict):
            return self._policy(self.model.latent(inputs), deterministic)
        if isinstance(inputs, torch.Tensor):
            latent = inputs.to(self.device, torch.float32)
            action = self._policy(latent.reshape(-1, latent.shape[-1]), deterministic)
            return action.reshape(*latent.shape[:-1], -1)
        obs, single = as_batch(inputs, tuple(self.model.task.obs_shape), self.device)
        action = self._policy(self.model.latent(self.history.encode(obs)), deterministic)
        self.history.record_action(action)
        return to_action_array(action, self.model.task.action_space, single)

    def _policy(self, latent: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.actor.mode(latent) if deterministic else self.actor.sample(latent, self.generator)[0]

    def reset(self, env_indices: Sequence[int] | None = None) -> None:
        self.history.reset(env_indices)

    def policy_prior(self, latent: torch.Tensor) -> torch.distributions.Distribution:
        """The actor as a planner's policy prior (``MPCAgent(..., policy_prior=agent.policy_prior)``)."""
        return self.actor.distribution(latent)

    def value(self, latent: torch.Tensor) -> torch.Tensor:
        """The critic as a planner's terminal value function."""
        return self.critic(latent)

    # ----------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike) -> Path:
        """``agent.json`` (settings) + ``agent.safetensors`` (actor, critic, target critic, return range)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write_bytes(directory / WEIGHTS_NAME, save_safetensors(tensors, metadata={"agent": "dreamer"}))
        write_json(
            directory / AGENT_CONFIG_NAME,
            {"agent": "dreamer", "config": self.config.to_dict(), "updates": self.updates, "seed": self._seed},
        )
        return directory

    def load(self, directory: str | os.PathLike) -> None:
        """Restore weights saved by ``save``; the settings must describe the same network shapes."""
        directory = Path(directory)
        data = read_json(directory / AGENT_CONFIG_NAME)
        saved = ActorCriticConfig.from_dict(data.get("config", {}))
        if saved != self.config:
            raise CheckpointError(
                f"{directory / AGENT_CONFIG_NAME} holds settings {saved}, this agent has {self.config}; "
                "build the agent with the saved config (ActorCriticConfig.from_dict) before loading"
            )
        path = directory / WEIGHTS_NAME
        try:
            state = load_safetensors(path.read_bytes())
        except (FileNotFoundError, SafetensorError) as err:
            raise CheckpointError(f"cannot read agent weights {path}: {err}") from None
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{path} does not match this agent's networks: {err}") from None
        self.updates = int(data.get("updates", 0))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, model: Any, **kwargs: Any) -> ImaginationActorCritic:
        config = ActorCriticConfig.from_dict(read_json(Path(directory) / AGENT_CONFIG_NAME).get("config", {}))
        agent = cls(model, config, **kwargs)
        agent.load(directory)
        return agent


def _flat_start(states: TensorDict) -> TensorDict:
    """Start states ``[B]`` or ``[B, T]`` (Dreamer starts from every posterior state) as ``[N]``."""
    if len(states.batch_size) == 0:
        raise ValueError("start_states must have a batch dimension, got batch size []")
    return states.reshape(-1) if len(states.batch_size) > 1 else states


def _bounded_box(space: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    from worldrl.agents.planners.common import check_continuous

    check_continuous(space)
    low, high = np.asarray(space.low, np.float64).ravel(), np.asarray(space.high, np.float64).ravel()
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise EnvError(f"the tanh-Gaussian actor needs a bounded action space, got {space}")
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device)  # noqa: E731
    return as_t(low), as_t(high)


register_agent("dreamer", ImaginationActorCritic)

__all__ = [
    "ActorCriticConfig",
    "Critic",
    "ImaginationActorCritic",
    "TanhGaussianActor",
    "bounded_std",
    "ema_",
    "frozen",
    "tanh_log_det",
]
