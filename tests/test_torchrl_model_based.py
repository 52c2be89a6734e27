"""TorchRL's model-based env on worldrl modules, and TorchRL replay buffers as world-model training data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from worldrl.data.torchrl_replay import replay_from_torchrl
from worldrl.envs.torchrl_model_based import WorldModelDreamerEnv
from worldrl.errors import EnvError

sys.path.insert(0, str(Path(__file__).parent))
from _models import actor_loss_judge, tiny_model  # noqa: E402

torch.set_num_threads(1)


def test_dreamer_env_passes_check_env_specs_and_steps_the_modules() -> None:
    model = tiny_model("Pendulum-v1").eval()
    env = WorldModelDreamerEnv(model, start_observations=torch.randn(16, 3))
    check_env_specs(env)
    env.set_seed(0)
    first = env.reset()
    env.set_seed(0)
    torch.testing.assert_close(env.reset()["belief"], first["belief"])
    td = env.reset(TensorDict(observation=torch.randn(5, 3), batch_size=[5]))
    assert td.batch_size == (5,)
    td["action"] = torch.full((5, 1), 0.5)
    out = env.step(td)
    with torch.no_grad():
        expected = model.imagine(td["state"], td["action"])
    torch.testing.assert_close(out["next", "belief"], model.latent(expected))
    torch.testing.assert_close(out["next", "reward"], model.reward(expected)[:, None])
    # what DreamerActorLoss does: reset from given states, then roll out
    again = env.reset(out["next"].select("state", "belief").clone())
    torch.testing.assert_close(again["belief"], out["next", "belief"])


def test_a_family_without_rewards_is_refused() -> None:
    import gymnasium as gym
    import numpy as np

    from worldrl.models import TaskSpec, build_model, get_family

    task = TaskSpec(gym.spaces.Box(0, 255, (32, 32, 3), np.uint8), gym.spaces.Box(-1, 1, (1,), np.float32))
    model = build_model("vjepa2", get_family("vjepa2").config_class.tiny(), task)
    with pytest.raises(EnvError, match="predicts no rewards"):
        WorldModelDreamerEnv(model, start_observations=torch.zeros(2, 32, 32, 3))


def test_replay_from_torchrl_splits_episodes_and_aligns_rows() -> None:
    n = 7
    obs = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    done = torch.tensor([0, 0, 1, 0, 0, 0, 0], dtype=torch.bool)[:, None]
    traj = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    rows = TensorDict(
        {
            "observation": obs,
            "action": torch.arange(n, dtype=torch.float32)[:, None],
            ("collector", "traj_ids"): traj,
            ("next", "observation"): obs + 1,
            ("next", "reward"): -torch.arange(n, dtype=torch.float32)[:, None],
            ("next", "terminated"): done,
            ("next", "truncated"): torch.zeros(n, 1, dtype=torch.bool),
            ("next", "done"): done,
        },
        batch_size=[n],
    )
    replay = replay_from_torchrl(rows)
    a = replay.arrays()
    assert a["episode"].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert a["terminated"].tolist() == [False, False, True, False, False, False, False]
    np_reward = a["reward"].tolist()
    assert np_reward == [-float(i) for i in range(n)]
    window = replay.windows(3)[3]
    assert window["mask"].tolist() == [True, True, False] and window["is_first"][0]


def test_dreamer_losses_update_an_actor_inside_a_vrnn() -> None:
    """TorchRL's Dreamer actor/value losses run in a recurrent family's imagination and move the actor's weights."""
    from worldrl.agents.torchrl_dreamer import DreamerLearner, dreamer_actor_value
    from worldrl.models import TaskSpec, build_model, get_family

    torch.manual_seed(0)
    model = build_model("vrnn", get_family("vrnn").config_class.tiny(), TaskSpec.from_env_id("Pendulum-v1")).eval()
    model.start_states = torch.randn(8, 3)
    actor, value = dreamer_actor_value(model, hidden=16)
    learner = DreamerLearner(model, actor, value, horizon=3)
    before = [p.clone() for p in actor.parameters()]
    metrics = learner.update(learner.starts(torch.randn(4, 3)))
    assert all(np.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, actor.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_the_env_is_a_model_based_env_on_torchrl_world_model_wrapper() -> None:
    """TorchRL's own classes: ``ModelBasedEnvBase`` driven by a ``WorldModelWrapper`` of worldrl's modules."""
    from torchrl.envs.model_based import ModelBasedEnvBase
    from torchrl.modules import WorldModelWrapper

    from worldrl.models.torchrl_modules import torchrl_modules

    model = tiny_model("Pendulum-v1").eval()
    modules = torchrl_modules(model)
    env = WorldModelDreamerEnv(modules, start_observations=torch.randn(8, 3))
    assert isinstance(env, ModelBasedEnvBase) and isinstance(env.world_model, WorldModelWrapper)
    assert env.world_model.get_reward_operator() is modules.reward
    assert modules.transition in list(env.world_model.get_transition_model_operator().module)
    check_env_specs(env)
    rollout = env.rollout(4, auto_reset=True, break_when_any_done=False)
    assert rollout.batch_size == (4,) and rollout["next", "reward"].shape == (4, 1)
    with torch.no_grad():  # every step is the model's imagination from the previous state
        expected = model.imagine(rollout["state"], rollout["action"])
    torch.testing.assert_close(rollout["next", "belief"], model.latent(expected))


def test_dreamer_decoder_transform_decodes_imagined_states() -> None:
    """TorchRL's ``DreamerDecoder`` transform writes the worldrl decoder's observations next to each state."""
    from torchrl.envs.model_based.dreamer import DreamerDecoder

    torch.manual_seed(0)
    model = tiny_model("Pendulum-v1").eval()
    starts = torch.rand(8, 3) * 2 - 1  # inside Pendulum's observation space (the model clips to it when it observes)
    env = WorldModelDreamerEnv(model, start_observations=starts).append_transform(DreamerDecoder())
    env.set_seed(0)
    rollout = env.rollout(3, auto_reset=True, break_when_any_done=False)
    with torch.no_grad():
        torch.testing.assert_close(rollout["next", "observation"], model.decode(rollout["next", "state"]))
    assert rollout["next", "observation"].shape == (3, 3)


def test_recurrent_real_env_policy_filters_the_posterior_along_episodes() -> None:
    """The vrnn's real-env policy reads the belief ``model.observe`` gives for the episode so far (with the actions
    the policy took), restarting where ``is_init`` is set; a window of ``memory`` steps bounds the work."""
    from worldrl.agents.torchrl_dreamer import RecurrentRealEnvPolicy, dreamer_actor_value, real_env_policy
    from worldrl.models import TaskSpec, build_model, get_family

    torch.manual_seed(0)
    model = build_model("vrnn", get_family("vrnn").config_class.tiny(), TaskSpec.from_env_id("Pendulum-v1")).eval()
    actor, _ = dreamer_actor_value(model, hidden=8)
    policy = real_env_policy(model, actor)
    assert isinstance(policy, RecurrentRealEnvPolicy)
    steps, rows = 5, 2
    obs = torch.randn(rows, steps, 3)
    is_init = torch.zeros(rows, steps, dtype=torch.bool)
    is_init[:, 0] = True
    is_init[1, 3] = True  # row 1 starts a new episode at step 3
    beliefs, actions = [], []
    for t in range(steps):
        out = policy(TensorDict(observation=obs[:, t], is_init=is_init[:, t, None], batch_size=[rows]))
        beliefs.append(out["belief"])
        actions.append(out["action"])
    actions = torch.stack(actions, 1)
    prev = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], 1) * (~is_init)[..., None]
    with torch.no_grad():
        expected = model.latent(model.observe(obs, prev, is_init))
    torch.testing.assert_close(torch.stack(beliefs, 1), expected)
    low, high = model.task.action_space.low[0], model.task.action_space.high[0]
    assert actions.min() >= low and actions.max() <= high and actions.shape == (rows, steps, 1)
    policy.reset()  # a fresh episode again: the same first belief
    again = policy(TensorDict(observation=obs[:, 0], batch_size=[rows]))["belief"]
    torch.testing.assert_close(again, beliefs[0])


def test_replay_from_torchrl_refuses_missing_entries_empty_buffers_and_nan_in_one_line() -> None:
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    from worldrl.errors import DatasetError

    n = 4
    rows = TensorDict(
        {
            "observation": torch.zeros(n, 3),
            "action": torch.zeros(n, 1),
            ("next", "observation"): torch.zeros(n, 3),
            ("next", "reward"): torch.zeros(n, 1),
        },
        batch_size=[n],
    )
    with pytest.raises(DatasetError, match=r"no 'action' entry"):
        replay_from_torchrl(rows.exclude("action"))
    with pytest.raises(DatasetError, match="replay buffer is empty"):
        replay_from_torchrl(ReplayBuffer(storage=LazyTensorStorage(8)))
    rows[("next", "reward")][2] = float("nan")
    with pytest.raises(
        DatasetError, match=r"\('next', 'reward'\) entry holds NaN or inf in 1 row\(s\), first at row 2"
    ):
        replay_from_torchrl(rows)


def test_dreamer_actor_loss_falls_inside_a_vrnn() -> None:
    """TorchRL's actor loss, judged against a frozen copy of the initial critic on fixed starts, falls as the actor
    learns the vrnn's imagined rewards (the real-env comparison is scripts/benchmark_torchrl_dreamer.py)."""
    from worldrl.agents.torchrl_dreamer import DreamerLearner, dreamer_actor_value
    from worldrl.models import TaskSpec, build_model, get_family

    torch.manual_seed(0)
    model = build_model("vrnn", get_family("vrnn").config_class.tiny(), TaskSpec.from_env_id("Pendulum-v1")).eval()
    model.start_states = torch.randn(8, 3)
    actor, value = dreamer_actor_value(model, hidden=16)
    learner = DreamerLearner(model, actor, value, horizon=5, actor_lr=1e-2)
    fixed = learner.starts(torch.randn(64, 3))
    judged = actor_loss_judge(learner, actor, value, fixed, horizon=5)

    before = judged()
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        learner.update(learner.starts(torch.randn(32, 3, generator=generator)))
    after = judged()
    print(f"vrnn Dreamer actor loss {before:.4f} -> {after:.4f}")
    assert after < before - 1e-3  # an untrained vrnn's rewards vary little with the action: a small but real fall
