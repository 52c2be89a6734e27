"""The TorchRL env: specs, batch-unlocked stateless steps, seeding, collectors and TorchRL's own MPC planners."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import tiny_model  # noqa: E402
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.envs.utils import check_env_specs, step_mdp

import worldrl  # noqa: F401
from worldrl.envs.registration import ENV_IDS
from worldrl.envs.torchrl_env import WorldModelTorchRLEnv


@pytest.mark.parametrize(
    "options",
    [{}, {"sample": True}, {"obs_mode": "latent", "reward": "task", "termination": "none"}],
    ids=["mean", "sample", "latent-task"],
)
@pytest.mark.parametrize("task_id", ["Pendulum-v1", "InvertedPendulum-v5"])
def test_check_env_specs(task_id: str, options: dict) -> None:
    if task_id == "InvertedPendulum-v5" and options.get("reward") == "task":
        options = {**options, "termination": "task"}
    env = WorldModelTorchRLEnv(tiny_model(task_id), **options)
    check_env_specs(env, seed=0)
    assert env.task_id == task_id and not env.batch_locked


def test_every_registered_gym_id_has_a_torchrl_twin() -> None:
    # Same model, same start, same actions: the TorchRL env reproduces the Gymnasium env's numbers.
    start = np.array([0.6, 0.8, -1.0], np.float32)
    actions = np.linspace(-2, 2, 5, dtype=np.float32)[:, None]
    env = WorldModelTorchRLEnv(tiny_model(), termination="none")
    td = env.reset(TensorDict({"start_observation": torch.as_tensor(start)[None]}, [1]))
    for env_id in ENV_IDS:
        gym_env = gym.make(env_id, model=tiny_model(), termination="none")
        obs, _ = gym_env.reset(options={"observation": start})
        np.testing.assert_allclose(td["observation"][0].numpy(), obs, atol=1e-6)
        current = td
        for action in actions:
            current = env.step(current.set("action", torch.as_tensor(action)[None]))
            obs, reward, *_ = gym_env.step(action)
            np.testing.assert_allclose(current["next", "observation"][0].numpy(), obs, atol=1e-6)
            assert current["next", "reward"].item() == pytest.approx(reward, abs=1e-6)
            current = step_mdp(current)


def test_batch_unlocked_any_batch_shape() -> None:
    env = WorldModelTorchRLEnv(tiny_model(), termination="none")
    for shape in ([5], [2, 3]):
        td = env.reset(TensorDict({}, shape))
        assert td["observation"].shape == (*shape, 3)
        assert td["wm_state"].batch_size == torch.Size(shape)
        out = env.rollout(4, auto_reset=False, tensordict=td)
        assert out["next", "reward"].shape == (*shape, 4, 1)
        assert out["next", "observation"].shape == (*shape, 4, 3)


def test_state_lives_in_the_tensordict() -> None:
    # Stepping the same input twice gives the same output: the env holds no episode state.
    env = WorldModelTorchRLEnv(tiny_model(), termination="none")
    td = env.reset(TensorDict({}, [3])).set("action", torch.full((3, 1), 0.7))
    first, second = env.step(td.clone()), env.step(td.clone())
    torch.testing.assert_close(first["next", "observation"], second["next", "observation"])
    changed = td.clone()
    changed["wm_state", "obs"] = changed["wm_state", "obs"] + 0.5
    third = env.step(changed)
    assert not torch.equal(first["next", "observation"], third["next", "observation"])


def test_seeding_reproduces_sampled_rollouts() -> None:
    env = WorldModelTorchRLEnv(tiny_model(), sample=True, termination="none")

    def run(seed: int) -> torch.Tensor:
        env.set_seed(seed)
        torch.manual_seed(123)  # the random policy draws from the global generator
        return env.rollout(6, break_when_any_done=False)["next", "observation"]

    torch.testing.assert_close(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_start_observation_and_bad_actions() -> None:
    env = WorldModelTorchRLEnv(tiny_model(), action_policy="error")
    start = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    td = env.reset(TensorDict({"start_observation": start}, [2]))
    torch.testing.assert_close(td["observation"], start)
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(td.clone().set("action", torch.tensor([[0.0], [float("nan")]])))
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(td.clone().set("action", torch.tensor([[0.0], [3.0]])))


def test_collector_with_random_policy() -> None:
    from torchrl.collectors import Collector  # torchrl 0.14's name for SyncDataCollector
    from torchrl.envs import StepCounter, TransformedEnv

    env = TransformedEnv(WorldModelTorchRLEnv(tiny_model()), StepCounter(max_steps=10))
    collector = Collector(env, None, frames_per_batch=25, total_frames=50)
    batches = [batch for batch in collector]
    collector.shutdown()
    assert len(batches) == 2 and all(b.numel() == 25 for b in batches)
    assert batches[0]["next", "done"].any()  # episodes end (model termination or the step limit) and reset


def test_torchrl_cem_planner_runs_on_the_env() -> None:
    from torchrl.modules.planners import CEMPlanner

    env = WorldModelTorchRLEnv(tiny_model(), termination="none")
    planner = CEMPlanner(env, planning_horizon=4, optim_steps=2, num_candidates=16, top_k=4)
    torch.manual_seed(0)
    trajectory = env.rollout(3, planner)
    assert trajectory["action"].shape == (3, 1)
    assert env.action_spec.is_in(trajectory["action"])


def test_torchrl_mppi_planner_runs_on_the_env() -> None:
    from torchrl.modules import ValueOperator
    from torchrl.modules.planners import MPPIPlanner
    from torchrl.objectives.value import TDLambdaEstimator

    env = WorldModelTorchRLEnv(tiny_model(), termination="none")
    value = ValueOperator(torch.nn.Linear(3, 1), in_keys=["observation"])
    advantage = TDLambdaEstimator(gamma=0.99, lmbda=0.95, value_network=value)
    planner = MPPIPlanner(
        env, advantage, temperature=1.0, planning_horizon=4, optim_steps=2, num_candidates=16, top_k=4
    )
    torch.manual_seed(0)
    trajectory = env.rollout(2, planner)
    assert trajectory["action"].shape == (2, 1)
    assert isinstance(planner, TensorDictModule)


def test_non_finite_predictions_are_flagged_diverged_per_row() -> None:
    """As the Gymnasium envs' ``info["model_diverged"]``: the row is flagged, its values zeroed, its episode ends."""
    model = tiny_model()
    env = WorldModelTorchRLEnv(model, termination="none")
    td = env.reset(TensorDict({"start_observation": torch.zeros(3, 3)}, [3]))
    assert not td["model_diverged"].any()
    td["action"] = torch.zeros(3, 1)
    healthy = env.step(td.clone())["next"]
    assert not healthy["model_diverged"].any() and not healthy["done"].any()
    original = model.imagine

    def nan_in_row_one(state, action, generator=None):
        out = original(state, action, generator)
        out["obs"][1] = float("nan")
        return out

    model.imagine = nan_in_row_one
    try:
        out = env.step(td.clone())["next"]
    finally:
        del model.imagine
    assert out["model_diverged"].reshape(-1).tolist() == [False, True, False]
    assert out["terminated"].reshape(-1).tolist() == [False, True, False] and out["done"][1].item()
    assert torch.isfinite(out["observation"]).all() and torch.isfinite(out["reward"]).all()


def test_missing_entries_and_wrong_action_shapes_are_named() -> None:
    from worldrl.errors import EnvError

    env = WorldModelTorchRLEnv(tiny_model())
    td = env.reset(TensorDict({}, [2]))
    with pytest.raises(EnvError, match="no 'action' entry"):
        env.step(td.clone())
    with pytest.raises(EnvError, match="no 'wm_state' entry"):
        env.step(td.clone().exclude("wm_state").set("action", torch.zeros(2, 1)))
    with pytest.raises(ValueError, match=r"action has shape \(2, 3\), expected \(\.\.\., 1\)"):
        env.step(td.clone().set("action", torch.zeros(2, 3)))
