"""The ``dmc:`` adapter on real DeepMind Control tasks (``pip install worldrl[dmc]``: dm-control with mujoco 3.x).

Tests of real tasks are skipped where dm_control is missing, or installed next to a mujoco it cannot load tasks with
(mujoco 4.0, the base install): the adapter then raises ``MissingDependencyError``, checked by ``test_real_envs.py``.
The benchmark script's command-line and doc handling run everywhere.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from worldrl.errors import ConfigError, MissingDependencyError
from worldrl.tasks.real_envs import UnknownEnvError, env_fps, make_real_env, observation_names


def dmc_env(name: str, **kwargs):
    """A real ``dmc:`` env; the test is skipped where dm-control is missing or cannot load its tasks."""
    pytest.importorskip("dm_control")
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


# --------------------------------------------------------------------------- scripts/benchmark_dmc.py
def load_benchmark():
    from _scripts import load_script

    return load_script("benchmark_dmc")


def test_dmc_section_is_placed_after_the_robot_section_and_rewritten_in_place(tmp_path):
    from worldrl.evaluation.report import update_doc_section

    bench = load_benchmark()
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# B\n\n<!-- robot:start -->\nR\n<!-- robot:end -->\n\n<!-- later:start -->\nL\n<!-- later:end -->\n"
    )
    for body in ("first", "second"):
        bench.place_section(doc, "dmc", "robot")
        update_doc_section(doc, "dmc", body)
    text = doc.read_text()
    assert text.count("<!-- dmc:start -->") == 1 and "first" not in text
    assert text.index("<!-- robot:end -->") < text.index("second") < text.index("<!-- later:start -->")


def test_random_returns_are_seeded_per_episode_and_in_the_suites_range():
    dmc_env("cartpole-swingup").close()
    bench = load_benchmark()
    returns = bench.random_returns("dmc:cartpole-swingup", 2, seed=3)
    assert returns == bench.random_returns("dmc:cartpole-swingup", 2, seed=3)
    assert len(returns) == 2 and returns[0] != returns[1]
    assert all(0.0 <= r <= 1000.0 for r in returns)


def test_dmc_command_trains_evaluates_and_reports_beside_random_and_published(tmp_path, monkeypatch):
    dmc_env("cartpole-swingup").close()
    import sys

    bench = load_benchmark()
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    doc.write_text("# B\n\n<!-- robot:start -->\nR\n<!-- robot:end -->\n")
    argv = ["benchmark_dmc.py", "dmc", "--tasks", "cartpole-swingup", "--real-steps", "200", "--random-steps", "100"]
    argv += ["--steps-per-iteration", "100", "--eval-every", "100", "--eval-episodes", "2", "--model-steps", "2"]
    argv += ["--horizon", "2", "--samples", "8", "--iterations", "1", "--out", str(tmp_path / "out"), "--doc", str(doc)]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    entry = json.loads((tmp_path / "out" / "dmc.json").read_text())["cartpole-swingup/mpc-cem"]
    assert entry == json.loads((tmp_path / "out" / "dmc" / "cartpole-swingup" / "mpc-cem" / "result.json").read_text())
    assert [c["real_steps"] for c in entry["curve"]] == [100.0, 200.0]
    assert len(entry["final_returns"]) == 2 and len(entry["random_returns"]) == 2
    assert entry["agent_options"] == {"horizon": 2, "num_samples": 8, "iterations": 1, "num_elites": 4}
    text = doc.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| cartpole-swingup"))
    assert "| 200 (0%) |" in row and "| 839 | 835 | 677 |" in row  # budget share and TD-MPC2 / SAC / DreamerV3
    assert text.index("<!-- robot:end -->") < text.index("<!-- dmc:start -->")
    assert (doc.parent / "dmc_cartpole-swingup.png").stat().st_size > 1000


def test_agent_options_from_the_command_line_override_the_loops_defaults():
    bench = load_benchmark()
    args = argparse.Namespace(agent="dreamer", horizon=5, samples=None, iterations=None, agent_option=[])
    assert bench.agent_options(args) == {}  # dreamer does not plan: planner flags are dropped
    args.agent_option = ["updates_per_real_step=0.2", "actor_lr=1e-4"]
    assert bench.agent_options(args) == {"updates_per_real_step": 0.2, "actor_lr": 1e-4}
    args = argparse.Namespace(agent="mpc-cem", horizon=5, samples=40, iterations=None, agent_option=["horizon=7"])
    assert bench.agent_options(args) == {"horizon": 7, "num_samples": 40, "num_elites": 4}
    args.agent_option = ["horizon"]
    with pytest.raises(ConfigError, match="key=value"):
        bench.agent_options(args)
