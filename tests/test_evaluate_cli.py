"""`worldrl evaluate` end to end on a tiny recorded dataset and a tiny saved ensemble; the benchmark's smoke run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from worldrl.cli import main
from worldrl.models import TaskSpec, build_model

REPO = Path(__file__).resolve().parents[1]
TASK = "Pendulum-v1"
LENGTHS = (12, 9, 15, 10)


def _record(root: Path, lengths=LENGTHS) -> Path:
    """Real Pendulum-v1 rollouts under random actions, written with the project's LeRobot writer."""
    from worldrl.data import LeRobotDatasetWriter

    env = gym.make(TASK)
    env.action_space.seed(0)
    features = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": ["cos", "sin", "thdot"]},
        "action": {"dtype": "float32", "shape": [1], "names": ["torque"]},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
    }
    with LeRobotDatasetWriter.create(root, fps=20, features=features, robot_type=TASK) as writer:
        for ep, length in enumerate(lengths):
            obs, _ = env.reset(seed=ep)
            for _ in range(length):
                action = env.action_space.sample()
                next_obs, reward, terminated, _, _ = env.step(action)
                writer.add_frame(
                    {
                        "observation.state": obs.astype(np.float32),
                        "action": action.astype(np.float32),
                        "next.reward": np.array([reward], np.float32),
                        "next.terminated": np.array([terminated]),
                    },
                    task="swing up",
                )
                obs = next_obs
            writer.save_episode()
    env.close()
    return root


def _save_ensemble(directory: Path, obs_dim: int = 3) -> Path:
    env = gym.make(TASK)
    obs_space = env.observation_space if obs_dim == 3 else gym.spaces.Box(-1, 1, (obs_dim,), np.float32)
    task = TaskSpec(obs_space, env.action_space, task_id=TASK, fps=20, max_episode_steps=200)
    model = build_model("ensemble", {"num_members": 3, "num_elites": 2, "hidden_dims": [16, 16]}, task)
    model.fit_normalization(
        {
            "obs": {"mean": [0.0] * obs_dim, "std": [1.0] * obs_dim},
            "action": {"mean": [0.0], "std": [1.0]},
            "delta": {"mean": [0.0] * obs_dim, "std": [0.1] * obs_dim},
            "reward": {"mean": [-5.0], "std": [3.0]},
        }
    )
    model.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _record(tmp_path_factory.mktemp("data") / "pendulum")


def test_evaluate_end_to_end(dataset, tmp_path, capsys):
    from worldrl.data import LeRobotDatasetReader
    from worldrl.evaluation import evaluate_fidelity
    from worldrl.models import load_pretrained

    model_dir = _save_ensemble(tmp_path / "model")
    code = main(
        [
            "evaluate",
            "--model",
            str(model_dir),
            "--dataset",
            str(dataset),
            "--episodes",
            "all",
            "--horizons",
            "1",
            "5",
            "14",
            "--num-starts",
            "0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "open-loop fidelity" in out and "nRMSE" in out
    eval_dir = model_dir / "eval"
    for name in ("fidelity.json", "fidelity.md", "trajectories.png", "nrmse_curve.png"):
        assert (eval_dir / name).stat().st_size > 0, name
    saved = json.loads((eval_dir / "fidelity.json").read_text())
    direct = evaluate_fidelity(
        load_pretrained(model_dir),
        LeRobotDatasetReader(dataset),
        range(len(LENGTHS)),
        horizons=(1, 5, 14),
        num_starts=None,
    )
    assert saved == json.loads(direct.to_json())
    by_h = {h["horizon"]: h for h in saved["horizons"]}
    assert by_h[14]["count"] == 1 and by_h[14]["nrmse"] is not None  # only the 15-step episode reaches 14
    assert by_h[5]["count"] == sum(max(n - 5, 0) for n in LENGTHS) and by_h[1]["nrmse"] > 0
    assert 0.0 <= by_h[1]["termination_accuracy"] <= 1.0  # measured: the dataset records next.terminated
    assert [b["horizon"] for b in saved["baselines"]["repeat_last"]] == [1, 5, 14]  # trivial baselines, same starts
    assert saved["baselines"]["dataset_mean"][0]["nrmse"] > 0
    assert "predict the dataset mean" in (eval_dir / "fidelity.md").read_text()


def test_evaluate_val_split_and_out_dir(dataset, tmp_path):
    from worldrl.data import split_episodes

    model_dir = _save_ensemble(tmp_path / "model")
    out = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--dataset",
                str(dataset),
                "--val-fraction",
                "0.25",
                "--seed",
                "3",
                "--horizons",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    saved = json.loads((out / "fidelity.json").read_text())
    assert saved["episodes"] == sorted(split_episodes(list(range(len(LENGTHS))), val_fraction=0.25, seed=3)[1])


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("missing_model", "worldrl checkpoint|no checkpoint"),
        ("other_task", r"observation\.state.*\(3,\).*\(5,\)"),
        ("bad_episodes", "--episodes"),
        ("missing_dataset", "info.json|not found|no dataset|does not exist"),
    ],
)
def test_evaluate_errors_exit_2_with_one_line(case, pattern, dataset, tmp_path, capsys):
    model_dir = tmp_path / "model"
    args = ["evaluate", "--model", str(model_dir), "--dataset", str(dataset)]
    if case == "missing_model":
        model_dir.mkdir()
    else:
        _save_ensemble(model_dir, obs_dim=5 if case == "other_task" else 3)
    if case == "bad_episodes":
        args += ["--episodes", "0,99"]
    if case == "missing_dataset":
        args[-1] = str(tmp_path / "nowhere")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("worldrl evaluate: error:")
    assert __import__("re").search(pattern, err), err


def test_benchmark_quick_writes_its_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\nintro\n\n<!-- simulator:start -->\nold numbers\n<!-- simulator:end -->\n\n## Other\nkept\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "benchmark_simulator.py"),
        "--quick",
        "--threads",
        "1",
        "--doc",
        str(doc),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    text = doc.read_text()
    assert "old numbers" not in text and text.count("<!-- simulator:start -->") == 1
    assert text.startswith("# Benchmarks\n\nintro") and text.rstrip().endswith("kept")
    section = text.split("<!-- simulator:start -->")[1].split("<!-- simulator:end -->")[0]
    assert "HalfCheetah-v5" in section and "--quick" in section and "torch" in section and "CPUs" in section
    rows = [line for line in section.splitlines() if line.startswith("| 1 |") or line.startswith("| 8 |")]
    assert len(rows) == 2 and all("x |" in row for row in rows)
    assert section.count("met") + section.count("missed") >= 2


def test_horizons_beyond_the_longest_episode_are_refused_in_one_line(dataset, tmp_path, capsys):
    """No step of such a horizon can be scored; a huge one would only cost time and memory (issue 19)."""
    model_dir = _save_ensemble(tmp_path / "model")
    args = ["evaluate", "--model", str(model_dir), "--dataset", str(dataset), "--episodes", "all"]
    for horizon in ("15", "1000000000"):
        assert main([*args, "--horizons", "1", horizon]) == 2
        err = capsys.readouterr().err
        assert f"--horizons {horizon} is beyond the longest evaluated episode (14 steps" in err
        assert len(err.strip().splitlines()) == 1


def test_train_on_a_device_that_does_not_exist_is_one_line(dataset, tmp_path, capsys):
    import torch
    import yaml

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the missing-device case cannot happen")
    config = {
        "output_dir": str(tmp_path / "run"),
        "data": {"root": str(dataset), "window": 2},
        "model": {"family": "ensemble", "num_members": 2, "num_elites": 1, "hidden_dims": [8]},
        "trainer": {"max_steps": 1, "batch_size": 2, "device": "cuda"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda' is not available on this machine" in err and len(err.strip().splitlines()) == 1
