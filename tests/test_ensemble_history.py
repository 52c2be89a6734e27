"""The ensemble's ``history`` (past steps as inputs, for observations that hide velocity) and beta-NLL."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from worldrl.models import TaskSpec, build_model
from worldrl.models.ensemble.history import episode_start, history_complete, past_steps
from worldrl.models.ensemble.model import gaussian_nll


def _task(obs_dim: int = 1, act_dim: int = 1) -> TaskSpec:
    return TaskSpec(
        observation_space=gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
        action_space=gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32),
        task_id="HiddenVelocity-v0",
    )


def _model(history: int, **overrides):
    torch.manual_seed(0)
    config = {"num_members": 3, "num_elites": 2, "hidden_dims": (32, 32), "history": history, **overrides}
    return build_model("ensemble", config, _task())


def test_past_steps_stop_at_the_episode_start_and_repeat_it():
    steps = 5
    obs = torch.arange(steps, dtype=torch.float32).view(1, steps, 1)
    prev_action = (10.0 + torch.arange(steps, dtype=torch.float32)).view(1, steps, 1)
    is_first = torch.tensor([[False, False, True, False, False]])
    prev_action[0, 2] = 0.0  # the protocol: no action leads into an episode's first step
    assert episode_start(is_first).tolist() == [[0, 0, 2, 2, 2]]
    past_obs, past_action = past_steps(obs, prev_action, is_first, history=2)
    assert past_obs[0, :, :, 0].tolist() == [[0, 0], [0, 0], [2, 2], [2, 2], [3, 2]]
    # a_{t-1}, a_{t-2}: zero before the episode; the window's first step keeps its real previous action
    assert past_action[0, :, :, 0].tolist() == [[10, 0], [11, 10], [0, 0], [13, 0], [14, 13]]
    assert history_complete(is_first, 2).tolist() == [[False, False, True, True, True]]
    assert history_complete(torch.zeros(1, 4, dtype=torch.bool), 1).tolist() == [[False, True, True, True]]


def hidden_velocity_batch(g: torch.Generator, b: int = 128, t: int = 4) -> TensorDict:
    """Position only: v' = 0.7 v + 0.5 a, x' = x + v', with the velocity never observed."""
    x, v = torch.randn(b, 1, generator=g), torch.randn(b, 1, generator=g)
    actions = torch.rand(b, t, 1, generator=g) * 2 - 1
    positions = []
    for k in range(t):
        positions.append(x)
        v = 0.7 * v + 0.5 * actions[:, k]
        x = x + v
    return TensorDict(
        obs=torch.stack(positions, 1),
        action=actions,
        reward=torch.zeros(b, t),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        is_first=torch.zeros(b, t, dtype=torch.bool),
        mask=torch.ones(b, t, dtype=torch.bool),
        batch_size=[b, t],
    )


def _one_step_error(model, batch: TensorDict) -> float:
    """Observe the first three steps, imagine the fourth under its action; MSE over the true step's variance."""
    prev_action = torch.cat([torch.zeros_like(batch["action"][:, :1]), batch["action"][:, :-1]], 1)
    with torch.no_grad():
        state = model.observe_last(batch["obs"][:, :3], prev_action[:, :3], batch["is_first"][:, :3])
        predicted = model.imagine(state, batch["action"][:, 2])["obs"]
    real = batch["obs"][:, 3]
    return float((predicted - real).pow(2).mean() / (real - batch["obs"][:, 2]).var())


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_history_learns_what_the_observation_hides(beta):
    errors = {}
    for history in (0, 1):
        model = _model(history, nll_beta=beta)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(300):
            loss, _ = model.loss(hidden_velocity_batch(g))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        errors[history] = _one_step_error(model, hidden_velocity_batch(torch.Generator().manual_seed(99)))
    assert model.capabilities.recurrent and model.latent_dim == 3  # x, its change, the previous action
    assert errors[1] < 0.05, errors  # the last step's change gives the velocity exactly
    assert errors[0] > 5 * errors[1], errors


def test_imagined_states_carry_their_history_forward():
    model = _model(2).eval()
    batch = hidden_velocity_batch(torch.Generator().manual_seed(1), b=4)
    state = model.observe_last(batch["obs"][:, :3], batch["action"][:, :3], batch["is_first"][:, :3])
    assert state["past_obs"].shape == (4, 2, 1) and state["past_action"].shape == (4, 2, 1)
    action = torch.full((4, 1), 0.25)
    with torch.no_grad():
        nxt = model.imagine(state, action)
    torch.testing.assert_close(nxt["past_obs"][:, 0], state["obs"])
    torch.testing.assert_close(nxt["past_obs"][:, 1], state["past_obs"][:, 0])
    torch.testing.assert_close(nxt["past_action"][:, 0], action)
    # a state without a history (built from one observation) is a pusher at rest
    bare = TensorDict(obs=state["obs"], batch_size=[4])
    at_rest = model.observe_last(state["obs"][:, None], torch.zeros(4, 1, 1), torch.ones(4, 1, dtype=torch.bool))
    with torch.no_grad():
        torch.testing.assert_close(model.imagine(bare, action)["obs"], model.imagine(at_rest, action)["obs"])


def test_windows_shorter_than_the_history_are_refused():
    with pytest.raises(ValueError, match=r"history=2 needs training windows of at least 4 steps \(data.window\)"):
        _model(2).loss(hidden_velocity_batch(torch.Generator().manual_seed(0), t=3))
    with pytest.raises(ValueError, match="history"):
        _model(-1)


def test_beta_nll_weights_by_the_variance_and_gives_the_mean_the_squared_error_gradient():
    mean = torch.tensor([0.5, -1.0], requires_grad=True)
    logvar, target = torch.tensor([1.0, -2.0]), torch.tensor([1.5, 0.0])
    plain = gaussian_nll(mean, logvar, target)
    torch.testing.assert_close(gaussian_nll(mean, logvar, target, 0.5), plain * torch.exp(0.5 * logvar))
    gaussian_nll(mean, logvar, target, 1.0).sum().backward()
    torch.testing.assert_close(mean.grad, (mean - target).detach())
    with pytest.raises(ValueError, match="nll_beta"):
        _model(0, nll_beta=2.0)
