"""The ``dmc:`` adapter on real DeepMind Control tasks (``pip install worldrl[dmc]``: dm-control with mujoco 3.x).

Skipped where dm_control is missing, or installed next to a mujoco it cannot load tasks with (mujoco 4.0, the base
install): the adapter then raises ``MissingDependencyError``, checked by ``test_real_envs.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("dm_control")

from worldrl.errors import MissingDependencyError  # noqa: E402
from worldrl.tasks.real_envs import UnknownEnvError, env_fps, make_real_env, observation_names  # noqa: E402


def dmc_env(name: str, **kwargs):
    try:
        return make_real_env(f"dmc:{name}", **kwargs)
    except MissingDependencyError as err:  # dm_control built for another mujoco
        pytest.skip(str(err))


@pytest.mark.parametrize(
    ("task", "obs_dim", "act_dim", "fps"),
    [
        ("pendulum-swingup", 3, 1, 50),
        ("cartpole-swingup", 5, 1, 100),
        ("reacher-easy", 6, 2, 50),
        ("cheetah-run", 17, 6, 100),
    ],
)
def test_tasks_of_the_benchmark_load_with_their_spaces_and_rates(task, obs_dim, act_dim, fps):
    env = dmc_env(task)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (obs_dim,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert env.action_space.shape == (act_dim,) and np.all(env.action_space.low == -1.0)
    assert env_fps(env) == fps
    assert len(observation_names(env)) == obs_dim
    env.close()


def test_episode_is_truncated_at_the_suites_time_limit_with_rewards_in_unit_range():
    env = dmc_env("pendulum-swingup")
    env.reset(seed=1)
    rewards, flags = [], []
    for _ in range(1000):  # dm_control's 20 s at 50 Hz
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(reward)
        flags.append((terminated, truncated))
    assert flags[-1] == (False, True) and not any(t or u for t, u in flags[:-1])
    assert 0.0 <= min(rewards) and max(rewards) <= 1.0


def test_same_seed_same_episode_other_seed_other_start():
    def run(seed):
        env = dmc_env("cartpole-swingup")
        obs = [env.reset(seed=seed)[0]]
        for a in np.linspace(-1, 1, 10, dtype=np.float32):
            obs.append(env.step(np.array([a]))[0])
        return np.stack(obs)

    np.testing.assert_array_equal(run(4), run(4))
    assert not np.allclose(run(4)[0], run(5)[0])


def test_unknown_task_names_close_matches():
    with pytest.raises(UnknownEnvError, match="cartpole-swingup"):
        dmc_env("cartpole-swingupp")


def test_collect_records_named_states_and_frames_at_the_control_rate(tmp_path):
    dmc_env("cartpole-swingup").close()  # skips when the adapter cannot load tasks here
    from worldrl.data.collect import CollectConfig, collect

    root = tmp_path / "cartpole"
    summary = collect(
        CollectConfig("dmc:cartpole-swingup", root, episodes=2, max_episode_steps=6, pixels=True, image_size=32),
        progress=False,
    )
    info = json.loads((root / "meta" / "info.json").read_text())
    assert summary.frames == 12 and info["fps"] == 100
    assert info["features"]["observation.state"]["names"] == ["position.0", "position.1", "position.2"] + [
        "velocity.0",
        "velocity.1",
    ]
    assert info["features"]["observation.images.front"]["shape"] == [32, 32, 3]
