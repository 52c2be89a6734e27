"""``mpc-goal``: planning toward a goal observation in a latent-only model's space, from keyed real observations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_vjepa2_model import activate, make_model, make_obs  # noqa: E402

from worldrl.agents.goal_mpc import GoalMPCAgent
from worldrl.agents.protocol import available_agents, make_agent
from worldrl.errors import ConfigError


def _obs(seed: int) -> dict[str, np.ndarray]:
    return {k: v[0, 0].numpy() for k, v in make_obs(1, 1, seed=seed).items()}


def test_the_goal_agent_acts_on_keyed_observations() -> None:
    assert "mpc-goal" in available_agents()
    model = make_model()
    agent = make_agent("mpc-goal", model=model, goal=_obs(1), horizon=2, num_samples=32, num_elites=4, iterations=2)
    assert isinstance(agent, GoalMPCAgent) and agent.goal.shape == (1, model.latent_dim)
    action = agent.act(_obs(2))
    assert action.shape == (2,) and model.task.action_space.contains(action)
    batch = {k: np.stack([_obs(3)[k], _obs(4)[k]]) for k in _obs(3)}
    agent.reset()
    agent.set_goal(batch)
    assert agent.act(batch).shape == (2, 2) and agent.settings()["agent"] == "mpc-goal"


def test_the_plan_lowers_the_energy_below_doing_nothing() -> None:
    model = activate(make_model())
    torch.manual_seed(0)
    with torch.no_grad():  # make actions matter: the AC predictor's output leans on the action token
        model.action_predictor.action_embed.weight.mul_(20.0)
    agent = GoalMPCAgent(model, goal=_obs(1), horizon=1, num_samples=64, num_elites=8, iterations=3)
    obs = make_obs(1, 1, seed=2)[:, 0]
    state = agent.history.encode(obs)
    result = agent.plan(state)
    with torch.no_grad():

        def energy(action: torch.Tensor) -> float:
            return float(model.distance(model.state_embedding(model.imagine(state, action)), agent.goal))

        planned, idle = energy(result.action), energy(torch.zeros(1, 2))
        assert planned < idle


def test_a_goal_is_required_and_must_fit_the_task() -> None:
    model = make_model()
    agent = GoalMPCAgent(model, horizon=1, num_samples=8, num_elites=2, iterations=1)
    with pytest.raises(ConfigError, match="needs a goal"):
        agent.act(_obs(0))
    bad = {**_obs(0), "observation.images.front": np.zeros((8, 8, 3), np.uint8)}
    with pytest.raises(ValueError, match="observation.images.front"):
        agent.set_goal(bad)
    with pytest.raises(ConfigError, match="reward='goal'"):
        GoalMPCAgent(model, reward="model")
