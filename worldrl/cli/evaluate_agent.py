"""``worldrl evaluate-agent RUN_DIR``: the saved agent of a ``train-agent`` run, on the REAL env again.

By default it repeats the run's own final evaluation (seed + 10000, all episodes in parallel env copies), so the
number matches ``learning_curve.csv``. ``--planner-option horizon=25`` re-plans a trained MPC agent with other
settings on the same world model (what the model knows vs how it is searched); ``--video`` records an episode.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worldrl.agents.trained_run import TrainedAgent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="output directory of a train-agent run (holds model/ and agent/)")
    parser.add_argument("--episodes", type=int, default=5, help="real episodes (train-agent's default: 5)")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="first episode's seed (default: the run's seed + 10000, as its own evaluations)",
    )
    parser.add_argument(
        "--planner-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="MPC planner setting to override (repeatable, YAML value), e.g. horizon=25",
    )
    parser.add_argument("--device", default="cpu", help="torch device for model and agent")
    parser.add_argument("--json", default=None, help="also write the returns and settings to this JSON file")
    parser.add_argument("--video", default=None, help="record the first episode to this .mp4")


def run(args: argparse.Namespace) -> int:
    from worldrl.agents.trained_run import load_trained_agent
    from worldrl.cli.train_agent import parse_key_values
    from worldrl.evaluation import evaluate_on_real_env

    trained = load_trained_agent(
        args.run_dir, device=args.device, planner_settings=parse_key_values(args.planner_option, "--planner-option")
    )
    seed = trained.seed + 10_000 if args.seed is None else args.seed
    stats = evaluate_on_real_env(
        lambda obs: trained.agent.act(obs, deterministic=True),
        trained.env_id,
        episodes=args.episodes,
        seed=seed,
        num_envs=args.episodes,
        progress=True,
    )
    video = _record(trained, args.video, seed) if args.video else None
    settings = trained.agent.settings() if hasattr(trained.agent, "settings") else {"agent": trained.name}
    print(f"{trained.name} from {args.run_dir}: {stats}" + (f"; video {video}" if video else ""))
    if args.json:
        from worldrl.io import atomic_write_bytes

        report = {"run_dir": str(args.run_dir), "agent": settings, "seed": seed, **stats.to_dict()}
        atomic_write_bytes(Path(args.json), json.dumps(report, indent=2).encode())
    return 0


def _record(trained: TrainedAgent, path: str, seed: int) -> Path:
    from worldrl.evaluation.episode_video import record_real_episode

    trained.agent.reset()
    return record_real_episode(
        lambda obs: trained.agent.act(obs, deterministic=True), trained.env_id, path, seed=seed, progress=True
    ).path
