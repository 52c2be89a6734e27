"""The worldrl demo (`make demo`): record -> train -> imagine vs real -> plan in the real env.

Reads top to bottom; every step calls the library, the same functions the CLI uses. Offline, CPU only,
about 5 minutes on 2 cores. Outputs go to outputs/demo/ (override with --out).

1. Record a MuJoCo dataset with camera frames (InvertedPendulum-v5, 64x64 mp4) in LeRobot v3.0 format.
2. Record Pendulum-v1 rollouts and train a probabilistic ensemble world model on them.
3. Imagine a rollout in `gym.make("WorldModel-v0")` side by side with the real env under the same actions:
   a PNG of imagined vs real trajectories and the open-loop errors.
4. An MPC agent that plans in the learned model acts in the REAL env: its return next to a random policy's.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import worldrl  # noqa: E402,F401  (registers WorldModel-v0)
from worldrl.agents.mpc import MPCAgent  # noqa: E402
from worldrl.data import LeRobotDatasetReader  # noqa: E402
from worldrl.data.collect import CollectConfig, collect  # noqa: E402
from worldrl.evaluation import evaluate_on_real_env  # noqa: E402
from worldrl.evaluation.episode_video import record_real_episode  # noqa: E402
from worldrl.evaluation.plots import plot_learning_curves  # noqa: E402
from worldrl.evaluation.side_by_side import imagine_vs_real, plot_imagined_vs_real  # noqa: E402
from worldrl.models import load_pretrained  # noqa: E402
from worldrl.training.run import load_config, train_from_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
console = Console()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "demo", help="where everything is written")
    parser.add_argument("--train-steps", type=int, default=1200, help="world-model updates (the preset's default)")
    parser.add_argument("--episodes", type=int, default=60, help="Pendulum-v1 episodes recorded for training")
    parser.add_argument("--eval-episodes", type=int, default=3, help="real-env episodes per policy in step 4")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def step_header(i: int, text: str) -> None:
    console.rule(f"[bold]Step {i}/4[/bold]  {text}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()

    # 1. A MuJoCo dataset with camera frames, in the LeRobot v3.0 on-disk format.
    step_header(1, "record InvertedPendulum-v5 with 64x64 camera frames (LeRobot v3.0, AV1 mp4)")
    # A noisy PD controller keeps the pole up for a while (random actions drop it in ~5 steps).
    pixels = collect(
        CollectConfig(
            env_id="InvertedPendulum-v5",
            out=str(args.out / "datasets" / "inverted_pendulum_pixels"),
            episodes=6,
            policy="scripted",
            epsilon=0.3,
            max_episode_steps=100,
            num_envs=2,
            pixels=True,
            image_size=64,
            seed=args.seed,
            overwrite=True,
        )
    )
    reader = LeRobotDatasetReader(pixels.out)
    console.print(
        f"read back: {reader.num_episodes} episodes, {reader.num_frames} frames, cameras {reader.camera_keys}"
    )

    # 2. Record Pendulum-v1 and train the ensemble (configs/ensemble_pendulum.yaml, its collect block records).
    step_header(2, "record Pendulum-v1 and train a probabilistic ensemble world model")
    run_dir = args.out / "ensemble_pendulum"
    cfg = load_config(
        REPO / "configs" / "ensemble_pendulum.yaml",
        [
            f"output_dir={run_dir}",
            f"data.root={args.out / 'datasets' / 'pendulum'}",
            f"data.collect.episodes={args.episodes}",
            "data.collect.overwrite=true",
            f"trainer.max_steps={args.train_steps}",
            f"seed={args.seed}",
        ],
    )
    _fresh_run_dir(run_dir)
    result = train_from_config(cfg)
    plot_learning_curves(result.metrics_path, run_dir / "learning_curves.png")
    model = load_pretrained(result.model_path)

    # 3. The learned simulator next to the real env, same start state, same actions.
    step_header(3, 'imagine in gym.make("WorldModel-v0") next to the real Pendulum-v1 under the same actions')
    comparison = imagine_vs_real(model, "Pendulum-v1", horizon=50, num_rollouts=8, seed=args.seed + 1)
    png = plot_imagined_vs_real(comparison, args.out / "imagined_vs_real.png")
    errors = Table(title="open-loop error of the learned simulator (8 rollouts, real actions)")
    errors.add_column("horizon", justify="right")
    errors.add_column("RMSE per obs dim", justify="right")
    errors.add_column("RMSE / real std", justify="right")
    errors.add_column("reward RMSE", justify="right")
    for h in (1, 10, 50):
        row = comparison.errors_at(h)
        errors.add_row(str(h), np.array2string(row.rmse, precision=3), f"{row.nrmse:.3f}", f"{row.reward_rmse:.3f}")
    console.print(errors)
    console.print(f"plot: {png}")

    # 4. Plan in imagination, act in the real env.
    step_header(4, "an MPC agent plans in the learned model and acts in the REAL Pendulum-v1")
    agent = MPCAgent(model, planner="cem", horizon=15, num_samples=256, num_elites=25, iterations=4, seed=args.seed)
    mpc = evaluate_on_real_env(
        agent.act, "Pendulum-v1", episodes=args.eval_episodes, seed=100 + args.seed, progress=True
    )
    space = gym.make("Pendulum-v1").action_space
    space.seed(args.seed)
    rand = evaluate_on_real_env(
        lambda obs: np.stack([space.sample() for _ in range(len(obs))]) if np.ndim(obs) > 1 else space.sample(),
        "Pendulum-v1",
        episodes=args.eval_episodes,
        seed=100 + args.seed,
    )
    returns = Table(title=f"real Pendulum-v1 return over {args.eval_episodes} episodes (higher is better)")
    for col in ("policy", "mean", "95% CI"):
        returns.add_column(col)
    for name, stats in (("MPC-CEM in the learned model", mpc), ("random", rand)):
        returns.add_row(name, f"{stats.mean:.1f}", f"[{stats.ci95_low:.1f}, {stats.ci95_high:.1f}]")
    console.print(returns)
    agent.reset()
    video = record_real_episode(
        agent.act, "Pendulum-v1", args.out / "mpc_real_episode.mp4", seed=100 + args.seed, progress=True
    )
    console.print(f"one real episode of the MPC agent (return {video.episode_return:.1f}): {video.path}")

    console.rule("[bold]Summary")
    console.print(f"dataset with frames: {pixels.out}")
    console.print(f"world model:         {result.model_path}  (gym.make('WorldModel-v0', model=...) loads it)")
    console.print(f"imagined vs real:    {png}")
    console.print(f"MPC in the real env: {video.path}")
    console.print(
        f"MPC return {mpc.mean:.1f} vs random {rand.mean:.1f}; finished in {time.perf_counter() - started:.0f} s"
    )


def _fresh_run_dir(run_dir: Path) -> None:
    """The demo always retrains from scratch; the trainer refuses to silently reuse a run directory."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
