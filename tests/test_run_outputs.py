"""Output directories of runs: a finished run is never replaced silently (issue 19)."""

from __future__ import annotations

from pathlib import Path

from worldrl.cli import main

TINY_YAML = """\
data: {window: 2}
model: {family: ensemble, num_members: 2, num_elites: 1, hidden_dims: [16, 16], predict_terminal: false}
trainer: {batch_size: 32, lr: 3.0e-3}
"""


def train_agent_args(out: Path, model_config: Path, *extra: str) -> list[str]:
    return [
        "train-agent",
        "--agent",
        "mpc-cem",
        "--env",
        "Pendulum-v1",
        "--real-steps",
        "60",
        "--model-config",
        str(model_config),
        "--eval-every",
        "60",
        "--eval-episodes",
        "1",
        "--steps-per-iteration",
        "60",
        "--initial-random-steps",
        "60",
        "--model-steps",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-dataset",
        "--no-video",
        "--agent-option",
        "num_samples=8",
        "--agent-option",
        "num_elites=2",
        "--agent-option",
        "horizon=2",
        "--agent-option",
        "iterations=1",
        *extra,
    ]


def test_train_agent_refuses_a_finished_run_and_replaces_it_with_overwrite(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    out = tmp_path / "run"
    assert main(train_agent_args(out, config)) == 0
    weights = out / "model" / "model.safetensors"
    before = weights.stat().st_mtime_ns, (out / "learning_curve.csv").read_bytes()
    capsys.readouterr()

    assert main(train_agent_args(out, config)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0] and "already holds" in err[0]
    assert (weights.stat().st_mtime_ns, (out / "learning_curve.csv").read_bytes()) == before  # untouched

    (out / "agent" / "stale.txt").write_text("from the old run")
    assert main(train_agent_args(out, config, "--overwrite")) == 0
    assert weights.is_file() and not (out / "agent" / "stale.txt").exists()


REPO = Path(__file__).resolve().parents[1]
DEBUG = REPO / "configs" / "debug.yaml"


def test_refused_train_leaves_config_yaml_and_resume_names_changed_settings(lerobot_fixture, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", str(DEBUG), f"data.root={lerobot_fixture}", f"output_dir={out}"]
    assert main(args) == 0
    saved = (out / "config.yaml").read_bytes()
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    capsys.readouterr()

    assert main([*args, "model.num_members=3"]) == 2  # a fresh run over checkpoints: refused
    assert "resume" in capsys.readouterr().err
    assert (out / "config.yaml").read_bytes() == saved  # nothing written before the run is accepted

    assert main([*args, "model.hidden_dims=[8, 8]", "trainer.lr=0.5", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.hidden_dims ([16, 16] -> [8, 8])" in err[0] and "trainer.lr" in err[0], err
    assert (out / "config.yaml").read_bytes() == saved
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == checkpoints

    assert main([*args, "trainer.max_steps=8", "--resume"]) == 0  # a setting that may change: applied, and said
    assert "trainer.max_steps: 6 -> 8" in capsys.readouterr().err
    assert "max_steps: 8" in (out / "config.yaml").read_text()
    assert "step_0000008" in {p.name for p in (out / "checkpoints").iterdir()}
