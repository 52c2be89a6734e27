"""Every config dataclass loads through the one strict loader and validates with the one idiom."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from worldrl.agents.actor_critic import ActorCriticConfig
from worldrl.agents.mbpo import MBPOConfig
from worldrl.agents.planners import CEMConfig, MPPIConfig
from worldrl.config_loading import config_from_dict
from worldrl.data.collect import CollectConfig
from worldrl.data.moving_shapes import MovingShapesConfig
from worldrl.errors import ConfigError
from worldrl.loops import OnlineConfig
from worldrl.models import available_families, get_family
from worldrl.training import TrainerConfig

# config class -> (required fields, a field and a value its __post_init__ must refuse)
CONFIGS: dict[type, tuple[dict[str, Any], str, Any]] = {
    TrainerConfig: ({}, "batch_size", 0),
    MBPOConfig: ({}, "real_ratio", 2.0),
    ActorCriticConfig: ({}, "horizon", 0),
    OnlineConfig: ({}, "real_steps", 0),
    CEMConfig: ({}, "num_elites", 10_000),
    MPPIConfig: ({}, "temperature", -1.0),
    CollectConfig: ({"env_id": "Pendulum-v1", "out": "unused", "episodes": 1}, "episodes", 0),
    MovingShapesConfig: ({}, "steps", 1),
}
FAMILY_BAD_FIELDS = {
    "ensemble": ("num_elites", 99),
    "vrnn": ("max_components", 1),
    "vjepa2": ("rollout_steps", -1),
    "multimodal": ("patch_size", 7),
}
for _family, (_field, _bad) in FAMILY_BAD_FIELDS.items():
    CONFIGS[get_family(_family).config_class] = ({}, _field, _bad)


def test_every_family_of_the_package_is_covered():
    """Families tests register on the fly live outside ``worldrl``; every one of the package's own is listed."""
    own = {name for name in available_families() if get_family(name).config_class.__module__.startswith("worldrl.")}
    assert own <= set(FAMILY_BAD_FIELDS)


def build(cls: type, data: dict[str, Any]) -> Any:
    """What a caller of the class uses: its ``from_dict`` where it has one, else the loader itself."""
    return cls.from_dict(data) if hasattr(cls, "from_dict") else config_from_dict(cls, data)


@pytest.mark.parametrize("cls", list(CONFIGS), ids=lambda c: c.__name__)
def test_json_round_trip_restores_tuples(cls):
    required, _, _ = CONFIGS[cls]
    config = cls(**required)
    data = json.loads(json.dumps(dataclasses.asdict(config), default=str))  # what a saved config.json holds
    for key in ("out",):  # paths are written as text; the loader does not guess types beyond tuples/dataclasses
        data.pop(key, None)
    loaded = build(cls, {**data, **{k: v for k, v in required.items() if k not in data}})
    for f in dataclasses.fields(cls):
        value = getattr(loaded, f.name)
        if isinstance(getattr(config, f.name), tuple):
            assert isinstance(value, tuple), f.name
        if f.name != "out":
            assert value == getattr(config, f.name), f.name


@pytest.mark.parametrize("cls", list(CONFIGS), ids=lambda c: c.__name__)
def test_unknown_field_is_refused_naming_the_known_ones(cls):
    required, _, _ = CONFIGS[cls]
    with pytest.raises(ConfigError, match=r"unknown field\(s\) '.*\.bogus_field'; known fields of") as info:
        build(cls, {**required, "bogus_field": 1})
    some_field = next(f.name for f in dataclasses.fields(cls) if f.init)
    assert some_field in str(info.value)


@pytest.mark.parametrize("cls", list(CONFIGS), ids=lambda c: c.__name__)
def test_a_bad_value_is_a_config_error_naming_the_field(cls):
    required, field, bad = CONFIGS[cls]
    with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{field} must"):
        build(cls, {**required, field: bad})


@dataclasses.dataclass
class Inner:
    sizes: tuple[int, ...] = (1,)


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    pair: tuple[float, float] | None = None


def test_nested_dataclasses_and_optional_tuples_are_rebuilt():
    loaded = config_from_dict(Outer, {"inner": {"sizes": [3, 4]}, "pair": [0.5, 1.0]})
    assert loaded == Outer(Inner((3, 4)), (0.5, 1.0))
    with pytest.raises(ConfigError, match="'Outer.inner.nope'"):
        config_from_dict(Outer, {"inner": {"nope": 1}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        config_from_dict(Outer, [1, 2])


def test_scalar_fields_of_the_wrong_type_name_the_field_and_numbers_in_strings_convert():
    from worldrl.training.config import TrainerConfig

    with pytest.raises(ConfigError, match=r"TrainerConfig.max_steps must be int, got 'two'"):
        config_from_dict(TrainerConfig, {"max_steps": "two"})
    with pytest.raises(ConfigError, match=r"TrainerConfig.max_steps must be int, got 2.5"):
        config_from_dict(TrainerConfig, {"max_steps": 2.5})
    with pytest.raises(ConfigError, match=r"TrainerConfig.lr must be float, got True"):
        config_from_dict(TrainerConfig, {"lr": True})
    config = config_from_dict(TrainerConfig, {"lr": "1e-3", "max_steps": 10.0})  # YAML reads 1e-3 as a string
    assert config.lr == 0.001 and isinstance(config.max_steps, int) and config.max_steps == 10


def test_data_window_of_the_wrong_type_is_one_line(tmp_path, capsys):
    from worldrl.cli import main

    path = tmp_path / "c.yaml"
    path.write_text("data: {root: nowhere, window: 2}\nmodel: {family: ensemble}\n")
    assert main(["train", "--config", str(path), "data.window=two"]) == 2
    err = capsys.readouterr().err
    assert "data.window must be an integer >= 1, got 'two'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["-1", "lots", "1.5"])
def test_data_video_cache_mb_must_be_a_whole_number_of_megabytes(tmp_path, capsys, value):
    from worldrl.cli import main

    path = tmp_path / "c.yaml"
    path.write_text("data: {root: nowhere, window: 2}\nmodel: {family: ensemble}\n")
    assert main(["train", "--config", str(path), f"data.video_cache_mb={value}"]) == 2
    err = capsys.readouterr().err
    assert "data.video_cache_mb must be an integer >= 0" in err and len(err.strip().splitlines()) == 1


def test_data_video_cache_mb_sizes_the_training_readers_cache(tmp_path):
    from worldrl.data.moving_shapes import MovingShapesConfig, write_moving_shapes
    from worldrl.training.run import build_trainer

    root = tmp_path / "shapes"
    write_moving_shapes(root, MovingShapesConfig(episodes=2, steps=6, image_size=16))
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "data": {"root": str(root), "window": 2, "video_cache_mb": 7},
        "model": {"family": "ensemble", "num_members": 2, "num_elites": 2, "hidden_dims": [8]},
        "trainer": {"max_steps": 1},
    }
    trainer = build_trainer(cfg)
    assert trainer.train_dataset.reader._frame_cache.max_bytes == 7 * 1024 * 1024
