"""The LeRobot v3.0 writer: round trips, lerobot's file layout, bad frames, existing roots, interruptions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worldrl.data import DatasetExistsError, DatasetFormatError, LeRobotDatasetReader, LeRobotDatasetWriter

H = W = 64
LENGTHS = (5, 7, 4)


def features(image_dtype: str = "video") -> dict:
    return {
        "observation.state": {"dtype": "float32", "shape": [3], "names": ["e", "i", "x"]},
        "observation.images.front": {
            "dtype": image_dtype,
            "shape": [H, W, 3],
            "names": ["height", "width", "channels"],
        },
        "action": {"dtype": "float32", "shape": [2], "names": None},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
    }


def smooth_frame(e: int, i: int) -> np.ndarray:
    """A smooth gradient whose brightness encodes (episode, frame): codecs keep it well, frames stay distinct."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    base = 40 + 25 * i + 60 * e
    return np.stack([base + xx, base + yy, np.full_like(xx, 200 - 20 * i)], -1).clip(0, 255).astype(np.uint8)


def frame_dict(e: int, i: int, n: int) -> dict:
    return {
        "observation.state": np.array([e, i, np.sin(i)], np.float32),
        "observation.images.front": smooth_frame(e, i),
        "action": np.array([0.1 * i, -e], np.float32),
        "next.reward": float(i) / 10,
        "next.terminated": i == n - 1,
    }


def record(root: Path, lengths=LENGTHS, image_dtype="video", first_episode=0, **kw) -> LeRobotDatasetWriter:
    with LeRobotDatasetWriter.create(root, fps=10, features=features(image_dtype), **kw) as w:
        for e, n in enumerate(lengths, start=first_episode):
            for i in range(n):
                w.add_frame(frame_dict(e, i, n), task=f"task {e % 2}")
            assert w.save_episode() == e
    return w


@pytest.fixture(scope="module")
def video_ds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("video") / "ds"
    record(root)
    return root


def test_video_round_trip(video_ds: Path):
    r = LeRobotDatasetReader(video_ds)
    assert (r.num_episodes, r.num_frames, r.fps) == (3, sum(LENGTHS), 10)
    state = r.column("observation.state")
    g = 0
    for e, n in enumerate(LENGTHS):
        assert r.episode_range(e) == (g, g + n)
        for i in range(n):
            np.testing.assert_array_equal(state[g + i], np.array([e, i, np.sin(i)], np.float32))  # exact
            assert r.column("next.terminated")[g + i, 0] == (i == n - 1)
        g += n
    frames = r.frames("observation.images.front", np.arange(r.num_frames)).astype(np.float64)
    truth = np.stack([smooth_frame(e, i) for e, n in enumerate(LENGTHS) for i in range(n)]).astype(np.float64)
    # AV1 at crf 30 is lossy: on a smooth 64x64 gradient the mean absolute error stays well under 8 levels,
    # while neighbouring frames differ by >= 20 levels, so each decoded frame is also closest to its own truth.
    mae = np.abs(frames - truth).mean(axis=(1, 2, 3))
    assert mae.max() < 8, mae
    dist = np.abs(frames[:, None] - truth[None]).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(dist.argmin(axis=1), np.arange(len(truth)))
    assert r.tasks == ["task 0", "task 1"]
    assert [e["tasks"] for e in r.episodes] == [["task 0"], ["task 1"], ["task 0"]]


def test_video_layout_matches_lerobot(video_ds: Path, lerobot_fixture: Path):
    info = json.loads((video_ds / "meta/info.json").read_text())
    ref = json.loads((lerobot_fixture / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    for k in ("chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path"):
        assert info[k] == ref[k]
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 16, 2)
    assert info["splits"] == {"train": "0:3"}
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "av1"
    assert info["features"]["observation.images.front"]["info"]["video.pix_fmt"] == "yuv420p"
    assert list(info["features"])[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    # All episodes share one mp4 and one data parquet.
    assert [p.name for p in (video_ds / "videos/observation.images.front").rglob("*.mp4")] == ["file-000.mp4"]
    assert [p.name for p in (video_ds / "data").rglob("*.parquet")] == ["file-000.parquet"]
    ep = pq.read_table(video_ds / "meta/episodes/chunk-000/file-000.parquet")
    ref_ep = pq.read_table(lerobot_fixture / "meta/episodes/chunk-000/file-000.parquet")
    ours = [c for c in ep.column_names if "images.front" not in c and "next." not in c]
    theirs = [c for c in ref_ep.column_names if "images.cam" not in c and "next." not in c]
    assert ours == theirs  # same columns in the same order (apart from the per-feature stats of other keys)
    assert (
        ep.schema.field("stats/observation.state/mean").type == ref_ep.schema.field("stats/observation.state/mean").type
    )
    video_cols = [c for c in ep.column_names if c.startswith("videos/")]
    assert video_cols == [
        f"videos/observation.images.front/{s}" for s in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
    ]
    rows = ep.to_pylist()
    assert [r["videos/observation.images.front/from_timestamp"] for r in rows] == pytest.approx([0.0, 0.5, 1.2])
    assert [r["videos/observation.images.front/to_timestamp"] for r in rows] == pytest.approx([0.5, 1.2, 1.6])
    assert (
        pq.read_schema(video_ds / "meta/tasks.parquet").names
        == pq.read_schema(lerobot_fixture / "meta/tasks.parquet").names
    )
    stats = json.loads((video_ds / "meta/stats.json").read_text())
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert set(stats["observation.state"]) == set(
        json.loads((lerobot_fixture / "meta/stats.json").read_text())["action"]
    )
    data_schema = pq.read_schema(video_ds / "data/chunk-000/file-000.parquet")
    assert "observation.images.front" not in data_schema.names  # videos live in mp4 files
    assert str(data_schema.field("next.reward").type) == "float"  # shape (1,) is a scalar, as lerobot writes it


def test_image_mode_round_trip_exact(tmp_path: Path, lerobot_fixture: Path):
    record(tmp_path / "img", image_dtype="image")
    r = LeRobotDatasetReader(tmp_path / "img")
    truth = np.stack([smooth_frame(e, i) for e, n in enumerate(LENGTHS) for i in range(n)])
    np.testing.assert_array_equal(r.frames("observation.images.front", np.arange(r.num_frames)), truth)
    schema = pq.read_schema(tmp_path / "img/data/chunk-000/file-000.parquet")
    ref = pq.read_schema(lerobot_fixture / "data/chunk-000/file-000.parquet")
    assert schema.field("observation.images.front").type == ref.field("observation.images.cam").type
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.front"] == {"_type": "Image"}
    assert hf["observation.state"] == {"feature": {"dtype": "float32", "_type": "Value"}, "length": 3, "_type": "List"}
    item = r[0]
    assert item["observation.images.front"].shape == (3, H, W) and float(item["observation.images.front"].max()) <= 1.0


def test_files_roll_past_size_limits(tmp_path: Path):
    tiny = 1e-6  # megabytes: every episode starts new data, video and episodes files
    record(tmp_path / "roll", data_files_size_in_mb=tiny, video_files_size_in_mb=tiny, chunks_size=2)
    root = tmp_path / "roll"
    assert sorted(str(p.relative_to(root)) for p in (root / "data").rglob("*.parquet")) == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "data/chunk-001/file-000.parquet",
    ]
    assert len(list((root / "videos").rglob("*.mp4"))) == 3
    r = LeRobotDatasetReader(root)
    assert r.column("observation.state")[:, 1].tolist() == [i for n in LENGTHS for i in range(n)]
    assert r.frames("observation.images.front", [r.num_frames - 1]).shape == (1, H, W, 3)


def test_h264_option(tmp_path: Path):
    record(tmp_path / "h264", lengths=(3, 4), vcodec="libx264")
    r = LeRobotDatasetReader(tmp_path / "h264")
    assert r.features["observation.images.front"]["info"]["video.codec"] == "h264"
    truth = np.stack([smooth_frame(e, i) for e, n in enumerate((3, 4)) for i in range(n)]).astype(float)
    frames = r.frames("observation.images.front", np.arange(7)).astype(float)
    assert np.abs(frames - truth).mean(axis=(1, 2, 3)).max() < 8


def test_existing_root_needs_overwrite_or_resume(tmp_path: Path):
    root = tmp_path / "ds"
    record(root, lengths=(3,), image_dtype="image")
    with pytest.raises(DatasetExistsError, match="already holds a dataset"):
        LeRobotDatasetWriter.create(root, fps=10, features=features("image"))
    record(root, lengths=(4, 2), image_dtype="image", overwrite=True)
    assert [e["length"] for e in LeRobotDatasetReader(root).episodes] == [4, 2]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a dataset")
    with pytest.raises(DatasetExistsError, match="not empty"):
        LeRobotDatasetWriter.create(tmp_path / "other", fps=10, features=features("image"), overwrite=True)


def test_resume_appends(tmp_path: Path):
    root = tmp_path / "ds"
    record(root, lengths=(3, 2))
    w = record(root, lengths=(4,), first_episode=2, resume=True)
    assert (w.num_episodes, w.num_frames) == (3, 9)
    r = LeRobotDatasetReader(root)
    assert [e["length"] for e in r.episodes] == [3, 2, 4]
    assert r.episode_range(2) == (5, 9)
    assert r.column("index")[:, 0].tolist() == list(range(9))
    assert r.column("episode_index")[:, 0].tolist() == [0] * 3 + [1] * 2 + [2] * 4
    assert r.tasks == ["task 0", "task 1"]
    frames = r.frames("observation.images.front", [0, 5, 8]).astype(float)
    truth = np.stack([smooth_frame(0, 0), smooth_frame(2, 0), smooth_frame(2, 3)]).astype(float)
    assert np.abs(frames - truth).mean() < 8
    assert r.stats["observation.state"]["count"] == [9]
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["splits"]) == (3, 9, {"train": "0:3"})


def test_resume_rejects_different_features_or_fps(tmp_path: Path):
    root = tmp_path / "ds"
    record(root, lengths=(2,), image_dtype="image")
    other = features("image")
    other["action"]["shape"] = [3]
    with pytest.raises(DatasetFormatError, match="'action'"):
        LeRobotDatasetWriter.create(root, fps=10, features=other, resume=True)
    with pytest.raises(DatasetFormatError, match="fps"):
        LeRobotDatasetWriter.create(root, fps=30, features=features("image"), resume=True)


def test_bad_frames_name_the_key(tmp_path: Path):
    w = LeRobotDatasetWriter.create(tmp_path / "ds", fps=10, features=features("image"))
    good = frame_dict(0, 0, 3)
    cases = {
        "unknown": ({**good, "observation.velocity": np.zeros(3)}, "observation.velocity"),
        "missing": ({k: v for k, v in good.items() if k != "action"}, "action"),
        "shape": ({**good, "observation.state": np.zeros(4, np.float32)}, "observation.state"),
        "dtype": ({**good, "action": np.array(["a", "b"])}, "action"),
        "image": ({**good, "observation.images.front": np.zeros((H, W, 3), np.int32)}, "observation.images.front"),
        "default key": ({**good, "timestamp": 0.0}, "timestamp"),
    }
    for frame, key in cases.values():
        with pytest.raises(DatasetFormatError, match=key.replace(".", r"\.")):
            w.add_frame(frame, task="t")
    assert w.episode_size == 0  # rejected frames leave no trace
    w.add_frame(good, task="t")
    w.add_frame({**good, "observation.images.front": smooth_frame(0, 1).transpose(2, 0, 1)}, task="t")  # CHW accepted
    assert w.save_episode() == 0
    w.finalize()


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=0, max_size=3).filter(lambda s: tuple(s) not in ((3,),)))
def test_any_wrong_state_shape_is_rejected(tmp_path_factory, shape):
    w = LeRobotDatasetWriter.create(tmp_path_factory.mktemp("h") / "ds", fps=10, features=features("image"))
    with pytest.raises(DatasetFormatError, match=r"observation\.state"):
        w.add_frame({**frame_dict(0, 0, 1), "observation.state": np.zeros(shape, np.float32)}, task="t")


def test_exception_mid_episode_keeps_finished_episodes(tmp_path: Path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="env crashed"):
        with LeRobotDatasetWriter.create(root, fps=10, features=features()) as w:
            for e, n in enumerate((3, 4)):
                for i in range(n):
                    w.add_frame(frame_dict(e, i, n), task="t")
                w.save_episode()
            w.add_frame(frame_dict(2, 0, 5), task="t")
            raise RuntimeError("env crashed")
    r = LeRobotDatasetReader(root)
    assert [e["length"] for e in r.episodes] == [3, 4]
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == 7
    assert r.frames("observation.images.front", [6]).shape == (1, H, W, 3)
    assert not (root / ".worldrl-staging").exists()
    assert not [p for p in root.rglob(".*tmp*")]  # no temp files left behind


def test_keyboard_interrupt_keeps_finished_episodes(tmp_path: Path):
    root = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        with LeRobotDatasetWriter.create(root, fps=10, features=features("image")) as w:
            w.add_frame(frame_dict(0, 0, 2), task="t")
            w.add_frame(frame_dict(0, 1, 2), task="t")
            w.save_episode()
            w.add_frame(frame_dict(1, 0, 2), task="t")
            raise KeyboardInterrupt
    assert LeRobotDatasetReader(root).num_frames == 2


def test_failure_while_saving_rolls_back_to_finished_episodes(tmp_path: Path, monkeypatch):
    import worldrl.data.writer as writer_mod

    root = tmp_path / "ds"
    with pytest.raises(OSError, match="disk full"):
        with LeRobotDatasetWriter.create(root, fps=10, features=features()) as w:
            for i in range(3):
                w.add_frame(frame_dict(0, i, 3), task="t")
            w.save_episode()

            def disk_full(*args, **kwargs):
                raise OSError("disk full")

            monkeypatch.setattr(writer_mod, "concatenate_videos", disk_full)  # fails after the data file was written
            for i in range(2):
                w.add_frame(frame_dict(1, i, 2), task="t")
            w.save_episode()
    assert (
        pq.read_metadata(root / "data/chunk-000/file-000.parquet").num_rows == 3
    )  # the failed episode's rows are gone
    r = LeRobotDatasetReader(root)
    assert (r.num_episodes, r.num_frames) == (1, 3)


def test_finalize_is_idempotent_and_closes(tmp_path: Path):
    w = LeRobotDatasetWriter.create(tmp_path / "ds", fps=10, features=features("image"))
    w.add_frame(frame_dict(0, 0, 1), task="t")
    w.save_episode()
    s1, s2 = w.finalize(), w.finalize()
    assert s1 is s2 and (s1.num_episodes, s1.num_frames, s1.episodes_added) == (1, 1, 1) and s1.bytes_written > 0
    with pytest.raises(DatasetFormatError, match="finalized"):
        w.add_frame(frame_dict(0, 0, 1), task="t")
    with pytest.raises(DatasetFormatError, match="no frames"):
        LeRobotDatasetWriter.create(tmp_path / "ds2", fps=10, features=features("image")).save_episode()


def test_invalid_features_are_rejected(tmp_path: Path):
    with pytest.raises(DatasetFormatError, match="'bad'"):
        LeRobotDatasetWriter.create(tmp_path / "a", fps=10, features={"bad": {"dtype": "complex64", "shape": [1]}})
    with pytest.raises(DatasetFormatError, match="cam"):
        LeRobotDatasetWriter.create(tmp_path / "b", fps=10, features={"cam": {"dtype": "video", "shape": [3, 64, 64]}})
