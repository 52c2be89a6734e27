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
                "--save-goals",
                str(tmp_path / "goals"),
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

    # the saved goal frame, given back as a goal image file: planned toward, scored in latent space only
    goal_png = tmp_path / "goals" / "goal_000.png"
    assert goal_png.is_file()
    model_args = ["plan-goal", "--model", str(tmp_path / "run" / "model"), "--env", "InvertedPendulum-v5"]
    small = ["--episodes", "1", "--steps", "1", "--samples", "8", "--horizon", "1", "--iterations", "1"]
    out2 = tmp_path / "goal_file.json"
    assert worldrl_main([*model_args, *small, "--goal-image", str(goal_png), "--out", str(out2)]) == 0
    agents = json.loads(out2.read_text())["agents"]
    assert all("success" not in a and a["final latent distance"] >= 0 for a in agents.values())


def test_plan_goal_refuses_goal_images_of_another_size_or_camera(tmp_path: Path, capsys) -> None:
    import gymnasium as gym
    import numpy as np
    from PIL import Image

    from worldrl.models import TaskSpec, build_model
    from worldrl.models.checkpoint import save_pretrained

    key = "observation.images.front"
    task = TaskSpec.keyed({key: gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)}, gym.spaces.Box(-1, 1, (1,)))
    save_pretrained(build_model("vjepa2", VJEPA2Config.tiny(), task), tmp_path / "m")
    Image.fromarray(np.zeros((20, 16, 3), np.uint8)).save(tmp_path / "big.png")
    (tmp_path / "not.png").write_text("hello")
    base = ["plan-goal", "--model", str(tmp_path / "m"), "--env", "InvertedPendulum-v5", "--episodes", "1"]
    cases = [
        (["--goal-image", str(tmp_path / "big.png")], "is 16x20 but camera 'observation.images.front'"),
        (["--goal-image", str(tmp_path / "not.png")], "is not an image PIL can read"),
        (["--goal-image", str(tmp_path / "none.png")], "does not exist"),
        (["--goal-image", str(tmp_path / "big.png"), "--goal-camera", "wrist"], "not one of the model's cameras"),
    ]
    for extra, message in cases:
        assert worldrl_main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
