"""The reader: the dataset lerobot 0.4.4 wrote, a hand-built multi-episode-per-file video dataset, v2.1, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worldrl.data import DatasetFormatError, LeRobotDatasetReader, resolve_dataset_root
from worldrl.data.video import encode_video

FIXTURE_LENGTHS = (7, 12, 5)


def test_reads_lerobot_fixture_exactly(lerobot_fixture: Path):
    r = LeRobotDatasetReader(lerobot_fixture)
    assert (r.fps, r.num_episodes, r.num_frames) == (10, 3, 24)
    assert r.tasks == ["balance the pole", "swing up"]
    assert [e["tasks"] for e in r.episodes] == [["balance the pole"], ["swing up"], ["balance the pole"]]
    assert r.image_keys == ["observation.images.cam"] and r.video_keys == [] and r.camera_keys == r.image_keys
    state, action, reward = r.column("observation.state"), r.column("action"), r.column("next.reward")
    task_index = r.column("task_index")[:, 0]
    start = 0
    for e, n in enumerate(FIXTURE_LENGTHS):
        assert r.episode_range(e) == (start, start + n)
        i = np.arange(n)
        sl = slice(start, start + n)
        expected = np.stack([np.full(n, e), i, np.sin(i), np.cos(i)], 1).astype(np.float32)
        np.testing.assert_array_equal(state[sl], expected)
        np.testing.assert_array_equal(action[sl, 0], (0.1 * i - e).astype(np.float32))
        np.testing.assert_array_equal(reward[sl, 0], (i / 10).astype(np.float32))
        frames = r.frames("observation.images.cam", np.arange(start, start + n))
        assert frames.shape == (n, 32, 32, 3) and frames.dtype == np.uint8
        np.testing.assert_array_equal(
            frames, np.broadcast_to(((10 * e + 3 * i) % 256)[:, None, None, None], frames.shape)
        )
        assert set(task_index[sl]) == {1 if e == 1 else 0}
        start += n
    assert np.asarray(r.stats["observation.images.cam"]["mean"]).shape == (3, 1, 1)


def test_item_is_lerobot_like(lerobot_fixture: Path):
    r = LeRobotDatasetReader(lerobot_fixture)
    item = r[8]  # episode 1, frame 1
    assert item["observation.images.cam"].shape == (3, 32, 32)
    assert float(item["observation.images.cam"][0, 0, 0]) == pytest.approx(13 / 255)
    assert item["observation.state"].tolist() == pytest.approx([1, 1, np.sin(1), np.cos(1)])
    assert item["action"].shape == () and int(item["episode_index"]) == 1 and int(item["frame_index"]) == 1
    assert len(r) == 24
    with pytest.raises(IndexError):
        r.frames("observation.images.cam", [24])


def test_reads_through_an_object_with_root(lerobot_fixture: Path):
    """The optional lerobot adapter: anything with ``.root`` (a LeRobotDataset) is read from its root."""
    r = LeRobotDatasetReader(SimpleNamespace(root=lerobot_fixture, repo_id="local/fixture"))
    assert r.num_frames == 24


# --------------------------------------------------------------------------- hand-built lerobot v3.0 layout with video

LENGTHS = (4, 6, 3)
FPS = 10


def frame(e: int, i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    base = 30 + 22 * i + 50 * e
    return np.stack([base + xx, base + yy, np.full_like(xx, 220 - 20 * i)], -1).clip(0, 255).astype(np.uint8)


def _data_table(episodes: list[int], start_index: int) -> pa.Table:
    rows = [(e, i) for e in episodes for i in range(LENGTHS[e])]
    n = len(rows)
    state = np.array([[e, i] for e, i in rows], np.float32)
    return pa.table(
        {
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 2),
            "action": pa.array([0.5 * i for _, i in rows], pa.float32()),
            "timestamp": pa.array([i / FPS for _, i in rows], pa.float32()),
            "frame_index": pa.array([i for _, i in rows], pa.int64()),
            "episode_index": pa.array([e for e, _ in rows], pa.int64()),
            "index": pa.array(range(start_index, start_index + n), pa.int64()),
            "task_index": pa.array([e % 2 for e, _ in rows], pa.int64()),
        }
    )


def build_lerobot_video_dataset(root: Path) -> None:
    """lerobot's v3.0 layout by hand: data file 0 = ep 0, data file 1 = eps 1-2; mp4 0 = eps 0-1, mp4 1 = ep 2."""
    key = "observation.images.top"
    (root / "meta").mkdir(parents=True)
    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": None},
        "action": {"dtype": "float32", "shape": [1], "names": None},
        key: {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"]},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        **{
            k: {"dtype": "int64", "shape": [1], "names": None}
            for k in ("frame_index", "episode_index", "index", "task_index")
        },
    }
    info = {
        "codebase_version": "v3.0",
        "robot_type": None,
        "total_episodes": 3,
        "total_frames": sum(LENGTHS),
        "total_tasks": 2,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": FPS,
        "splits": {"train": "0:3"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features,
    }
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(_data_table([0], 0), root / "data/chunk-000/file-000.parquet")
    pq.write_table(_data_table([1, 2], LENGTHS[0]), root / "data/chunk-000/file-001.parquet")
    vdir = root / "videos" / key / "chunk-000"
    vdir.mkdir(parents=True)
    encode_video(np.stack([frame(e, i) for e in (0, 1) for i in range(LENGTHS[e])]), vdir / "file-000.mp4", FPS)
    encode_video(np.stack([frame(2, i) for i in range(LENGTHS[2])]), vdir / "file-001.mp4", FPS)
    bounds = np.cumsum((0,) + LENGTHS)
    episodes = {
        "episode_index": [0, 1, 2],
        "tasks": [["push"], ["pull"], ["push"]],
        "length": list(LENGTHS),
        "data/chunk_index": [0, 0, 0],
        "data/file_index": [0, 1, 1],
        "dataset_from_index": bounds[:-1].tolist(),
        "dataset_to_index": bounds[1:].tolist(),
        f"videos/{key}/chunk_index": [0, 0, 0],
        f"videos/{key}/file_index": [0, 0, 1],
        f"videos/{key}/from_timestamp": [0.0, 0.4, 0.0],
        f"videos/{key}/to_timestamp": [0.4, 1.0, 0.3],
        "meta/episodes/chunk_index": [0, 0, 0],
        "meta/episodes/file_index": [0, 0, 0],
    }
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pydict(episodes), root / "meta/episodes/chunk-000/file-000.parquet")
    pd.DataFrame({"task_index": [0, 1]}, index=pd.Index(["push", "pull"], name="task")).to_parquet(
        root / "meta/tasks.parquet"
    )


def test_reads_multi_episode_video_files(tmp_path: Path):
    build_lerobot_video_dataset(tmp_path / "ds")
    r = LeRobotDatasetReader(tmp_path / "ds")
    assert r.tasks == ["push", "pull"] and r.stats == {}
    truth = [(e, i) for e in range(3) for i in range(LENGTHS[e])]
    np.testing.assert_array_equal(r.column("observation.state"), np.array(truth, np.float32))
    frames = r.frames("observation.images.top", np.arange(len(truth))[::-1]).astype(float)[::-1]  # any order
    expected = np.stack([frame(e, i) for e, i in truth]).astype(float)
    assert np.abs(frames - expected).mean(axis=(1, 2, 3)).max() < 8
    dist = np.abs(frames[:, None] - expected[None]).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(dist.argmin(axis=1), np.arange(len(truth)))  # each frame found at its own time
    assert r.episode_range(2) == (10, 13)


def test_video_table_disagreeing_with_the_file_is_an_error(tmp_path: Path):
    root = tmp_path / "ds"
    build_lerobot_video_dataset(root)
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(path)
    col = "videos/observation.images.top/from_timestamp"
    t = t.set_column(t.column_names.index(col), col, pa.array([0.0, 5.0, 0.0]))
    pq.write_table(t, path)
    with pytest.raises(DatasetFormatError, match="file-000.mp4"):
        LeRobotDatasetReader(root).frames("observation.images.top", [5])


# --------------------------------------------------------------------------- v2.1


def test_reads_v21_layout(tmp_path: Path):
    root = tmp_path / "v21"
    (root / "meta").mkdir(parents=True)
    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": None},
        "cam": {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channel"]},
        **{
            k: {"dtype": "int64", "shape": [1], "names": None}
            for k in ("frame_index", "episode_index", "index", "task_index")
        },
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    }
    info = {
        "codebase_version": "v2.1",
        "fps": FPS,
        "chunks_size": 1000,
        "features": features,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    }
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/episodes.jsonl").write_text(
        "\n".join(json.dumps({"episode_index": e, "tasks": ["push"], "length": LENGTHS[e]}) for e in range(2))
    )
    (root / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "push"}))
    stats = {"observation.state": {"min": [0, 0], "max": [1, 5], "mean": [0.5, 2], "std": [0.5, 1], "count": [5]}}
    (root / "meta/episodes_stats.jsonl").write_text(
        "\n".join(json.dumps({"episode_index": e, "stats": stats}) for e in range(2))
    )
    (root / "data/chunk-000").mkdir(parents=True)
    (root / "videos/chunk-000/cam").mkdir(parents=True)
    start = 0
    for e in range(2):
        pq.write_table(_data_table([e], start).drop(["action"]), root / f"data/chunk-000/episode_{e:06d}.parquet")
        encode_video(
            np.stack([frame(e, i) for i in range(LENGTHS[e])]), root / f"videos/chunk-000/cam/episode_{e:06d}.mp4", FPS
        )
        start += LENGTHS[e]
    r = LeRobotDatasetReader(root)
    assert (r.num_episodes, r.num_frames, r.tasks) == (2, 10, ["push"])
    assert r.column("observation.state")[:, 1].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    got = r.frames("cam", [4, 9]).astype(float)
    assert np.abs(got - np.stack([frame(1, 0), frame(1, 5)])).mean() < 8
    assert r.stats["observation.state"]["count"] == [10]


# --------------------------------------------------------------------------- bad input


def test_missing_and_corrupted_info(tmp_path: Path, lerobot_fixture: Path):
    with pytest.raises(DatasetFormatError, match="info.json is missing"):
        LeRobotDatasetReader(tmp_path)
    (lerobot_fixture / "meta/info.json").write_text('{"codebase_version": "v3.0", "fps": ')
    with pytest.raises(DatasetFormatError, match=r"info\.json is corrupted"):
        LeRobotDatasetReader(lerobot_fixture)


def test_unsupported_version(lerobot_fixture: Path):
    info = json.loads((lerobot_fixture / "meta/info.json").read_text())
    (lerobot_fixture / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(DatasetFormatError, match=r"'v1\.6' is not supported.*convert"):
        LeRobotDatasetReader(lerobot_fixture)


def test_corrupted_and_missing_parquet(lerobot_fixture: Path):
    data = lerobot_fixture / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[:200])  # torn file
    r = LeRobotDatasetReader(lerobot_fixture)  # metadata is fine; the data file fails when read
    with pytest.raises(DatasetFormatError, match=r"file-000\.parquet is corrupted"):
        r.column("observation.state")
    data.unlink()
    with pytest.raises(DatasetFormatError, match=r"file-000\.parquet is missing"):
        LeRobotDatasetReader(lerobot_fixture).column("action")
    episodes = lerobot_fixture / "meta/episodes/chunk-000/file-000.parquet"
    episodes.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetFormatError, match=r"episodes/chunk-000/file-000\.parquet is corrupted"):
        LeRobotDatasetReader(lerobot_fixture)


def test_unknown_feature_key(lerobot_fixture: Path):
    r = LeRobotDatasetReader(lerobot_fixture)
    with pytest.raises(KeyError, match="observation.velocity"):
        r.column("observation.velocity")
    with pytest.raises(DatasetFormatError, match="frames"):
        r.column("observation.images.cam")


def test_resolve_dataset_root(tmp_path: Path, lerobot_fixture: Path, monkeypatch):
    assert resolve_dataset_root(lerobot_fixture) == lerobot_fixture
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_dataset_root(tmp_path / "nowhere")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(DatasetFormatError, match=r"`hf download someone/missing-dataset --repo-type dataset"):
        resolve_dataset_root("someone/missing-dataset")
    shutil.copytree(lerobot_fixture, tmp_path / "lerobot_home/someone/cached")  # lerobot's own local cache
    assert LeRobotDatasetReader("someone/cached").num_frames == 24


def test_info_command_prints_summary(lerobot_fixture: Path, capsys):
    import argparse

    from worldrl.cli import SUBCOMMANDS, info

    assert SUBCOMMANDS["info"][0] == "worldrl.cli.info"
    parser = argparse.ArgumentParser()
    info.add_arguments(parser)
    assert info.run(parser.parse_args([str(lerobot_fixture)])) == 0
    out = capsys.readouterr().out
    for text in ("fps", "10", "episodes", "24", "observation.state", "float32", "swing up", "5 / 8.0 / 12", "0.9167"):
        assert text in out, text
    from worldrl.cli import main

    assert main(["info", str(lerobot_fixture / "nope")]) == 2  # bad input: exit 2, one line on stderr
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("worldrl info: error:") and "does not exist" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_reader_pickles_for_dataloader_workers(lerobot_fixture):
    """DataLoader workers started with "spawn" pickle the dataset; the reader's frame cache must survive it."""
    import pickle

    reader = LeRobotDatasetReader(lerobot_fixture)
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(
        clone.frames("observation.images.cam", np.array([3])), reader.frames("observation.images.cam", np.array([3]))
    )
