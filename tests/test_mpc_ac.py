"""mpc-ac: MPC searching with the imagination actor-critic's proposals and ending plans in its value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_actor_critic import Drift, starts
from worldrl.agents import make_agent
from worldrl.agents.mpc_ac import DEFAULT_PLANNER, MPCActorCritic, split_settings
from worldrl.agents.protocol import available_agents
from worldrl.errors import ConfigError

AC = dict(ac_horizon=5, ac_actor_hidden=(32, 32), ac_critic_hidden=(32, 32), ac_actor_lr=1e-3, ac_critic_lr=1e-3)
TINY_SEARCH = dict(horizon=1, num_samples=2, num_prior_samples=1, num_elites=1, iterations=1)


def test_flat_settings_split_into_planner_and_actor_critic():
    planner, ac = split_settings({"horizon": 3, "num_samples": 8, "ac_horizon": 10, "ac_updates_per_real_step": 0.1})
    assert planner == {"horizon": 3, "num_samples": 8} and ac == {"horizon": 10, "updates_per_real_step": 0.1}
    with pytest.raises(ConfigError, match="unknown actor-critic settings \\['ac_nope'\\]"):
        split_settings({"ac_nope": 1})
    agent = make_agent("mpc-ac", model=Drift(), device="cpu", ac_horizon=7)
    assert "mpc-ac" in available_agents() and isinstance(agent, MPCActorCritic)
    assert agent.actor_critic.config.horizon == 7 and agent.mpc.planner.config.horizon == DEFAULT_PLANNER["horizon"]
    # the planner is wired to the actor-critic: its actor proposes, its critic ends the plans
    assert agent.mpc.planner.policy_prior == agent.actor_critic.policy_prior
    assert agent.mpc.planner.value_fn == agent.actor_critic.value


def test_learned_proposals_let_a_two_sample_search_act_well():
    """With 2 candidates per step the search alone is a coin toss; the trained actor's proposal wins it."""
    torch.manual_seed(0)
    trained = MPCActorCritic(Drift(), device="cpu", **AC, **TINY_SEARCH)
    untrained = MPCActorCritic(Drift(), device="cpu", seed=0, **AC, **TINY_SEARCH)
    for _ in range(120):
        trained.actor_critic.update_from_starts(starts())
    pos = np.linspace(-0.4, 1.4, 32, dtype=np.float32)[:, None]  # the target 0.5 is one step away from each
    error = {}
    for name, agent in (("trained", trained), ("untrained", untrained)):
        action = agent.act(pos)
        assert action.shape == (32, 1) and np.all(np.abs(action) <= 1.0)
        error[name] = float(np.abs(pos + action - 0.5).mean())
    # the proposal is a sample (pre-tanh std >= 0.1): close to the target, not on it
    assert error["trained"] < 0.25 and error["trained"] < 0.5 * error["untrained"], error


def test_save_load_round_trip_reproduces_actions(tmp_path):
    agent = MPCActorCritic(Drift(), device="cpu", seed=3, **AC, horizon=2, num_samples=8, num_prior_samples=2)
    for _ in range(5):
        agent.actor_critic.update_from_starts(starts())
    agent.save(tmp_path)
    obs = np.array([[0.0], [1.0]], np.float32)
    agent.reset()
    expected = agent.act(obs)
    saved = __import__("json").loads((tmp_path / "agent.json").read_text())
    assert saved["agent"] == "mpc-ac" and saved["config"]["planner_config"]["horizon"] == 2
    again = make_agent("mpc-ac", model=Drift(), device="cpu", seed=saved["seed"], config=saved["config"])
    again.load(tmp_path)
    np.testing.assert_allclose(again.act(obs), expected, atol=1e-6)
    again.configure_planner(horizon=4)  # evaluate-agent --planner-option: the prior and value stay wired
    assert again.mpc.planner.config.horizon == 4 and again.mpc.planner.value_fn == again.actor_critic.value
