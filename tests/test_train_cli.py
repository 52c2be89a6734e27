"""`worldrl train`: YAML + overrides, config errors, and a tiny end-to-end run on the lerobot-written fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from worldrl.cli import main
from worldrl.models import load_pretrained
from worldrl.training.metrics_logging import read_metrics
from worldrl.training.run import (
    ConfigError,
    apply_overrides,
    load_config,
    parse_override,
    train_from_config,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]
DEBUG = REPO / "configs" / "debug.yaml"


def test_overrides_are_yaml_scalars_on_dotted_keys():
    assert parse_override("trainer.lr=3e-4") == (["trainer", "lr"], 3e-4)
    assert parse_override("trainer.ema_decay=null") == (["trainer", "ema_decay"], None)
    assert parse_override("model.hidden_dims=[8, 8]") == (["model", "hidden_dims"], [8, 8])
    assert parse_override("data.obs_key=observation.images.cam")[1] == "observation.images.cam"
    cfg = apply_overrides({"trainer": {"lr": 1.0}}, ["trainer.lr=0.5", "data.collect.episodes=3"])
    assert cfg == {"trainer": {"lr": 0.5}, "data": {"collect": {"episodes": 3}}}


@pytest.mark.parametrize("bad", ["trainer.lr", "=3", "trainer..lr=1", "trainer.lr=[1,"])
def test_malformed_overrides_are_named(bad):
    with pytest.raises(ConfigError, match="override"):
        parse_override(bad)


def test_debug_preset_loads_with_overrides():
    cfg = load_config(DEBUG, ["trainer.max_steps=2", "trainer.lr=1e-2", "model.num_members=3"])
    assert cfg["trainer"]["max_steps"] == 2 and cfg["trainer"]["lr"] == 0.01 and cfg["model"]["num_members"] == 3


@settings(max_examples=25, deadline=None)
@given(
    section=st.sampled_from(["", "data.", "trainer.", "model."]),
    name=st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12),
    value=st.sampled_from(["1", "0.5", "null", "abc", "[1, 2]"]),
)
def test_unknown_keys_are_rejected_naming_the_key(section, name, value):
    key = f"{section}zz{name}"  # no field of any section starts with "zz"
    with pytest.raises(ConfigError) as info:
        validate_config(apply_overrides(yaml.safe_load(DEBUG.read_text()), [f"{key}={value}"]))
    assert f"'{key}'" in str(info.value)


def test_unknown_key_in_the_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(DEBUG.read_text().replace("trainer:\n", "trainer:\n  learning_rate: 0.1\n"))
    with pytest.raises(ConfigError, match="trainer.learning_rate"):
        load_config(path)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("trainer.lrr=1", "trainer.lrr"),
        ("model.family=nope", "nope"),
        ("trainer.batch_size=0", "batch_size"),
        ("model.num_elites=9", "num_elites"),
        ("trainer=3", "trainer must be a mapping"),
    ],
)
def test_bad_config_exits_2_with_one_line(override, needle, capsys, tmp_path):
    code = main(["train", "--config", str(DEBUG), f"output_dir={tmp_path}", override])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and "\n" not in err and err.startswith("worldrl train: error:")


def test_missing_config_file_exits_2(capsys, tmp_path):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_train_end_to_end_and_resume(lerobot_fixture, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", str(DEBUG), f"data.root={lerobot_fixture}", f"output_dir={out}"]
    assert main(args) == 0
    assert "trained 6 steps" in capsys.readouterr().out
    model = load_pretrained(out / "model")
    assert model.config.family == "ensemble" and model.task.obs_shape == (4,) and model.task.fps == 10
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 7))
    assert [r["step"] for r in records if r["split"] == "val"] == [3, 6]
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["root"] == str(lerobot_fixture)

    assert main(args) == 2  # a fresh run would overwrite the checkpoints: refused
    assert "resume" in capsys.readouterr().err
    assert main([*args, "trainer.max_steps=8", "--resume"]) == 0
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 9))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000006", "step_0000008"]


def test_trained_checkpoint_carries_its_training_episode_starts(tmp_path, lerobot_fixture):
    """The checkpoint remembers the first observation of each training episode (envs reset from them)."""
    from worldrl.data import LeRobotDatasetReader, split_episodes
    from worldrl.models import load_pretrained
    from worldrl.training.run import load_config, train_from_config

    cfg = load_config(
        REPO / "configs" / "debug.yaml", [f"data.root={lerobot_fixture}", f"output_dir={tmp_path / 'run'}"]
    )
    result = train_from_config(cfg)
    model = load_pretrained(result.model_path)
    reader = LeRobotDatasetReader(lerobot_fixture)
    train_eps, _ = split_episodes(range(reader.num_episodes), cfg["data"]["val_fraction"], cfg["seed"])
    np.testing.assert_array_equal(model.start_states.numpy(), reader.episode_starts("observation.state", train_eps))


def test_init_from_starts_a_run_at_a_saved_models_weights(tmp_path, lerobot_fixture, capsys):
    """Fine-tuning: the new run's step 0 holds the saved weights (other lr, fresh optimizer); a model whose tensors
    differ is refused naming init_from, before anything is written."""
    import torch

    from worldrl.training.run import build_trainer

    base = [f"data.root={lerobot_fixture}", "trainer.device=cpu"]
    first = load_config(DEBUG, [*base, f"output_dir={tmp_path / 'first'}"])
    saved = load_pretrained(train_from_config(first).model_path)
    tuned = build_trainer(load_config(DEBUG, [*base, f"init_from={tmp_path / 'first' / 'model'}", "trainer.lr=1e-4"]))
    fresh = build_trainer(load_config(DEBUG, base))
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[key], value)
    assert any(not torch.equal(fresh.model.state_dict()[k], v) for k, v in saved.state_dict().items())

    wider = ["model.hidden_dims=[32,32]", f"init_from={tmp_path / 'first' / 'model'}"]
    out = tmp_path / "wider"
    assert main(["train", "--config", str(DEBUG), *base, *wider, f"output_dir={out}"]) == 2
    err = capsys.readouterr().err
    assert "init_from" in err and "shape" in err and not (out / "checkpoints").exists()
    with pytest.raises(ConfigError, match="init_from"):
        validate_config(load_config(DEBUG, [*base, "init_from=3"]))
