"""The vjepa2 presets ship in the package, validate against the schema, and run by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from worldrl.cli import main as worldrl_main
from worldrl.cli.configs import presets
from worldrl.training.run import validate_config

VJEPA2_PRESETS = [
    "vjepa2_debug",
    "vjepa2_full",
    "vjepa2_low_mem",
    "vjepa2_libero",
    "vjepa2_aloha",
    "vjepa2_inverted_pendulum",
    "vjepa2_reacher",
]


@pytest.mark.parametrize("name", VJEPA2_PRESETS)
def test_presets_validate(name: str) -> None:
    cfg = yaml.safe_load(presets()[name])
    validate_config(cfg)
    assert cfg["model"]["family"] == "vjepa2"


def test_dataset_presets_name_their_cameras() -> None:
    libero = yaml.safe_load(presets()["vjepa2_libero"])
    assert libero["model"]["cameras"] == ["observation.images.image", "observation.images.wrist_image"]
    aloha = yaml.safe_load(presets()["vjepa2_aloha"])
    assert aloha["data"]["obs_keys"][0] == "observation.images.top"
    low = yaml.safe_load(presets()["vjepa2_low_mem"])
    assert low["model"]["activation_checkpointing"] and low["trainer"]["precision"] == "bf16"
    debug = yaml.safe_load(presets()["vjepa2_debug"])
    assert debug["model"]["encoder"]["dim"] == 288 and debug["model"]["predictor"]["dim"] == 144
    assert debug["trainer"]["max_steps"] == 100 and "synthetic" in debug["data"]


def test_configs_command_lists_and_shows(capsys) -> None:
    assert worldrl_main(["configs", "list", "--family", "vjepa2"]) == 0
    listed = capsys.readouterr().out.split()
    assert all(name in listed for name in VJEPA2_PRESETS) and "ensemble_pendulum" not in listed
    assert worldrl_main(["configs", "show", "vjepa2_debug"]) == 0
    assert "family: vjepa2" in capsys.readouterr().out
    assert worldrl_main(["configs", "show", "nope"]) == 2


def test_the_debug_preset_trains_by_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        worldrl_main(
            [
                "train",
                "--config",
                "vjepa2_debug",
                f"output_dir={tmp_path / 'run'}",
                f"data.root={tmp_path / 'shapes'}",
                "data.synthetic.episodes=4",
                "data.synthetic.steps=8",
                "model.encoder.dim=24",
                "model.encoder.num_heads=2",
                "model.predictor.dim=12",
                "model.predictor.num_heads=2",
                "model.action_predictor.dim=12",
                "model.action_predictor.num_heads=2",
                "trainer.max_steps=2",
                "trainer.eval_every=2",
                "trainer.warmup_steps=0",
                "trainer.progress=false",
            ]
        )
        == 0
    )
    assert (tmp_path / "run" / "model" / "config.json").exists()
