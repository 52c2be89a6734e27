"""The task reward/termination functions reproduce the real Gymnasium envs on recorded random transitions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldrl.tasks.rules import TaskFunctions, available_tasks, get_task, has_task, register_task

# (max abs reward error, mean abs reward error) allowed; exact tasks only differ by float32 rounding.
# The locomotion tasks estimate the real finite-difference x velocity from observed velocities (see worldrl/tasks/rules.py).
TOLERANCE = {
    "Pendulum-v1": (1e-5, 1e-5),
    "InvertedPendulum-v5": (1e-5, 1e-5),
    "Reacher-v5": (1e-5, 1e-5),
    "HalfCheetah-v5": (1.0, 0.15),
    "Hopper-v5": (0.1, 0.02),
    "Walker2d-v5": (0.2, 0.03),
}


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MuJoCo writes MUJOCO_LOG.TXT into the working directory (Hopper/Walker2d deprecation warnings)."""
    monkeypatch.chdir(tmp_path)


def record(task_id: str, steps: int = 200, seed: int = 0) -> tuple[torch.Tensor, ...]:
    env = gym.make(task_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, next_obs, reward, terminated))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return tuple(torch.as_tensor(np.array(column)) for column in zip(*rows))


@pytest.mark.parametrize("task_id", sorted(TOLERANCE))
def test_functions_match_real_env(task_id: str) -> None:
    obs, action, next_obs, reward, terminated = record(task_id)
    functions = get_task(task_id)
    assert (functions.obs_dim, functions.action_dim) == (obs.shape[1], action.shape[1])
    predicted = functions.reward(obs, action, next_obs)
    assert predicted.shape == reward.shape
    error = (predicted.double() - reward.double()).abs()
    max_error, mean_error = TOLERANCE[task_id]
    assert error.max() <= max_error, f"{task_id}: max reward error {error.max():.3g}"
    assert error.mean() <= mean_error, f"{task_id}: mean reward error {error.mean():.3g}"
    done = functions.terminated(obs, action, next_obs)
    assert done.dtype == torch.bool
    assert torch.equal(done, terminated.bool()), f"{task_id}: termination differs from the real env"


def test_terminating_tasks_do_terminate_in_the_recording() -> None:
    # Guards the test above: a termination rule that is never triggered would pass trivially.
    for task_id in ("InvertedPendulum-v5", "Hopper-v5", "Walker2d-v5"):
        *_, terminated = record(task_id)
        assert terminated.any(), task_id


def test_inverted_pendulum_terminates_on_non_finite() -> None:
    obs = torch.zeros(2, 4)
    next_obs = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, float("nan"), 0.0]])
    functions = get_task("InvertedPendulum-v5")
    assert functions.terminated(obs, torch.zeros(2, 1), next_obs).tolist() == [False, True]
    assert functions.reward(obs, torch.zeros(2, 1), next_obs).tolist() == [1.0, 0.0]


def test_pendulum_reward_clips_torque_and_wraps_angle() -> None:
    functions = get_task("Pendulum-v1")
    upright = torch.tensor([[1.0, 0.0, 0.0]])
    assert functions.reward(upright, torch.tensor([[0.0]]), upright).item() == 0.0
    # the real env clips torque to [-2, 2] before charging for it
    assert functions.reward(upright, torch.tensor([[10.0]]), upright).item() == pytest.approx(-0.004)
    hanging = torch.tensor([[-1.0, 0.0, 0.0]])
    assert functions.reward(hanging, torch.tensor([[0.0]]), hanging).item() == pytest.approx(-(np.pi**2), rel=1e-6)


def test_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import worldrl.tasks.rules as tasks

    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))  # keep the registration local to this test
    assert {"Pendulum-v1", "HalfCheetah-v5"} <= set(available_tasks())
    assert not has_task(None) and not has_task("Nope-v0")
    with pytest.raises(KeyError, match="Nope-v0"):
        get_task("Nope-v0")
    functions = get_task("Pendulum-v1")
    register_task(TaskFunctions("Custom-v0", functions.reward, functions.terminated, obs_dim=3, action_dim=1))
    assert get_task("Custom-v0").reward is functions.reward
