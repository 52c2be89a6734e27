"""The online loop's real collection in several env processes (--collect-envs, worldrl.loops.vector_collection)."""

from __future__ import annotations

import numpy as np
import pytest

from worldrl.data.replay import ReplayBuffer
from worldrl.errors import ConfigError
from worldrl.loops.config import OnlineConfig
from worldrl.loops.vector_collection import VectorRealCollector


class CountingAgent:
    """Acts on a batch of observations; records which envs it was told to forget."""

    def __init__(self) -> None:
        self.resets: list[list[int]] = []
        self.batch_sizes: list[int] = []

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        self.batch_sizes.append(len(obs))
        return np.zeros((len(obs), 1), np.float32)

    def reset(self, env_indices=None) -> None:
        self.resets.append(list(env_indices) if env_indices is not None else None)


def test_two_env_processes_fill_the_buffer_with_whole_contiguous_segments() -> None:
    replay = ReplayBuffer((4,), 1, capacity=200)
    collector = VectorRealCollector("InvertedPendulum-v5", 2, replay, seed=3)
    agent = CountingAgent()
    try:
        collector.collect(40, agent, random_actions=True)
        collector.collect(60, agent, random_actions=False)
    finally:
        collector.close()
    a = replay.arrays()
    assert len(replay) == 100 and set(agent.batch_sizes) == {2}
    # each segment's rows are contiguous and chained: next_obs of a row is the obs of the next row
    for seg in np.unique(a["episode"]):
        rows = np.flatnonzero(a["episode"] == seg)
        assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
        ends = a["terminated"][rows] | a["truncated"][rows]
        assert not ends[:-1].any()  # an episode end closes its segment
        assert np.allclose(a["next_obs"][rows[:-1]], a["obs"][rows[1:]])
    # InvertedPendulum falls within a few dozen steps under zero or random actions: episodes ended and were reset
    finished = collector.pop_returns()
    assert finished and all(r > 0 for r in finished) and collector.pop_returns() == []
    assert [i for r in agent.resets for i in r]  # the agent forgot exactly the envs that finished
    # a finished env's row holds its real last observation (same-step autoreset), not the next episode's reset
    last = np.flatnonzero(a["terminated"])
    assert len(last) and np.all(np.abs(a["next_obs"][last][:, 1]) > 0.2)  # the pole had fallen past 0.2 rad


def test_the_parallel_envs_must_share_the_steps_evenly() -> None:
    with pytest.raises(ConfigError, match="collect_envs must be >= 1 and a divisor"):
        OnlineConfig(real_steps=250, steps_per_iteration=125, collect_envs=2)
    replay = ReplayBuffer((3,), 1, capacity=10)
    collector = VectorRealCollector("Pendulum-v1", 2, replay, seed=0)
    try:
        with pytest.raises(ConfigError, match="cannot be shared by 2 envs"):
            collector.collect(3, CountingAgent(), random_actions=True)
    finally:
        collector.close()


def test_train_agent_with_two_collection_envs(tmp_path, capsys) -> None:
    """The whole loop with --collect-envs 2: the budget is met exactly and the agent is evaluated on the real env."""
    import json

    from worldrl.cli import main

    model_yaml = tmp_path / "tiny.yaml"
    model_yaml.write_text(
        "data: {window: 2}\nmodel: {family: ensemble, num_members: 2, num_elites: 1, hidden_dims: [16, 16]}\n"
        "trainer: {batch_size: 32, lr: 3.0e-3}\n"
    )
    out = tmp_path / "run"
    args = ["train-agent", "--agent", "mpc-cem", "--env", "Pendulum-v1", "--real-steps", "200"]
    args += ["--model-config", str(model_yaml), "--steps-per-iteration", "100", "--collect-envs", "2"]
    args += ["--initial-random-steps", "100", "--model-steps", "5", "--eval-episodes", "1", "--device", "cpu"]
    args += ["--agent-option", "num_samples=8", "--agent-option", "num_elites=2", "--agent-option", "horizon=2"]
    assert main([*args, "--out", str(out), "--no-video", "--no-dataset"]) == 0
    rows = [json.loads(line) for line in (out / "iterations.jsonl").read_text().splitlines()]
    assert [r["real_steps"] for r in rows] == [100, 200] and np.isfinite(rows[-1]["real_return"])
    assert main([*args, "--out", str(tmp_path / "bad"), "--real-steps", "201"]) == 2
    assert "collect_envs must be >= 1 and a divisor" in capsys.readouterr().err
