"""Bad input refused up front with one line naming the problem (issue 19): cameras, YAML bombs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worldrl.errors import EnvError
from worldrl.tasks.real_envs import make_real_env


def test_collect_refuses_an_unknown_camera_naming_the_models_cameras(tmp_path):
    out = tmp_path / "ds"
    cmd = [
        sys.executable,
        "-m",
        "worldrl",
        "collect",
        "--env",
        "HalfCheetah-v5",
        "--pixels",
        "--camera",
        "bogus",
        "--episodes",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "'bogus'" in last and "['track']" in last, done.stderr
    assert not out.exists()  # nothing created


def test_known_camera_renders_and_unknown_one_is_refused():
    env = make_real_env("HalfCheetah-v5", pixels=True, camera="track", width=16, height=16)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (16, 16, 3)
    env.close()
    with pytest.raises(EnvError, match="no named cameras"):
        make_real_env("InvertedPendulum-v5", pixels=True, camera="bogus")


# ----------------------------------------------------------------------------------------------- YAML limits


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": 10**levels strings from a few hundred bytes."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bomb.yaml", "output_dir: x\n" + alias_bomb(), "alias bomb"),
        ("recursive.yaml", "model: &m {family: ensemble, inner: *m}\n", "recursive alias"),
        ("deep.yaml", "model: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested too deeply"),
    ],
)
def test_train_refuses_hostile_yaml_quickly(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    # the CLI in a child process (a regression would hang, then exhaust memory); it times the command itself, so
    # the check does not depend on how long imports take on a loaded machine
    timed = "import sys, time; from worldrl.cli import main; t = time.perf_counter(); rc = main(sys.argv[1:]); "
    timed += "print(time.perf_counter() - t); sys.exit(rc)"
    cmd = [sys.executable, "-c", timed, "train", "--config", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # unbounded before: minutes, then OOM
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], done.stderr
    elapsed = float(done.stdout.strip().splitlines()[-1])
    assert elapsed < 30.0, elapsed  # milliseconds on an idle machine; minutes (then OOM) before the limits


def test_oversized_yaml_and_bombs_in_options_are_refused(tmp_path):
    from worldrl.cli.train_agent import parse_key_values
    from worldrl.config_loading import MAX_YAML_BYTES, load_yaml
    from worldrl.errors import ConfigError
    from worldrl.training.run import parse_override

    with pytest.raises(ConfigError, match="limited to"):
        load_yaml("x: 1\n" + "#" * MAX_YAML_BYTES, "big.yaml")
    flow = "{" + alias_bomb().replace("\n", ", ") + "}"
    with pytest.raises(ConfigError, match="alias bomb"):
        parse_key_values([f"horizon={flow}"])
    with pytest.raises(ConfigError, match="alias bomb"):
        parse_override(f"trainer.lr={flow}")
    assert load_yaml("a: &x {b: 1}\nc: *x\n", "ok.yaml") == {"a": {"b": 1}, "c": {"b": 1}}  # plain aliases still work


@pytest.mark.parametrize("policy", ["greedy", "no_such_module_xyz:act", "sb3:/nonexistent/model.zip"])
def test_a_bad_policy_is_refused_before_the_dataset_exists(tmp_path, capsys, policy):
    """The corrected rerun must not find an empty dataset in its way."""
    from worldrl.cli import main

    out = tmp_path / "ds"
    args = ["collect", "--env", "Pendulum-v1", "--episodes", "1", "--max-episode-steps", "5", "--out", str(out)]
    assert main([*args, "--policy", policy, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("policy" in err[0].lower() or "nonexistent" in err[0]), err
    assert not out.exists()
    assert main([*args, "--policy", "random", "--quiet"]) == 0  # the corrected rerun, no --overwrite needed


def test_ctrl_c_during_train_says_where_it_stopped_and_how_to_resume(lerobot_fixture, tmp_path, capsys, monkeypatch):
    """SIGINT raises KeyboardInterrupt in the training loop: one line with the step and the resume command."""
    from pathlib import Path

    from worldrl.cli import main
    from worldrl.training.trainer import Trainer

    original = Trainer._train_step

    def interrupted_at_step_3(self, batches):
        metrics = original(self, batches)
        if self.progress.step == 3:
            raise KeyboardInterrupt
        return metrics

    config = Path(__file__).parents[1] / "configs" / "debug.yaml"
    args = ["train", "--config", str(config), f"data.root={lerobot_fixture}", f"output_dir={tmp_path / 'run'}"]
    monkeypatch.setattr(Trainer, "_train_step", interrupted_at_step_3)
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("worldrl train: stopped at step 3; resume with: worldrl train --config"), err
    assert err[-1].endswith("--resume") and "Traceback" not in "\n".join(err)
    monkeypatch.setattr(Trainer, "_train_step", original)
    assert main([*args, "--resume"]) == 0  # the command it printed finishes the run


def test_a_start_observation_outside_the_observation_space_is_refused():
    """Issue 19: a model started where the task never goes imagines from states it never saw; say so at reset."""
    import gymnasium as gym
    import numpy as np

    from worldrl.errors import EnvError

    env = gym.make("WorldModel-v0")  # the packaged Pendulum-v1 model: Box([-1, -1, -8], [1, 1, 8])
    obs, _ = env.reset(options={"observation": np.array([0.6, 0.8, 1.0], np.float32)})
    assert np.allclose(obs, [0.6, 0.8, 1.0])
    with pytest.raises(EnvError, match=r"options\['observation'\] is outside the observation space .*by up to 4"):
        env.reset(options={"observation": np.array([5.0, 0.0, 1.0], np.float32)})
    vec = gym.make_vec("WorldModel-v0", num_envs=2)
    with pytest.raises(EnvError, match="outside the observation space .*by up to 1"):
        vec.reset(options={"observation": np.array([[0.6, 0.8, 1.0], [0.0, 1.0, 9.0]], np.float32)})
