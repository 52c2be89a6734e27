"""The CLI's error contract: bad input is one line on stderr and exit code 2; a library bug keeps its traceback."""

from __future__ import annotations

import pytest

from worldrl.cli import SUBCOMMANDS, main
from worldrl.errors import ConfigError, DivergedError, WorldRLError


def bad_inputs(tmp) -> dict[str, list[list[str]]]:
    """Per subcommand, argument lists that each fail on a user mistake before any real work."""
    missing = str(tmp / "missing")
    return {
        "collect": [
            ["--env", "Pendulm-v1", "--episodes", "1", "--out", str(tmp / "c"), "--quiet"],
            ["--env", "Pendulum-v1", "--episodes", "0", "--out", str(tmp / "c"), "--quiet"],
            ["--env", "Pendulum-v1", "--episodes", "1", "--out", str(tmp / "c"), "--quiet", "--policy", "nope"],
        ],
        "info": [[missing]],
        "train": [["--config", str(tmp / "missing.yaml")]],
        "evaluate": [
            ["--model", missing, "--dataset", missing],
            ["--model", missing, "--dataset", missing, "--val-fraction", "2"],
        ],
        "train-agent": [
            ["--agent", "ppo", "--env", "Pendulum-v1", "--real-steps", "10"],
            ["--agent", "mpc-cem", "--env", "Pendulum-v1", "--real-steps", "10", "--agent-option", "x"],
            [
                "--agent",
                "mpc-cem",
                "--env",
                "Pendulum-v1",
                "--real-steps",
                "10",
                "--model-config",
                str(tmp / "missing.yaml"),
            ],
        ],
        "evaluate-agent": [[missing], [missing, "--planner-option", "=3"]],
        "qa": [
            ["generate", "--scenes", "volcano", "--items", "7", "--out", str(tmp / "q")],
            ["generate", "--items", "0", "--out", str(tmp / "q")],
            ["show", missing],
        ],
        "configs": [["show", "no_such_preset"]],
        "plan-goal": [["--model", missing]],
        "generate": [
            ["--checkpoint", missing, "--prompt", missing, "--output", str(tmp / "g.mp4")],
            ["--checkpoint", missing, "--scene", "collide", "--output", str(tmp / "g.mp4"), "--top-p", "1.5"],
        ],
        "train-vlm": [["--config", str(tmp / "missing.yaml")]],
        "evaluate-vlm": [["--model", missing, "--questions", missing]],
    }


def test_every_subcommand_has_bad_input_cases(tmp_path):
    assert set(bad_inputs(tmp_path)) == set(SUBCOMMANDS)


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_bad_input_exits_2_with_one_line_on_stderr(command, tmp_path, capsys):
    for args in bad_inputs(tmp_path)[command]:
        code = main([command, *args])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, (args, captured.err)
        assert len(lines) == 1 and lines[0].startswith(f"worldrl {command}: error: "), (args, captured.err)
        assert "Traceback" not in captured.err and "Traceback" not in captured.out


@pytest.mark.parametrize(
    ("command", "target", "args"),
    [
        ("info", "worldrl.data.LeRobotDatasetReader", ["somewhere"]),
        ("train", "worldrl.training.run.load_config", ["--config", "x.yaml"]),
        (
            "train-agent",
            "worldrl.loops.train_agent",
            ["--agent", "mpc-cem", "--env", "Pendulum-v1", "--real-steps", "10", "--no-video"],
        ),
    ],
)
@pytest.mark.parametrize("bug", [RuntimeError, TypeError, ValueError])
def test_a_library_bug_is_not_reported_as_bad_input(command, target, args, bug, monkeypatch, capsys):
    """Anything but a WorldRLError propagates: Python prints its traceback and exits 1, not 2."""

    def broken(*_args, **_kwargs):
        raise bug("a bug inside worldrl")

    monkeypatch.setattr(target, broken)
    with pytest.raises(bug, match="a bug inside worldrl"):
        main([command, *args])
    assert "error:" not in capsys.readouterr().err


def test_ctrl_c_and_failed_runs_have_their_own_exit_codes(monkeypatch, capsys):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("worldrl.training.run.load_config", interrupted)
    assert main(["train", "--config", "x.yaml"]) == 130
    assert capsys.readouterr().err.strip() == "worldrl train: interrupted"

    def diverged(*_args, **_kwargs):
        raise DivergedError("training loss is nan at step 3;\n stopped")

    monkeypatch.setattr("worldrl.training.run.load_config", diverged)
    assert main(["train", "--config", "x.yaml"]) == 1  # a failed run, not a bad input
    assert capsys.readouterr().err.strip() == "worldrl train: error: training loss is nan at step 3; stopped"


def test_user_errors_still_match_the_builtins_callers_caught_before():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, WorldRLError)
    from worldrl.data import DatasetFormatError
    from worldrl.data.lerobot_format import DatasetExistsError, DatasetNotFoundError
    from worldrl.models import CheckpointError

    assert issubclass(DatasetNotFoundError, FileNotFoundError) and issubclass(DatasetExistsError, FileExistsError)
    assert all(issubclass(e, (WorldRLError, ValueError)) for e in (DatasetFormatError, CheckpointError))
