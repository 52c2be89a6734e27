"""Imagination actor-critic: return math against hand computations, learning on a toy model, acting, save/load."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torch import nn

from worldrl.agents import make_agent
from worldrl.agents.actor_critic import (
    ActorCriticConfig,
    ImaginationActorCritic,
    actor_loss_of,
    bounded_std,
    ema_,
    tanh_log_det,
)
from worldrl.agents.planners import make_planner
from worldrl.agents.returns import ReturnNormalizer, alive_weights, discounted_return, lambda_returns
from worldrl.models.base import Capabilities, WorldModel, WorldModelConfig
from worldrl.models.task_spec import TaskSpec

TINY = dict(horizon=5, actor_hidden=(32, 32), critic_hidden=(32, 32), actor_lr=1e-3, critic_lr=1e-3, entropy_coef=1e-3)


class Drift(WorldModel):
    """1-D point: ``pos' = pos + gain * action``, reward ``-(pos' - 0.5)^2``; ``gain`` is a (differentiable)
    parameter, so the test can check the update leaves the world model's parameters alone."""

    capabilities = Capabilities(can_decode=False, predicts_terminal=False, stochastic=False)

    def __init__(self, high: float = 1.0) -> None:
        task = TaskSpec(
            gym.spaces.Box(-np.inf, np.inf, (1,), np.float32), gym.spaces.Box(-high, high, (1,), np.float32)
        )
        super().__init__(WorldModelConfig(), task)
        self.gain = nn.Parameter(torch.ones(()))

    def initial_state(self, batch_size):
        return TensorDict(pos=torch.zeros(batch_size, 1), batch_size=[batch_size])

    def observe(self, obs, prev_action, is_first):
        return TensorDict(pos=obs.float(), batch_size=obs.shape[:2])

    def imagine(self, state, action, generator=None):
        pos = state["pos"] + self.gain * action
        return TensorDict(pos=pos, reward=-((pos - 0.5) ** 2).sum(-1), batch_size=state.batch_size)

    def latent(self, state):
        return state["pos"]

    @property
    def latent_dim(self):
        return 1


def starts(n: int = 64, seed: int = 1) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(pos=torch.rand(n, 1, generator=g) * 4 - 2, batch_size=[n])


# ----------------------------------------------------------------------------- return math
def test_lambda_returns_match_a_hand_computation():
    rewards = torch.tensor([[1.0, 2.0]])
    continues = torch.tensor([[1.0, 0.5]])
    values = torch.tensor([[0.0, 10.0, 20.0]])
    # R2 = 20; R1 = 2 + 0.9 * 0.5 * (0.5 * 20 + 0.5 * 20) = 11; R0 = 1 + 0.9 * (0.5 * 10 + 0.5 * 11) = 10.45
    out = lambda_returns(rewards, continues, values, discount=0.9, lambda_=0.5)
    assert out[0].tolist() == pytest.approx([10.45, 11.0])
    # lambda = 1: the discounted Monte-Carlo return with a bootstrap; lambda = 0: one-step TD targets.
    mc = lambda_returns(rewards, continues, values, 0.9, 1.0)[:, 0]
    assert mc.item() == pytest.approx(discounted_return(rewards, continues, 0.9, values[:, -1]).item())
    td = lambda_returns(rewards, continues, values, 0.9, 0.0)
    assert td[0].tolist() == pytest.approx([1.0 + 0.9 * 10.0, 2.0 + 0.9 * 0.5 * 20.0])
    with pytest.raises(ValueError, match="horizon \\+ 1"):
        lambda_returns(rewards, continues, values[:, :2], 0.9, 0.5)


def test_alive_weights_and_return_normalizer():
    assert alive_weights(torch.tensor([[0.5, 0.0, 1.0]])).tolist() == [[1.0, 0.5, 0.0, 0.0]]
    norm = ReturnNormalizer(decay=0.5)
    returns = torch.linspace(0.0, 100.0, 101)
    assert norm.update(returns).item() == pytest.approx(90.0)  # the first batch sets P95 - P5 directly
    assert norm.update(returns + 10.0).item() == pytest.approx(90.0)  # a shift does not change the range
    assert norm.low.item() == pytest.approx(10.0) and norm.high.item() == pytest.approx(100.0)
    assert ReturnNormalizer().update(torch.linspace(0.0, 0.1, 11)).item() == 1.0  # small ranges are not amplified


def test_actor_math_helpers():
    u = torch.linspace(-3.0, 3.0, 13)[:, None]
    assert torch.allclose(tanh_log_det(u), torch.log(1 - torch.tanh(u) ** 2).sum(-1), atol=1e-5)
    std = bounded_std(torch.tensor([-100.0, 0.0, 100.0]), 0.1, 1.0)
    assert std[0].item() == pytest.approx(0.1) and std[2].item() == pytest.approx(1.0)
    target, source = nn.Linear(1, 1), nn.Linear(1, 1)
    expected = 0.75 * target.weight.detach() + 0.25 * source.weight.detach()
    ema_(target, source, 0.75)
    assert torch.allclose(target.weight, expected)


def test_actor_log_prob_matches_torch_transformed_distribution():
    agent = ImaginationActorCritic(Drift(high=2.0), **TINY)
    latent = torch.randn(8, 1)
    action, raw = agent.actor.sample(latent, torch.Generator().manual_seed(0))
    assert (action.abs() <= 2.0).all()
    expected = agent.actor.distribution(latent).log_prob(action)
    assert torch.allclose(agent.actor.log_prob(latent, raw), expected, atol=1e-4)


def test_actor_loss_of_scores_all_steps_or_the_start_only():
    objective = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]], requires_grad=True)
    entropy = torch.ones(2, 3)
    weights = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # the first rollout ended after step 1
    all_steps = actor_loss_of(objective, entropy, weights, 0.5, "all_steps")
    assert math.isclose(float(all_steps), -((1 + 2 + 3 + 4 + 5) + 0.5 * 5) / 6, rel_tol=1e-6)
    start = actor_loss_of(objective, entropy, weights, 0.5, "start")
    assert math.isclose(float(start), -((1 + 3) / 2 + 0.5 * 5 / 6), rel_tol=1e-6)
    (grad,) = torch.autograd.grad(start, objective)
    assert torch.equal(grad[:, 1:], torch.zeros(2, 2)) and torch.equal(grad[:, 0], torch.full((2,), -0.5))


# ----------------------------------------------------------------------------- learning
@pytest.mark.parametrize(
    "gradient, objective, updates",
    [("dynamics", "all_steps", 120), ("dynamics", "start", 120), ("reinforce", "all_steps", 120)],
)
def test_updates_raise_the_imagined_return(gradient, objective, updates):
    torch.manual_seed(0)
    model = Drift()
    agent = ImaginationActorCritic(model, gradient=gradient, actor_objective=objective, **TINY)
    before = agent.evaluate(starts())
    for _ in range(updates):
        metrics = agent.update_from_starts(starts())
    after = agent.evaluate(starts())
    # From x in [-2, 2] with |a| <= 1 and target 0.5, standing still scores about -8 over 5 steps, the random
    # initial actor about -12 here, and heading straight for the target about -0.3.
    assert before < -5.0 and after > -1.0, (before, after)
    assert all(math.isfinite(v) for v in metrics.values())
    assert {"actor_loss", "critic_loss", "imagined_return", "return_scale", "entropy"} <= set(metrics)
    assert model.gain.grad is None and model.gain.requires_grad  # the world model was used, not trained


def test_update_accepts_sequence_start_states_and_terminal_weights():
    class Ending(Drift):
        def imagine(self, state, action, generator=None):
            out = super().imagine(state, action, generator)
            out["terminal_logit"] = torch.full(state.batch_size, 50.0)  # every transition ends the episode
            return out

    agent = ImaginationActorCritic(Ending(), **TINY)
    seq = TensorDict(pos=torch.zeros(4, 3, 1), batch_size=[4, 3])
    traj = agent.imagine(seq.reshape(-1), grad=False)
    assert traj.latents.shape == (12, 6, 1) and traj.rewards.shape == (12, 5)
    assert torch.allclose(traj.continues, torch.zeros(12, 5), atol=1e-6)
    metrics = agent.update_from_starts(seq)
    assert math.isfinite(metrics["critic_loss"])


# ----------------------------------------------------------------------------- acting and persistence
def test_act_on_observations_latents_and_states():
    agent = ImaginationActorCritic(Drift(high=2.0), **TINY)
    single = agent.act(np.array([0.3]))
    assert single.shape == (1,) and single.dtype == np.float32 and abs(single[0]) <= 2.0
    agent.reset()
    batch = agent.act(np.zeros((5, 1)), deterministic=False)
    assert batch.shape == (5, 1) and np.all(np.abs(batch) <= 2.0)
    latent_action = agent.act(torch.zeros(1))
    assert isinstance(latent_action, torch.Tensor) and latent_action.shape == (1,)
    state_action = agent.act(TensorDict(pos=torch.zeros(3, 1), batch_size=[3]))
    assert torch.allclose(state_action, latent_action.expand(3, 1))
    with pytest.raises(ValueError, match="expected \\(1,\\)"):
        agent.act(np.zeros((2, 2)))


def test_save_load_round_trip(tmp_path):
    agent = ImaginationActorCritic(Drift(), **TINY)
    for _ in range(3):
        agent.update_from_starts(starts(16))
    agent.save(tmp_path / "dreamer")
    assert sorted(p.name for p in (tmp_path / "dreamer").iterdir()) == ["agent.json", "agent.safetensors"]
    loaded = ImaginationActorCritic.from_pretrained(tmp_path / "dreamer", Drift())
    latent = torch.linspace(-2, 2, 7)[:, None]
    assert torch.equal(loaded.act(latent), agent.act(latent))
    assert torch.equal(loaded.return_norm.high, agent.return_norm.high) and loaded.updates == 3
    other = ImaginationActorCritic(Drift(), **{**TINY, "actor_hidden": (8,)})
    with pytest.raises(ValueError, match="settings"):
        other.load(tmp_path / "dreamer")
    (tmp_path / "dreamer" / "agent.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="agent.safetensors"):
        loaded.load(tmp_path / "dreamer")


def test_config_validation_and_registry():
    with pytest.raises(ValueError, match="gradient"):
        ActorCriticConfig(gradient="straight-through")
    with pytest.raises(ValueError, match="lambda_"):
        ActorCriticConfig(lambda_=1.5)
    with pytest.raises(ValueError, match="actor_objective.*needs gradient 'dynamics'"):
        ActorCriticConfig(gradient="reinforce", actor_objective="start")
    with pytest.raises(ValueError, match="actor_objective"):
        ActorCriticConfig(actor_objective="first")
    with pytest.raises(ValueError, match="unknown field.*'dreamer.horizn'"):
        ImaginationActorCritic(Drift(), horizn=3)
    with pytest.raises(ValueError, match="bounded action space"):
        ImaginationActorCritic(Drift(high=np.inf))
    assert ActorCriticConfig.from_dict(ActorCriticConfig().to_dict()) == ActorCriticConfig()
    agent = make_agent("dreamer", model=Drift(), **TINY)
    assert isinstance(agent, ImaginationActorCritic) and agent.config.horizon == 5


def test_actor_and_critic_serve_a_planner_as_prior_and_value():
    agent = ImaginationActorCritic(Drift(), **TINY)
    planner = make_planner(
        "mppi",
        horizon=3,
        num_samples=32,
        num_elites=8,
        iterations=2,
        num_prior_samples=8,
        policy_prior=agent.policy_prior,
        value_fn=agent.value,
    )
    result = planner.plan(Drift(), starts(4), None, torch.Generator().manual_seed(0))
    assert result.action.shape == (4, 1) and torch.isfinite(result.expected_return).all()
