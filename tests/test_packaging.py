"""The installed layout: every source package is listed in pyproject, envs/agents land under worldrl."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def _source_packages() -> set[str]:
    roots = {
        "worldrl": REPO / "worldrl",
        "worldrl.envs": REPO / "envs",
        "worldrl.agents": REPO / "agents",
        "worldrl.configs": REPO / "configs",
    }
    found = set()
    for prefix, root in roots.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            found.add(".".join((prefix, *rel)))
    return found


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert _source_packages() == listed


def test_envs_and_agents_import_under_worldrl_only():
    code = (
        "import importlib.util, worldrl.envs, worldrl.agents; "
        "print(importlib.util.find_spec('envs') is None, importlib.util.find_spec('agents') is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.split() == ["True", "True"]


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "worldrl", "--help"], capture_output=True, text=True, check=True)
    for name in ("collect", "train", "evaluate"):
        assert name in out.stdout


def test_import_leaves_multiprocessing_start_method_alone():
    """torchrl sets "spawn" globally when imported; `import worldrl` (and its core modules) must not pull it in."""
    code = (
        "import multiprocessing as mp, worldrl, worldrl.envs, worldrl.models, worldrl.training, worldrl.data; "
        "print(mp.get_start_method(allow_none=True))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_the_wheel_ships_the_presets_and_the_online_loop_finds_them(tmp_path):
    """Presets are package data: an installed wheel (no source checkout) still finds and loads them."""
    import zipfile

    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("worldrl-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "worldrl/configs/ensemble_pendulum.yaml" in archive.namelist()
        archive.extractall(site)
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r}); "
        "from worldrl.loops.presets import default_model_config, load_model_spec; "
        "path = default_model_config('Pendulum-v1'); spec = load_model_spec(None, 'Pendulum-v1'); "
        "print(path); print(spec.model['family'], spec.source == str(path))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    path, loaded = out.stdout.splitlines()
    assert path.startswith(str(site)) and path.endswith("ensemble_pendulum.yaml")
    assert loaded == "ensemble True"
