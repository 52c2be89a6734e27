"""``create_dataloaders`` (issue 15): episode-split video + audio + state windows from LeRobot recordings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worldrl.data.collect import CollectConfig, collect
from worldrl.data.multimodal_loaders import create_dataloaders, split_episodes_three
from worldrl.errors import DataLoadingError


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """Six short Playground "collide" episodes at 32x32 with their synthetic audio."""
    root = tmp_path_factory.mktemp("mm_data") / "collide"
    collect(
        CollectConfig(
            env_id="worldrl/Playground-v0",
            out=root,
            episodes=6,
            pixels=True,
            audio=True,
            scene="collide",
            image_size=32,
            max_episode_steps=10,
            vcodec="libx264",
            seed=0,
        )
    )
    return root


def _episodes(loader) -> set[int]:
    return {int(e) for batch in loader for e in batch["episode_index"][:, 0]}


def test_splits_are_disjoint_episodes_and_batches_hold_every_modality(scenes: Path) -> None:
    loaders = create_dataloaders(
        str(scenes), batch_size=4, num_workers=0, video_size=16, sequence_length=5, audio_features=32,
        augmentation=False, val_fraction=0.2, test_fraction=0.2,
    )  # fmt: skip
    assert set(loaders) == {"train", "val", "test"}
    train, val, test = (_episodes(loaders[name]) for name in ("train", "val", "test"))
    assert train | val | test == set(range(6)) and not (train & val or train & test or val & test)
    batch = next(iter(loaders["train"]))
    assert tuple(batch.batch_size) == (4, 5)
    obs = batch["obs"]
    assert obs["observation.images.front"].shape == (4, 5, 16, 16, 3)
    assert obs["observation.images.front"].dtype == torch.uint8
    assert obs["observation.audio"].shape == (4, 5, 32) and obs["observation.state"].shape == (4, 5, 78)
    assert batch["action"].shape == (4, 5, 2) and batch["mask"].dtype == torch.bool


def test_augmentation_changes_training_frames_only(scenes: Path) -> None:
    common = {"batch_size": 2, "num_workers": 0, "video_size": 32, "sequence_length": 3, "audio_features": 32}
    plain = create_dataloaders(str(scenes), augmentation=False, **common)
    jittered = create_dataloaders(str(scenes), augmentation=True, **common)
    key = "obs/observation.images.front"
    a, b = plain["train"].dataset[0][key], jittered["train"].dataset[0][key]
    assert a.shape == b.shape and not torch.equal(torch.as_tensor(a), b)
    assert torch.equal(torch.as_tensor(plain["val"].dataset[0][key]), torch.as_tensor(jittered["val"].dataset[0][key]))


def test_three_way_split_keeps_a_training_episode() -> None:
    split = split_episodes_three(list(range(10)), 0.2, 0.1, seed=3)
    assert len(split["val"]) == 2 and len(split["test"]) == 1 and len(split["train"]) == 7
    with pytest.raises(DataLoadingError, match="cannot be split"):
        split_episodes_three([0, 1], 0.5, 0.4, seed=0)


def test_bad_sources_are_one_line_data_loading_errors(scenes: Path, tmp_path: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cases = [
        (str(tmp_path / "missing" / "dir" / "x"), "not a dataset directory"),
        ("nobody/no-such-dataset", "nobody/no-such-dataset"),
        (str(scenes), "audio_features=128"),
    ]
    for source, match in cases:
        with pytest.raises(DataLoadingError, match=match) as err:
            create_dataloaders(source, num_workers=0, audio_features=128)
        assert "\n" not in str(err.value)
    with pytest.raises(DataLoadingError, match="unknown option"):
        create_dataloaders(str(scenes), num_workers=0, audio_features=32, shuffle_seed=1)
