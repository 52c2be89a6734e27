"""scripts/benchmark_dmc.py's command-line handling, which needs no dm-control (tests/test_dmc.py runs the suite)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from worldrl.errors import ConfigError


def load_benchmark():
    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_dmc.py"
    spec = importlib.util.spec_from_file_location("benchmark_dmc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_agent_options_from_the_command_line_override_the_loops_defaults():
    bench = load_benchmark()
    args = argparse.Namespace(agent="dreamer", horizon=5, samples=None, iterations=None, agent_option=[])
    assert bench.agent_options(args) == {}  # dreamer does not plan: planner flags are dropped
    args.agent_option = ["updates_per_real_step=0.2", "actor_lr=1e-4"]
    assert bench.agent_options(args) == {"updates_per_real_step": 0.2, "actor_lr": 1e-4}
    args = argparse.Namespace(agent="mpc-cem", horizon=5, samples=40, iterations=None, agent_option=["horizon=7"])
    assert bench.agent_options(args) == {"horizon": 7, "num_samples": 40, "num_elites": 4}
    args.agent_option = ["horizon"]
    with pytest.raises(ConfigError, match="key=value"):
        bench.agent_options(args)
