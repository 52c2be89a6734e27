"""Training windows (episode boundaries, padding, delta_timestamps), statistics and episode splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldrl.data import (
    LeRobotDatasetReader,
    LeRobotDatasetWriter,
    WindowDataset,
    aggregate_stats,
    compute_feature_stats,
    split_episodes,
    termination_key,
)

LENGTHS = (7, 12, 5)  # the lerobot fixture's episodes


@pytest.fixture
def reader(lerobot_fixture: Path) -> LeRobotDatasetReader:
    return LeRobotDatasetReader(lerobot_fixture)


def test_windows_never_cross_episodes(reader):
    ds = WindowDataset(reader, window=4)
    assert ds.keys["terminated"] is None and termination_key(reader) is None
    assert len(ds) == sum(LENGTHS)  # pad_end: one window per frame
    for i in range(len(ds)):
        item = ds[i]
        e = int(item["episode_index"])
        assert (item["obs"][:, 0] == e).all()  # state[0] is the episode index: every step in one episode
        frame = item["obs"][:, 1]
        valid = item["mask"]
        assert (frame[valid] == frame[0] + torch.arange(int(valid.sum()))).all()
        n_valid = min(4, LENGTHS[e] - int(frame[0]))
        assert valid.tolist() == [True] * n_valid + [False] * (4 - n_valid)
        assert (frame[~valid] == LENGTHS[e] - 1).all()  # padding repeats the last frame
        assert item["is_first"].tolist() == [int(frame[0]) == 0] + [False] * 3
        assert item["reward"].shape == (4,) and item["action"].shape == (4, 1) and item["terminated"].shape == (4,)
        assert not item["terminated"].any()
    unpadded = WindowDataset(reader, window=4, pad_end=False)
    assert len(unpadded) == sum(n - 3 for n in LENGTHS)
    assert all(unpadded[i]["mask"].all() for i in range(len(unpadded)))


def test_window_values_match_columns(reader):
    ds = WindowDataset(reader, window=3, episodes=[1], stride=2)
    assert len(ds) == 6  # frames 0, 2, ..., 10 of the 12-frame episode
    item = ds[1]  # anchored at frame 2 of episode 1 = global index 9
    np.testing.assert_array_equal(item["obs"].numpy(), reader.column("observation.state")[9:12])
    np.testing.assert_array_equal(item["action"].numpy(), reader.column("action")[9:12])
    assert int(item["episode_index"]) == 1
    with pytest.raises(IndexError):
        ds[6]


def test_images_in_windows(reader):
    ds = WindowDataset(reader, keys={"obs": "observation.images.cam", "action": "action"}, window=2)
    item = ds[7]  # episode 1, frames 0-1: fill 10 and 13
    assert item["obs"].shape == (2, 32, 32, 3) and item["obs"].dtype == torch.uint8
    assert item["obs"][:, 0, 0, 0].tolist() == [10, 13]
    as_float = WindowDataset(reader, keys={"obs": "observation.images.cam"}, window=2, image_format="float")[7]
    assert as_float["obs"].dtype == torch.float32 and float(as_float["obs"][1, 0, 0, 0]) == pytest.approx(13 / 255)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch["obs"].shape == (5, 2, 32, 32, 3) and batch["mask"].shape == (5, 2)


def test_delta_timestamps(reader):
    ds = WindowDataset(
        reader,
        keys={"obs": "observation.state", "action": "action"},
        window=2,
        delta_timestamps={"obs": [-0.2, -0.1, 0.0], "action": [0.0, 0.1, 0.2, 0.3]},
    )
    item = ds[8]  # episode 1, frame 1
    assert item["obs"][:, 1].tolist() == [0, 0, 1]  # frame -1 clamps to the episode's first frame
    assert item["obs_is_pad"].tolist() == [True, False, False]
    assert item["action_is_pad"].tolist() == [False] * 4
    assert item["action"][:, 0].tolist() == pytest.approx([0.1 * i - 1 for i in (1, 2, 3, 4)])
    last = ds[18]  # episode 1, frame 11 (its last)
    assert last["action_is_pad"].tolist() == [False, True, True, True]
    assert (last["obs"][:, 0] == 1).all()
    with pytest.raises(ValueError, match="multiples of 1/fps"):
        WindowDataset(reader, delta_timestamps={"obs": [0.05]})
    with pytest.raises(KeyError, match="nope"):
        WindowDataset(reader, keys={"obs": "nope"})


def test_termination_key_and_bool_windows(tmp_path: Path):
    feats = {
        "observation.state": {"dtype": "float32", "shape": [1]},
        "action": {"dtype": "float32", "shape": [1]},
        "next.reward": {"dtype": "float32", "shape": [1]},
        "next.done": {"dtype": "bool", "shape": [1]},
        "next.terminated": {"dtype": "bool", "shape": [1]},
    }
    with LeRobotDatasetWriter.create(tmp_path / "ds", fps=5, features=feats) as w:
        for i in range(3):
            w.add_frame(
                {
                    "observation.state": i,
                    "action": 0.0,
                    "next.reward": 1.0,
                    "next.done": i == 2,
                    "next.terminated": i == 2,
                },
                task="t",
            )
        w.save_episode()
    r = LeRobotDatasetReader(tmp_path / "ds")
    assert termination_key(r) == "next.terminated"
    item = WindowDataset(r, window=3)[0]
    assert item["terminated"].tolist() == [False, False, True] and item["obs"][:, 0].tolist() == [0, 1, 2]
    assert WindowDataset(r).stats("obs")["mean"] == pytest.approx(1.0)


def test_stats_from_file_or_computed(reader, lerobot_fixture: Path):
    ds = WindowDataset(reader, window=2)
    ref = json.loads((lerobot_fixture / "meta/stats.json").read_text())["observation.state"]
    np.testing.assert_allclose(ds.stats("obs")["mean"], ref["mean"], rtol=1e-6)
    (lerobot_fixture / "meta/stats.json").unlink()
    computed = WindowDataset(LeRobotDatasetReader(lerobot_fixture), window=2).stats("obs")
    np.testing.assert_allclose(computed["mean"], ref["mean"], rtol=1e-6)  # lerobot's mean and std are exact too
    np.testing.assert_allclose(computed["std"], ref["std"], rtol=1e-5)
    assert computed["count"].tolist() == [24]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_vector_stats_match_numpy(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    s = compute_feature_stats(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(s["mean"], x64.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s["std"], x64.std(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(s["min"], x.min(0))
    np.testing.assert_array_equal(s["max"], x.max(0))
    for name, q in (("q01", 0.01), ("q10", 0.1), ("q50", 0.5), ("q90", 0.9), ("q99", 0.99)):
        np.testing.assert_allclose(s[name], np.quantile(x64, q, axis=0), rtol=1e-9, atol=1e-12)
    assert s["count"] == [n]


def test_image_stats_match_numpy():
    imgs = np.random.default_rng(0).integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    s = compute_feature_stats(imgs, is_image=True)
    px = imgs.reshape(-1, 3).astype(np.float64) / 255.0
    assert np.asarray(s["mean"]).shape == (3, 1, 1) and s["count"] == [5]
    np.testing.assert_allclose(np.asarray(s["mean"]).ravel(), px.mean(0), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(s["std"]).ravel(), px.std(0), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(s["min"]).ravel(), px.min(0))
    np.testing.assert_allclose(np.asarray(s["q90"]).ravel(), np.quantile(px, 0.9, axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(s["q01"]).ravel(), np.quantile(px, 0.01, axis=0), rtol=1e-12)


def test_aggregate_stats_is_exact_for_moments():
    rng = np.random.default_rng(1)
    parts = [rng.normal(loc=i, size=(n, 2)) for i, n in enumerate((3, 10, 6))]
    agg = aggregate_stats([{"x": compute_feature_stats(p)} for p in parts])["x"]
    whole = np.concatenate(parts)
    np.testing.assert_allclose(agg["mean"], whole.mean(0), rtol=1e-12)
    np.testing.assert_allclose(agg["std"], whole.std(0), rtol=1e-12)
    np.testing.assert_allclose(agg["min"], whole.min(0))
    assert agg["count"] == [19]


def test_split_episodes():
    train, val = split_episodes(range(20), val_fraction=0.25, seed=3)
    assert len(val) == 5 and sorted(train + val) == list(range(20)) and not set(train) & set(val)
    assert split_episodes(range(20), 0.25, seed=3) == (train, val)
    assert split_episodes(range(20), 0.25, seed=4) != (train, val)
    assert split_episodes([4, 9], val_fraction=0.1) in (([4], [9]), ([9], [4]))  # at least one validation episode
    assert split_episodes([7], val_fraction=0.5) == ([7], [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_episodes(range(3), val_fraction=1.0)
