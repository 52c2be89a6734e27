"""``worldrl collect --num-envs N``: N real envs in worker processes write the dataset one env would.

Episodes of InvertedPendulum under a random policy end at different steps, so with several envs they finish
out of order; the dataset must still hold episodes 0..E-1 in order, each whole, with the same rows and frames
as a one-env run of the same seed (frames: to within MuJoCo's rendering history, see the pixel test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldrl.cli import main as worldrl_main
from worldrl.data import LeRobotDatasetReader
from worldrl.data.collect import CollectConfig, _EpisodeSlots, collect

COLUMNS = ("observation.state", "action", "next.reward", "next.terminated", "next.truncated", "episode_index")


def dataset(root: Path) -> dict[str, np.ndarray]:
    reader = LeRobotDatasetReader(root)
    data = {key: reader.column(key) for key in COLUMNS}
    for key, feature in reader.features.items():
        if feature["dtype"] in ("image", "video"):
            data[key] = reader.frames(key, np.arange(reader.num_frames))
    return data


def assert_whole_episodes_in_order(data: dict[str, np.ndarray], episodes: int) -> None:
    index = data["episode_index"].reshape(-1)
    assert np.array_equal(np.unique(index), np.arange(episodes)) and np.all(np.diff(index) >= 0)
    done = data["next.terminated"][:, 0] | data["next.truncated"][:, 0]
    last_rows = np.flatnonzero(np.diff(np.append(index, episodes)))
    assert np.array_equal(np.flatnonzero(done), last_rows)  # each episode ends exactly at its last row


def test_num_envs_does_not_change_the_dataset(tmp_path: Path) -> None:
    runs = {}
    for n in (1, 3):
        out = tmp_path / f"n{n}"
        args = ["collect", "--env", "InvertedPendulum-v5", "--episodes", "6", "--out", str(out)]
        assert worldrl_main([*args, "--num-envs", str(n), "--max-episode-steps", "25", "--seed", "4", "--quiet"]) == 0
        runs[n] = dataset(out)
    assert_whole_episodes_in_order(runs[3], 6)
    lengths = np.bincount(runs[3]["episode_index"].reshape(-1))
    assert len(set(lengths.tolist())) > 1  # episodes of different lengths: envs finished out of order
    for key in COLUMNS:
        np.testing.assert_array_equal(runs[3][key], runs[1][key], err_msg=key)


def test_pixels_with_two_worker_processes_equal_one_env(tmp_path: Path) -> None:
    runs = {}
    for n in (1, 2):
        config = CollectConfig(
            "InvertedPendulum-v5",
            tmp_path / f"n{n}",
            episodes=3,
            num_envs=n,
            pixels=True,
            image_size=16,
            fast_render=True,
            max_episode_steps=12,
            seed=1,
        )
        assert config.vector_mode == ("async" if n > 1 else "sync")
        collect(config, progress=False)
        runs[n] = dataset(tmp_path / f"n{n}")
    assert_whole_episodes_in_order(runs[2], 3)
    for key in COLUMNS:
        np.testing.assert_array_equal(runs[2][key], runs[1][key], err_msg=key)
    # Frames: MuJoCo's render of a state depends a little on what the env rendered before (a fresh env and one
    # that recorded an episode differ by ~0.01-0.06 gray levels on average), and with 2 envs episode 1 is a fresh
    # env's first. Episode 0 is every run's first: identical; the rest agree to far below one gray level.
    key = "observation.images.front"
    first = runs[1]["episode_index"].reshape(-1) == 0
    np.testing.assert_array_equal(runs[2][key][first], runs[1][key][first])
    assert np.abs(runs[2][key].astype(int) - runs[1][key].astype(int)).mean() < 0.25


def test_finished_episodes_are_released_in_index_order() -> None:
    slots = _EpisodeSlots(target=4, episode=np.full(2, -1))
    slots.assign(np.arange(2))
    assert slots.episode.tolist() == [0, 1]
    assert slots.finished(1, ["one"]) == []  # held until episode 0 is written
    slots.assign(np.array([1]))
    assert slots.episode.tolist() == [0, 2]
    assert slots.finished(0, ["zero"]) == [["zero"], ["one"]]
    slots.assign(np.array([0]))
    slots.assign(np.array([1]))
    assert slots.episode.tolist() == [3, -1]  # no fifth episode is started


def test_num_envs_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="num_envs must be >= 1"):
        CollectConfig("Pendulum-v1", tmp_path / "x", episodes=1, num_envs=0)
