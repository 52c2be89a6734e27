"""Every model preset shipped in configs/ loads and builds its family's typed config (a typo or a bad value in a
preset is caught here, not half an hour into a benchmark)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from worldrl.models.base import available_families, get_family
from worldrl.training.run import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(
    path
    for path in CONFIGS.glob("*.yaml")
    if (yaml.safe_load(path.read_text()) or {}).get("model", {}).get("family") in available_families()
)


def test_the_presets_are_found():
    assert {"vrnn_pusht_pixels.yaml", "ensemble_pendulum.yaml", "multimodal_playground_cpu.yaml"} <= {
        path.name for path in PRESETS
    }


@pytest.mark.parametrize("path", PRESETS, ids=lambda path: path.stem)
def test_a_preset_builds_its_family_config(path):
    model = dict(load_config(path)["model"])
    config = get_family(model.pop("family")).config_class.from_dict(model)
    for key, value in model.items():
        assert getattr(config, key) == value or isinstance(value, dict | list), key
