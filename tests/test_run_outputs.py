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
    return ["train-agent", "--agent", "mpc-cem", "--env", "Pendulum-v1", "--real-steps", "60", "--model-config",
            str(model_config), "--eval-every", "60", "--eval-episodes", "1", "--steps-per-iteration", "60",
            "--initial-random-steps", "60", "--model-steps", "2", "--device", "cpu", "--out", str(out),
            "--no-dataset", "--no-video", "--agent-option", "num_samples=8", "--agent-option", "num_elites=2",
            "--agent-option", "horizon=2", "--agent-option", "iterations=1", *extra]


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
