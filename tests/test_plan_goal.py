"""``worldrl plan-goal``: a trained vjepa2 checkpoint plans toward goal observations on the real env."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from worldrl.cli import main as worldrl_main
from worldrl.data.collect import CollectConfig, collect
from worldrl.models.vjepa2 import VJEPA2Config


def test_plan_goal_runs_on_a_trained_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "ip"
    collect(
        CollectConfig(
            env_id="InvertedPendulum-v5",
            out=data,
            episodes=2,
            policy="scripted",
            epsilon=0.3,
            pixels=True,
            image_size=32,
            max_episode_steps=12,
            fast_render=True,
            seed=0,
        )
    )
    config = {
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
        "data": {"root": str(data), "window": 4},
        "model": {"family": "vjepa2", **VJEPA2Config.tiny()},
        "trainer": {"max_steps": 2, "batch_size": 4, "eval_every": 2, "progress": False},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert worldrl_main(["train", "--config", str(tmp_path / "c.yaml")]) == 0
    out = tmp_path / "goal.json"
    assert (
        worldrl_main(
            [
                "plan-goal",
                "--model",
                str(tmp_path / "run" / "model"),
                "--env",
                "InvertedPendulum-v5",
                "--episodes",
                "1",
                "--steps",
                "2",
                "--goal-steps",
                "2",
                "--body",
                "pole",
                "--samples",
                "8",
                "--horizon",
                "1",
                "--iterations",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads(out.read_text())
    assert set(results["agents"]) == {"mpc-goal", "random actions", "zero actions"}
    for entry in results["agents"].values():
        assert entry["final latent distance"] >= 0 and 0 <= entry["success"] <= 1
    assert results["plan_seconds_per_action"] > 0
