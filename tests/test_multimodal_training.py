"""Training the multimodal family (issue 15): ``NeuralWorldTrainer`` on the shared trainer, checkpoints, resume,
``worldrl train`` with the CPU preset, and the trained model served by ``WorldModel-v0`` (frames, audio, state)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from worldrl.cli import main as worldrl_main
from worldrl.data.collect import CollectConfig, collect
from worldrl.data.multimodal_loaders import create_dataloaders
from worldrl.errors import TrainingError
from worldrl.models import load_pretrained
from worldrl.models.multimodal import MultimodalConfig
from worldrl.training.neural_world_trainer import NeuralWorldTrainer, multimodal_model_for

TINY = {**MultimodalConfig.tiny(), "audio_dim": 32}
PRESET = Path(__file__).resolve().parents[1] / "configs" / "multimodal_playground_cpu.yaml"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mm_train") / "collide"
    collect(
        CollectConfig(
            env_id="worldrl/Playground-v0", out=root, episodes=5, pixels=True, audio=True, scene="collide",
            image_size=32, max_episode_steps=12, vcodec="libx264", seed=1,
        )
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def loaders(scenes: Path) -> dict:
    torch.manual_seed(0)
    return create_dataloaders(
        str(scenes), batch_size=4, num_workers=0, video_size=32, sequence_length=4, audio_features=32,
        augmentation=False, val_fraction=0.2, test_fraction=0.0,
    )  # fmt: skip


def test_neural_world_trainer_learns_and_checkpoints_resume(loaders: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = multimodal_model_for(loaders["train"], **TINY)
    common = {"device": "cpu", "progress": False, "lr": 3e-3, "eval_every": 15, "log_every": 5}
    trainer = NeuralWorldTrainer(
        model, loaders["train"], loaders["val"], num_epochs=1, max_steps=30, mixed_precision="no",
        checkpoint_dir=str(tmp_path / "run"), use_ema=False, early_stopping_patience=None, **common,
    )  # fmt: skip
    before = trainer.evaluate(loaders["train"])
    result = trainer.train()
    after = trainer.evaluate(loaders["train"])
    assert result.steps == 30
    for term in ("reconstruction", "prediction", "audio", "audio_rollout", "physics"):
        assert after[term] < before[term], (term, before[term], after[term])
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"prediction", "spectral", "temporal", "perceptual", "physics", "audio_rollout"} <= set(logged[0]["metrics"])

    saved = trainer.save_checkpoint(epoch=1, metrics={"val": 1.0})
    assert {p.suffix for p in saved.rglob("*") if p.is_file()} == {".safetensors", ".json"}  # nothing pickled
    assert json.loads((saved / "checkpoint_info.json").read_text())["epoch"] == 1
    again = NeuralWorldTrainer(
        multimodal_model_for(loaders["train"], **TINY), loaders["train"], loaders["val"], num_epochs=1,
        max_steps=32, mixed_precision="no", checkpoint_dir=str(tmp_path / "run"), use_ema=False, **common,
    )  # fmt: skip
    again.load_checkpoint(saved)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert again.train().steps == 32


def test_trainer_refuses_loaders_that_do_not_yield_windows(loaders: dict) -> None:
    model = multimodal_model_for(loaders["train"], **TINY)
    plain = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 3)), batch_size=2)
    with pytest.raises(TrainingError, match="worldrl windows"):
        NeuralWorldTrainer(model, plain)
    with pytest.raises(TrainingError, match="mixed_precision"):
        NeuralWorldTrainer(model, loaders["train"], mixed_precision="fp8")


def test_worldrl_train_with_the_preset_serves_frames_audio_and_state(scenes: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(PRESET.read_text())
    config["model"].update({k: v for k, v in TINY.items()})
    config["data"].update({"root": str(scenes), "window": 4})
    config["data"].pop("collect")
    config["output_dir"] = str(tmp_path / "run")
    config["trainer"].update({"max_steps": 3, "batch_size": 4, "eval_every": 3, "progress": False})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert worldrl_main(["train", "--config", str(path)]) == 0
    model = load_pretrained(tmp_path / "run" / "model")
    assert model.config.family == "multimodal" and model.layout is not None  # Playground: positions known
    env = gym.make("WorldModel-v0", model=model)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"observation.images.front", "observation.audio", "observation.state"}
    assert obs["observation.images.front"].shape == (32, 32, 3) and obs["observation.images.front"].dtype == np.uint8
    for _ in range(3):
        obs, reward, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward)
