"""The online loop and `worldrl train-agent`: tiny end-to-end runs per agent, bad inputs, divergence, benchmark."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import av
import gymnasium as gym
import numpy as np
import pytest
import torch

from worldrl.cli import main
from worldrl.loops import OnlineConfig, OnlineTrainingError
from worldrl.loops.model_fitting import check_imagination
from worldrl.loops.online import OnlineRun
from worldrl.loops.presets import default_model_config, load_model_spec
from worldrl.models.base import build_model
from worldrl.models.checkpoint import load_pretrained
from worldrl.models.task_spec import TaskSpec

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = """\
data: {window: 2}
model: {family: ensemble, num_members: 2, num_elites: 1, hidden_dims: [16, 16], predict_terminal: false}
trainer: {batch_size: 32, lr: 3.0e-3}
"""
AGENT_OPTIONS = {
    "mpc-cem": ["num_samples=16", "num_elites=4", "horizon=4", "iterations=2"],
    "mpc-mppi": ["num_samples=16", "num_elites=16", "horizon=4", "iterations=2"],
    "dreamer": ["horizon=4", "actor_hidden=[16,16]", "critic_hidden=[16,16]", "updates_per_real_step=0.05"],
    "mpc-ac": [
        "num_samples=16",
        "num_prior_samples=4",
        "num_elites=4",
        "horizon=3",
        "iterations=1",
        "ac_horizon=4",
        "ac_actor_hidden=[16,16]",
        "ac_critic_hidden=[16,16]",
        "ac_updates_per_real_step=0.05",
    ],
    "mbpo": ["num_rollouts=16", "batch_size=16", "net_arch=[16,16]", "gradient_steps_per_real_step=1"],
}


@pytest.fixture
def tiny_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


def tiny_args(agent: str, out: Path, model_config: Path, real_steps: int = 250) -> list[str]:
    args = [
        "train-agent",
        "--agent",
        agent,
        "--env",
        "Pendulum-v1",
        "--real-steps",
        str(real_steps),
        "--model-config",
        str(model_config),
        "--eval-every",
        str(real_steps),
        "--eval-episodes",
        "1",
        "--steps-per-iteration",
        "125",
        "--initial-random-steps",
        "100",
        "--model-steps",
        "10",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-dataset",
    ]
    for option in AGENT_OPTIONS.get(agent, []):
        args += ["--agent-option", option]
    return args


# --------------------------------------------------------------------------- end to end, one per agent
@pytest.mark.parametrize("agent", ["mpc-cem", "mpc-mppi", "mpc-ac", "dreamer", "mbpo"])
def test_train_agent_end_to_end(agent, tmp_path, tiny_yaml, capsys):
    out = tmp_path / agent
    assert main(tiny_args(agent, out, tiny_yaml)) == 0
    with (out / "learning_curve.csv").open() as f:
        rows = rows_csv = list(csv.DictReader(f))
    assert [int(r["real_steps"]) for r in rows] == [250]
    assert math.isfinite(float(rows[0]["mean"])) and float(rows[0]["mean"]) < 0  # Pendulum returns are negative
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    model = load_pretrained(out / "model")
    assert model.task.task_id == "Pendulum-v1"
    assert (out / "agent" / "agent.json").is_file()
    assert (out / "checkpoints" / "last_good" / "model" / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (out / "iterations.jsonl").read_text().splitlines()]
    assert len(rows) == 2  # 250 steps / 125 per iteration
    for row in rows:  # where the wall-clock went, per phase
        assert all(row[f"time/{phase}_s"] >= 0 for phase in ("collect", "fit", "improve"))
    assert "time/eval_s" in rows[-1]  # the final evaluation
    with av.open(str(out / "final_episode.mp4")) as video:  # the final agent's real episode: reset + 200 steps
        assert sum(1 for _ in video.decode(video=0)) == 201
    assert "real steps" in capsys.readouterr().out  # the closing summary table
    # the budget record benchmark_control.py reads: the last evaluation's returns, wall-clock and CPU seconds
    final = json.loads((out / "final.json").read_text())
    assert final["returns"] == pytest.approx([float(rows_csv[0]["mean"])]) and final["real_steps"] == 250
    assert 0 < final["cpu_seconds"] and 0 < final["seconds"]
    # the saved agent evaluates again from disk; deterministic policies reproduce the run's final number
    report = tmp_path / "eval.json"
    assert main(["evaluate-agent", str(out), "--episodes", "1", "--json", str(report)]) == 0
    again = json.loads(report.read_text())
    assert again["env_id"] == "Pendulum-v1" and again["seed"] == 10_000 and again["agent"]["agent"] == agent
    assert f"{agent} from {out}: Pendulum-v1: return" in capsys.readouterr().out
    if agent in ("dreamer", "mbpo"):  # MPC's sampling generator restarts from its seed, so it differs slightly
        assert again["mean"] == pytest.approx(float(rows_csv[0]["mean"]), abs=1e-6)
        assert main(["evaluate-agent", str(out), "--episodes", "1", "--planner-option", "horizon=3"]) == 2
        assert f"a '{agent}' agent has no planner" in capsys.readouterr().err
    else:
        assert math.isfinite(again["mean"]) and again["mean"] < 0


def test_a_rendering_failure_only_warns(tmp_path, tiny_yaml, capsys, monkeypatch):
    import worldrl.evaluation.episode_video as episode_video

    def no_gl(*args, **kwargs):
        raise RuntimeError("no OpenGL context")

    monkeypatch.setattr(episode_video, "record_real_episode", no_gl)
    out = tmp_path / "run"
    assert main(tiny_args("mpc-cem", out, tiny_yaml)) == 0
    assert "could not record final_episode.mp4 (RuntimeError: no OpenGL context)" in capsys.readouterr().err
    assert (out / "model" / "model.safetensors").is_file() and not (out / "final_episode.mp4").exists()


def test_evaluate_agent_replans_with_other_settings_and_names_bad_input(tmp_path, tiny_yaml, capsys):
    from worldrl.agents.trained_run import load_trained_agent

    out = tmp_path / "run"
    assert main(tiny_args("mpc-cem", out, tiny_yaml)) == 0
    trained = load_trained_agent(out, planner_settings={"horizon": 7, "reward": "task"})
    assert (trained.name, trained.env_id, trained.seed) == ("mpc-cem", "Pendulum-v1", 0)
    config = trained.agent.planner.config
    assert (config.horizon, config.reward, config.num_samples) == (7, "task", 16)  # the rest as saved
    assert trained.agent.act(np.zeros(3, dtype=np.float32)).shape == (1,)
    capsys.readouterr()
    for args, message in [
        ([str(tmp_path / "nowhere")], "does not exist"),
        ([str(out / "checkpoints")], "not a finished train-agent run: no world-model checkpoint"),
        ([str(out), "--planner-option", "horizn=3"], "unknown field(s) 'planner.horizn'"),
        ([str(out), "--planner-option", "horizon"], "must look like key=value"),
    ]:
        assert main(["evaluate-agent", *args, "--episodes", "1"]) == 2
        assert message in capsys.readouterr().err
    video = tmp_path / "again.mp4"
    assert main(["evaluate-agent", str(out), "--episodes", "1", "--video", str(video)]) == 0
    with av.open(str(video)) as container:  # reset + 200 steps of the reloaded agent
        assert sum(1 for _ in container.decode(video=0)) == 201


# --------------------------------------------------------------------------- bad inputs
def _error_of(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--agent": "ppo"}, "OnlineConfig.agent must be a known agent"),
        ({"--env": "Pendulm-v1"}, "unknown env id 'Pendulm-v1'"),
        ({"--env": "CartPole-v1"}, "continuous Box action space"),
        ({"--real-steps": "0"}, "real_steps"),
    ],
)
def test_bad_inputs_are_one_line_errors(change, message, tmp_path, tiny_yaml, capsys):
    args = tiny_args("mpc-cem", tmp_path / "run", tiny_yaml)
    for flag, value in change.items():
        args[args.index(flag) + 1] = value
    code, err = _error_of(args, capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_a_model_trained_for_another_task_is_refused(tmp_path, tiny_yaml, capsys):
    env = gym.make("Pendulum-v1")
    other = TaskSpec(env.observation_space, env.action_space, task_id="MountainCarContinuous-v0")
    build_model("ensemble", {"num_members": 2, "num_elites": 1, "hidden_dims": [8]}, other).save_pretrained(
        str(tmp_path / "other")
    )
    code, err = _error_of(
        tiny_args("mpc-cem", tmp_path / "run", tiny_yaml) + ["--model", str(tmp_path / "other")], capsys
    )
    assert code == 2 and "trained for task 'MountainCarContinuous-v0'" in err and "Pendulum-v1" in err


def test_preset_lookup_and_config_errors(tmp_path):
    assert default_model_config("HalfCheetah-v5").name == "ensemble_halfcheetah.yaml"
    assert default_model_config("InvertedPendulum-v5").name == "ensemble_inverted_pendulum.yaml"
    assert default_model_config("Acrobot-v1") is None
    assert load_model_spec(None, "Acrobot-v1").model["family"] == "ensemble"  # the generic ensemble
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {num_members: 2}\n")
    with pytest.raises(ValueError, match="model.family"):
        load_model_spec(bad, "Pendulum-v1")
    with pytest.raises(ValueError, match="eval_episodes"):
        OnlineConfig(eval_episodes=0)


def test_model_family_picks_its_preset_and_must_agree_with_the_config(tmp_path, tiny_yaml):
    assert load_model_spec(None, "Pendulum-v1", "vrnn").model["family"] == "vrnn"
    assert load_model_spec(None, "Pendulum-v1", "vrnn").source.endswith("vrnn_pendulum.yaml")
    assert load_model_spec(None, "Pendulum-v1", "ensemble").source.endswith("ensemble_pendulum.yaml")
    with pytest.raises(ValueError, match="no packaged vrnn preset for Acrobot-v1"):
        load_model_spec(None, "Acrobot-v1", "vrnn")
    with pytest.raises(ValueError, match="configures model.family 'ensemble', but --model-family is 'vrnn'"):
        load_model_spec(tiny_yaml, "Pendulum-v1", "vrnn")
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        load_model_spec(None, "Pendulum-v1", "nope")


def test_model_options_override_the_model_section_and_cannot_change_the_family(tmp_path, tiny_yaml, capsys):
    plain = load_model_spec(tiny_yaml, "Pendulum-v1")
    spec = load_model_spec(tiny_yaml, "Pendulum-v1", None, {"nll_beta": 0.5, "num_members": 3})
    assert spec.model == {**plain.model, "nll_beta": 0.5, "num_members": 3}
    assert spec.trainer == plain.trainer and "nll_beta=0.5" in spec.source
    assert load_model_spec(None, "Reacher-v5", None, {"nll_beta": 0.5}).model["hidden_dims"] == [200] * 4  # preset
    with pytest.raises(ValueError, match="model_options"):
        OnlineConfig(model_options={"family": "vrnn"})
    out = tmp_path / "run"
    args = tiny_args("mpc-cem", out, tiny_yaml, real_steps=250) + ["--model-option", "nll_beta=0.5"]
    assert main(args) == 0
    assert json.loads((out / "model" / "config.json").read_text())["nll_beta"] == 0.5  # the trained model has it
    capsys.readouterr()
    code, err = _error_of(tiny_args("mpc-cem", tmp_path / "bad", tiny_yaml) + ["--model-option", "nll_beta=2"], capsys)
    assert code == 2 and "nll_beta" in err and len(err.strip().splitlines()) == 1


VRNN_YAML = """\
data: {window: 4}
model: {family: vrnn, latent_dim: 4, hidden_dim: 32, context_dim: 16, max_components: 4, num_latents: 2,
        num_heads: 2, num_slots: 3, slot_dim: 8, token_dim: 8, context_window: 2}
trainer: {batch_size: 16, lr: 1.0e-3}
"""


@pytest.mark.parametrize("agent", ["dreamer", "mpc-ac"])
def test_any_agent_runs_online_on_the_vrnn_latent_state(agent, tmp_path, capsys):
    """``--model-family vrnn``: the loop fits the recurrent model and the agent imagines in its latent state."""
    config = tmp_path / "vrnn.yaml"
    config.write_text(VRNN_YAML)
    out = tmp_path / agent
    args = tiny_args(agent, out, config) + ["--model-family", "vrnn", "--no-video"]
    assert main(args) == 0
    model = load_pretrained(out / "model")
    assert type(model).__name__ == "DPGMMVRNNWorldModel" and model.capabilities.recurrent
    rows = [json.loads(line) for line in (out / "iterations.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["dreamer/actor_loss"]) for r in rows)  # it learned in the vrnn's imagination
    assert "dreamer/uncertainty" not in rows[-1]  # the vrnn has no ensemble disagreement: only the reward range


# --------------------------------------------------------------------------- divergence
def test_imagination_check_catches_a_diverged_model():
    env = gym.make("Pendulum-v1")
    task = TaskSpec(env.observation_space, env.action_space, task_id="Pendulum-v1")
    model = build_model("ensemble", {"num_members": 2, "num_elites": 1, "hidden_dims": [8]}, task)
    starts = np.zeros((4, 3), np.float32)
    check_imagination(model, starts, env.action_space)  # a fresh model is finite
    with torch.no_grad():
        next(model.net.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="diverged"):
        check_imagination(model, starts, env.action_space)


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, tiny_yaml):
    config = OnlineConfig(
        agent="mpc-cem",
        env_id="Pendulum-v1",
        real_steps=200,
        steps_per_iteration=100,
        initial_random_steps=200,
        model_config=str(tiny_yaml),
        model_steps=5,
        output_dir=str(tmp_path / "run"),
        device="cpu",
        agent_options={"num_samples": 8, "num_elites": 2, "horizon": 3, "iterations": 1},
        save_dataset=False,
    )
    run = OnlineRun(config)
    run.iteration(0, 100)
    run.save_checkpoint(0)
    with torch.no_grad():
        for p in run.model.parameters():
            p.fill_(float("nan"))  # what an exploding fit leaves behind
    with pytest.raises(OnlineTrainingError, match="last good checkpoint: .*last_good"):
        run.iteration(1, 100)
    kept = load_pretrained(run.checkpoint / "model")
    assert all(torch.isfinite(p).all() for p in kept.parameters())


# --------------------------------------------------------------------------- benchmark smoke run
def _benchmark_module(monkeypatch):
    spec = importlib.util.spec_from_file_location("benchmark_control", REPO / "scripts" / "benchmark_control.py")
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "benchmark_control", benchmark)  # dataclasses look their module up there
    spec.loader.exec_module(benchmark)
    return benchmark


def test_benchmark_budget_sets_mpc_search_and_variants_keep_their_rules(tmp_path, monkeypatch):
    import argparse

    benchmark = _benchmark_module(monkeypatch)
    seen = []

    class Result:
        final_returns, seconds, cpu_seconds = [1.0], 0.0, 0.0

    monkeypatch.setattr(benchmark, "train_agent", lambda config: seen.append(config) or Result())
    task = benchmark.TASKS["Reacher-v5"]
    for budget in ("cpu", "gpu"):
        args = argparse.Namespace(quick=False, budget=budget, device="cpu", out=tmp_path)
        benchmark.run_agent(task, "mpc-cem+rules", 0, 100, args)
    cpu, gpu = (config.agent_options for config in seen)
    assert cpu == {"reward": "task", "termination": "task"}  # the CPU run keeps the loop's defaults
    assert gpu == {**benchmark.GPU_AGENT_OPTIONS["mpc-cem"], "reward": "task", "termination": "task"}
    assert all(config.agent == "mpc-cem" and config.eval_episodes == 10 for config in seen)
    assert all(config.model_options == {"nll_beta": 0.5} for config in seen)  # the task's model settings


def test_benchmark_quick_rewrites_only_its_section(tmp_path, monkeypatch):
    benchmark = _benchmark_module(monkeypatch)
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro kept\n\n<!-- control:start -->\nold\n<!-- control:end -->\n\ntail kept\n")
    assert (
        benchmark.main(
            ["--quick", "--agents", "mpc-cem", "--doc", str(doc), "--out", str(tmp_path / "runs"), "--device", "cpu"]
        )
        == 0
    )
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nintro kept") and text.rstrip().endswith("tail kept")
    section = text.split("<!-- control:start -->")[1].split("<!-- control:end -->")[0]
    assert (
        "old" not in section
        and "| Pendulum-v1 | mpc-cem | 200 |" in section
        and "| Pendulum-v1 | SAC | 200 |" in section
    )
    assert "smoke run" in section and "not run" in section  # the 10x-SAC target is skipped in --quick, and says so
    assert (tmp_path / "control_returns.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "control_curves.png").read_bytes()[:4] == b"\x89PNG"
    # --report-only rebuilds the table from finished runs: seed 0 is read back, seed 1 never ran and is left out
    finished = tmp_path / "runs" / "Pendulum-v1" / "mpc-cem" / "seed0" / "final.json"
    stamp = finished.stat().st_mtime_ns
    # budget honesty: CPU seconds recorded per run; gain over random actions per real step and per CPU hour
    assert json.loads(finished.read_text())["cpu_seconds"] > 0
    assert "| Pendulum-v1 | random actions | 200 |" in section and "gain / CPU hour" in section
    row = next(line for line in section.splitlines() if line.startswith("| Pendulum-v1 | mpc-cem |"))
    assert all(cell.strip() != "n/a" for cell in row.split("|")[8:11])
    assert (
        benchmark.main(
            [
                "--quick",
                "--report-only",
                "--agents",
                "mpc-cem",
                "--seeds",
                "0",
                "1",
                "--doc",
                str(doc),
                "--out",
                str(tmp_path / "runs"),
            ]
        )
        == 0
    )
    section = doc.read_text().split("<!-- control:start -->")[1].split("<!-- control:end -->")[0]
    assert "| Pendulum-v1 | mpc-cem | 200 | 1 (0) |" in section and finished.stat().st_mtime_ns == stamp
    assert not (tmp_path / "runs" / "Pendulum-v1" / "mpc-cem" / "seed1").exists()
    # --section keeps a second table (runs of another session) beside the first, with its own plots
    first = doc.read_text().split("<!-- control:start -->")[1].split("<!-- control:end -->")[0]
    argv = ["--quick", "--report-only", "--agents", "mpc-cem", "--seeds", "0", "--section", "control-more"]
    assert benchmark.main([*argv, "--doc", str(doc), "--out", str(tmp_path / "runs")]) == 0
    text = doc.read_text()
    assert text.split("<!-- control:start -->")[1].split("<!-- control:end -->")[0] == first
    second = text.split("<!-- control-more:start -->")[1].split("<!-- control-more:end -->")[0]
    assert "vs SAC at equal real steps (Pendulum-v1)" in second and "| Pendulum-v1 | mpc-cem | 200 | 1 (0) |" in second
    assert "control-more_returns.png" in second and (tmp_path / "control-more_curves.png").is_file()


def test_benchmark_table_reports_seeds_apart_and_the_pendulum_threshold(tmp_path, monkeypatch):
    import argparse

    benchmark = _benchmark_module(monkeypatch)
    task = "InvertedPendulum-v5"

    def entry(method, per_seed, cpu=360.0):
        e = benchmark.Entry(task, method, 5000)
        for seed, returns in per_seed.items():
            e.per_seed[seed], e.returns = returns, e.returns + returns
            e.seeds.append(seed)
            e.seconds.append(1.0)
            e.cpu_seconds.append(cpu)
        return e

    dreamer = entry("dreamer", {0: [1000.0, 1000.0], 1: [400.0, 600.0], 2: [950.0, 950.0]})
    sac = entry("SAC", {0: [90.0, 96.0], 1: [100.0, 100.0], 2: [80.0, 120.0]})
    rules = entry("mpc-cem+rules", {0: [700.0, 700.0]})
    random = entry(benchmark.RANDOM, {0: [4.0, 4.0], 1: [4.0, 4.0], 2: [4.0, 4.0]}, cpu=0.0)
    for seed, curve in {
        0: [(1000, 50.0), (3000, 1000.0), (5000, 1000.0)],
        1: [(1000, 20.0), (5000, 500.0)],
        2: [(2000, 920.0), (5000, 950.0)],
    }.items():
        run = tmp_path / task / "dreamer" / f"seed{seed}"
        run.mkdir(parents=True)
        rows = "\n".join(f"{steps},{mean}" for steps, mean in curve)
        (run / "learning_curve.csv").write_text(f"real_steps,mean\n{rows}\n")
    entries = [dreamer, rules, sac, random]
    targets = benchmark.check_targets(entries, ["dreamer", "mpc-cem+rules"], False, tmp_path)
    threshold = next(t for t in targets if "at or above 900" in t[0])
    assert threshold[1] == "missed" and "2 of 3 seeds" in threshold[2] and "seed 1: never, final 500.0" in threshold[2]
    assert "seed 0: first at 3000 steps" in threshold[2]
    versus = next(t for t in targets if "best learned-only" in t[0])
    assert versus[1] == "met" and "ahead on 3 of 3 seeds" in versus[2]
    args = argparse.Namespace(budget="cpu", quick=False)
    learned = benchmark.result_table([dreamer, sac, random], entries, args)
    row = next(line for line in learned if "| dreamer |" in line)
    # per-seed means, their median [min, max], CPU hours (360 s = 0.1 h), gain over random per 1k steps
    assert "| 1000.0, 500.0, 950.0 | 950.0 [500.0, 1000.0] |" in row and "| 0.100 |" in row
    assert f"| {(np.mean([1000, 1000, 400, 600, 950, 950]) - 4.0) / 5:.1f} |" in row
    assert "1 (0) of 3 planned" in benchmark.result_table([rules], entries, args)[2]


def test_agent_options_are_yaml_values():
    from worldrl.cli.train_agent import parse_key_values

    assert parse_key_values(["learning_rate=1e-3", "net_arch=[8, 8]", "ent_coef=auto"]) == {
        "learning_rate": 0.001,
        "net_arch": [8, 8],
        "ent_coef": "auto",
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_key_values(["horizon"])


def control_details():
    """``scripts/control_details.py`` as a module (scripts are not a package)."""
    from _scripts import load_script

    return load_script("control_details")


def test_control_details_phase_table_takes_medians_and_totals_per_run(tmp_path):
    details = control_details()
    run = tmp_path / "Pendulum-v1" / "mpc-cem" / "seed0"
    run.mkdir(parents=True)
    records = [{"time/collect_s": c, "time/fit_s": 2.0} for c in (1.0, 3.0, 8.0)]
    records[-1]["time/eval_s"] = 5.0
    (run / "iterations.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    [(task, method, seed, medians, totals)] = details.phase_rows(tmp_path)
    assert (task, method, seed) == ("Pendulum-v1", "mpc-cem", "seed0")
    assert medians == [3.0, 2.0, 0.0, 5.0] and totals == [12.0, 6.0, 0.0, 5.0]
    assert "| Pendulum-v1 | mpc-cem | seed0 | 3.0 | 2.0 | 0.0 | 5.0 | 12/6/0/5 |" in details.phases_table(
        details.phase_rows(tmp_path)
    )


def test_control_details_sets_imagined_rewards_beside_real_returns(tmp_path):
    details = control_details()
    records = [
        {"dreamer/imagined_reward": -1.0, "dreamer/uncertainty": 2.0},
        {"dreamer/imagined_reward": -3.0, "dreamer/uncertainty": 4.0, "time/eval_s": 1.0},
        {"dreamer/imagined_reward": 0.5, "time/eval_s": 1.0},
        {"dreamer/imagined_reward": 0.9},
    ]
    (tmp_path / "iterations.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (tmp_path / "learning_curve.csv").write_text("real_steps,mean\n500,12.0\n750,30.0\n")
    rows = details.imagination_rows(tmp_path)
    assert rows[:2] == [(500, 12.0, -2.0, 3.0), (750, 30.0, 0.5, pytest.approx(math.nan, nan_ok=True))]
    assert rows[2][0] is None and rows[2][2] == 0.9  # the iterations after the last evaluation of a live run
    assert f"| {tmp_path.name} | 500 | 12.0 | -2.00 | 3.00 |" in details.imagination_table([tmp_path])
    assert details.plot_runs(tmp_path / "curves.png", [tmp_path]).read_bytes()[:4] == b"\x89PNG"


def test_control_details_planner_check_plans_with_a_trained_dreamers_parts(tmp_path, tiny_yaml):
    details = control_details()
    out = tmp_path / "dreamer"
    assert main(tiny_args("dreamer", out, tiny_yaml) + ["--no-video"]) == 0
    rows = details.planner_check(out, episodes=1, max_steps=5)
    names = [name for name, _, _ in rows]
    assert names == ["actor alone (the dreamer policy)", *details.PLANNER_CHECKS]
    returns = {name: ret for name, ret, _ in rows}
    assert all(-5 * 16.3 <= r <= 0 for r in returns.values())  # 5 Pendulum steps, each reward in [-16.3, 0]
    shares = {name: share for name, _, share in rows}
    assert 0.0 <= shares["mpc-ac planner (value + prior)"] <= 1.0 and math.isnan(shares["no terminal value"])
    assert main(tiny_args("mpc-cem", tmp_path / "cem", tiny_yaml) + ["--no-video"]) == 0
    with pytest.raises(SystemExit, match="needs a dreamer run"):
        details.planner_check(tmp_path / "cem", episodes=1, max_steps=5)


def test_control_details_scale_check_scores_scaled_actions_on_the_actors_objective(tmp_path, tiny_yaml):
    details = control_details()
    from worldrl.agents.trained_run import load_trained_agent
    from worldrl.evaluation import evaluate_on_real_env

    out = tmp_path / "dreamer"
    assert main(tiny_args("dreamer", out, tiny_yaml) + ["--no-video"]) == 0
    rows = details.scale_check(out, episodes=1, scales=(1.0, 0.0))
    assert [scale for scale, *_ in rows] == [1.0, 0.0]
    trained = load_trained_agent(out)
    own = evaluate_on_real_env(lambda o: trained.agent.act(o, deterministic=True), "Pendulum-v1", 1, 10_000)
    assert rows[0][4] == pytest.approx(float(np.mean(own.returns)))  # scale 1 is the actor itself
    zero = evaluate_on_real_env(lambda o: np.zeros((len(o), 1), dtype=np.float32), "Pendulum-v1", 1, 10_000)
    assert rows[1][4] == pytest.approx(float(np.mean(zero.returns)))  # scale 0 never pushes
    assert all(math.isfinite(v) for row in rows for v in row) and rows[0][3] != rows[1][3]
    import gymnasium as gym

    first = torch.as_tensor(gym.make("Pendulum-v1").reset(seed=10_000)[0][None], dtype=torch.float32)
    returns = details.imagined_lambda_returns(trained.agent, trained.model, first, 1.0)
    assert returns.shape == (1, trained.agent.config.horizon)
    assert rows[0][1] == pytest.approx(float(returns[0, 0]), rel=1e-5)  # the start state's own return
    assert rows[0][2] == pytest.approx(float(returns[0].sum()), rel=1e-5)  # the sum the actor's loss maximises
    assert "| 0 |" in details.scale_table(rows)
    assert main(tiny_args("mpc-cem", tmp_path / "cem", tiny_yaml) + ["--no-video"]) == 0
    with pytest.raises(SystemExit, match="needs a dreamer run"):
        details.scale_check(tmp_path / "cem", episodes=1)


def test_control_details_effort_splits_reachers_return_into_distance_and_control(tmp_path, tiny_yaml):
    details = control_details()
    dist = np.array([[-0.2, -0.1, -0.05], [-0.4, -0.2, -0.1]])
    ctrl = np.array([[-1.0, -0.1, 0.0], [-0.5, -0.5, -0.2]])
    summary = details.effort_summary(dist, ctrl)
    assert summary["return"] == pytest.approx((-1.45 - 1.9) / 2)  # per-episode sums, averaged
    assert summary["distance part"] == pytest.approx(-0.525) and summary["control part"] == pytest.approx(-1.15)
    assert summary["return"] == pytest.approx(summary["distance part"] + summary["control part"])
    assert summary["control in the first 2 steps"] == pytest.approx(-1.05)
    assert summary["final distance (m)"] == pytest.approx(0.075)
    assert "| run | return | distance part |" in details.effort_table([("r", summary)])
    out = tmp_path / "cem"
    assert main(tiny_args("mpc-cem", out, tiny_yaml) + ["--no-video"]) == 0
    with pytest.raises(SystemExit, match="Reacher-v5's reward terms"):
        details.effort_check([out], episodes=1)


def test_a_diverged_fit_is_reported_with_the_loops_checkpoint(tmp_path, tiny_yaml, monkeypatch):
    """The loop catches the trainer's typed error and names its own checkpoint, not the fit's scratch one."""
    from worldrl.loops import online
    from worldrl.training import TrainingDivergedError

    def diverging_fit(*_args, **_kwargs):
        raise TrainingDivergedError("training loss is nan at step 3", tmp_path / "scratch")

    config = OnlineConfig(
        agent="mpc-cem",
        env_id="Pendulum-v1",
        real_steps=100,
        steps_per_iteration=100,
        model_config=str(tiny_yaml),
        output_dir=str(tmp_path / "run"),
        device="cpu",
        save_dataset=False,
    )
    run = OnlineRun(config)
    monkeypatch.setattr(online, "fit_model", diverging_fit)
    with pytest.raises(OnlineTrainingError, match="loss is nan at step 3; last good checkpoint: none") as info:
        run.iteration(0, 100)
    assert "scratch" not in str(info.value)
