"""fps-aware temporal sampling: WindowDataset(frame_step=k) and frame_step_for(fps, target_fps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldrl.data import LeRobotDatasetReader, WindowDataset
from worldrl.data.sequences import frame_step_for
from worldrl.errors import ConfigError

LENGTHS = (7, 12, 5)  # the lerobot fixture's episodes; observation.state[1] is the frame index in its episode


def test_frame_step_samples_every_kth_frame_inside_one_episode(lerobot_fixture: Path) -> None:
    reader = LeRobotDatasetReader(lerobot_fixture)
    ds = WindowDataset(reader, window=3, frame_step=2)
    assert len(ds) == sum(LENGTHS)
    for i in range(len(ds)):
        item = ds[i]
        e, frame = int(item["episode_index"]), item["obs"][:, 1]
        assert (item["obs"][:, 0] == e).all()
        valid = item["mask"]
        first = int(frame[0])
        expected_valid = [first + 2 * k < LENGTHS[e] for k in range(3)]
        assert valid.tolist() == expected_valid
        assert [int(f) for f in frame[valid]] == [first + 2 * k for k in range(int(valid.sum()))]
        assert item["is_first"].tolist() == [first == 0, False, False]
    unpadded = WindowDataset(reader, window=3, frame_step=2, pad_end=False)
    assert len(unpadded) == sum(n - 4 for n in LENGTHS)  # a window spans 5 recorded frames
    assert all(unpadded[i]["mask"].all() for i in range(len(unpadded)))


def test_frame_step_for_divides_the_recording_fps() -> None:
    assert frame_step_for(30, None) == 1 and frame_step_for(30, 30) == 1
    assert frame_step_for(15, 5) == 3 and frame_step_for(50, 12.5) == 4
    with pytest.raises(ConfigError, match="not the dataset's 30 fps divided by a whole number"):
        frame_step_for(30, 4)
    with pytest.raises(ConfigError, match="target fps must be in"):
        frame_step_for(10, 20)
    with pytest.raises(ConfigError, match="frame_step must be >= 1"):
        WindowDataset.__new__(WindowDataset).__init__(None, frame_step=0)


def test_train_with_target_fps_steps_the_model_at_that_rate(lerobot_fixture: Path, tmp_path: Path, capsys) -> None:
    import yaml

    from worldrl.cli import main as worldrl_main
    from worldrl.models import load_pretrained

    config = {
        "output_dir": str(tmp_path / "run"),
        "data": {"root": str(lerobot_fixture), "window": 2, "target_fps": 5, "val_fraction": 0.34},
        "model": {"family": "ensemble", "num_members": 2, "hidden_dims": [8], "num_elites": 1},
        "trainer": {"max_steps": 2, "batch_size": 4, "eval_every": 2, "progress": False},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert worldrl_main(["train", "--config", str(path)]) == 0
    assert load_pretrained(tmp_path / "run" / "model").task.fps == 5.0  # the fixture is recorded at 10 fps
    assert worldrl_main(["train", "--config", str(path), "data.target_fps=3", f"output_dir={tmp_path / 'r2'}"]) == 2
    assert "target fps 3 is not the dataset's 10 fps divided by a whole number" in capsys.readouterr().err
