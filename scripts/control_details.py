"""The details behind the notes on the control benchmark, from finished ``benchmark_control.py`` runs.

    python scripts/control_details.py runs/benchmark_control                    # time per phase of each run
    python scripts/control_details.py runs/benchmark_control --zero-action Reacher-v5 --seeds 0 1 2 --episodes 10
    python scripts/control_details.py runs/benchmark_control \\
        --strip runs/benchmark_control/HalfCheetah-v5/mpc-cem/seed0 docs/control_halfcheetah_final_episode.png
    python scripts/control_details.py runs/benchmark_control --imagination runs/dreamer_ip/guarded_s0 RUN2 ...
    python scripts/control_details.py runs/benchmark_control --curves docs/control_guards.png RUN1 RUN2 ...

The phase table reads each run's ``iterations.jsonl`` (one row per 250-step iteration of the online loop).
``--zero-action`` evaluates the all-zero action on the same real starts the loop evaluates on (seed + 10000).
``--strip`` draws frames of a run's ``final_episode.mp4`` (the first final-evaluation episode).
``--imagination`` sets what an imagination learner believed beside what it got: per real-env evaluation, the
mean imagined reward per step and the ensemble disagreement of the updates since the previous evaluation.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
from pathlib import Path

import numpy as np

PHASES = ("collect", "fit", "improve", "eval")
STRIP_STEPS = (0, 25, 50, 100, 500, 1000)


def phase_rows(root: Path) -> list[tuple[str, str, str, list[float], list[float]]]:
    """``(task, method, seed, median seconds per phase, total seconds per phase)`` for every run under ``root``."""
    rows = []
    for path in sorted(root.glob("*/*/seed*/iterations.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        medians, totals = [], []
        for phase in PHASES:
            values = [r[f"time/{phase}_s"] for r in records if f"time/{phase}_s" in r]
            medians.append(statistics.median(values) if values else 0.0)
            totals.append(sum(values))
        rows.append((path.parts[-4], path.parts[-3], path.parts[-2], medians, totals))
    return rows


def phases_table(rows: list[tuple[str, str, str, list[float], list[float]]]) -> str:
    lines = [
        "| task | method | seed | collect s/iter | fit s/iter | improve s/iter | eval s/eval | "
        "total collect/fit/improve/eval (s) |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for task, method, seed, medians, totals in rows:
        lines.append(
            f"| {task} | {method} | {seed} | "
            + " | ".join(f"{m:.1f}" for m in medians)
            + " | "
            + "/".join(f"{t:.0f}" for t in totals)
            + " |"
        )
    return "\n".join(lines)


def imagination_rows(run_dir: Path) -> list[tuple[int | None, float, float, float]]:
    """``(real steps, real return, imagined reward per step, disagreement)`` at each evaluation of a run so far:
    the learner's metrics averaged over the iterations since the previous evaluation (NaN where not logged); a
    run still going adds a row ``(None, nan, ...)`` for the iterations after its last evaluation."""
    import csv

    records = [json.loads(line) for line in (run_dir / "iterations.jsonl").read_text().splitlines() if line.strip()]
    curve_path = run_dir / "learning_curve.csv"
    curve = []
    if curve_path.is_file():
        with curve_path.open() as f:
            curve = [(int(r["real_steps"]), float(r["mean"])) for r in csv.DictReader(f)]
    ends = [i + 1 for i, r in enumerate(records) if "time/eval_s" in r][: len(curve)]
    rows, start = [], 0
    for (steps, real), end in zip(curve, ends):
        window = records[start:end]
        rows.append(
            (steps, real, window_mean(window, "dreamer/imagined_reward"), window_mean(window, "dreamer/uncertainty"))
        )
        start = end
    if start < len(records):
        window = records[start:]
        rows.append(
            (
                None,
                float("nan"),
                window_mean(window, "dreamer/imagined_reward"),
                window_mean(window, "dreamer/uncertainty"),
            )
        )
    return rows


def window_mean(records: list[dict], key: str) -> float:
    values = [r[key] for r in records if key in r]
    return float(np.mean(values)) if values else float("nan")


def imagination_table(runs: list[Path]) -> str:
    lines = [
        "| run | real steps | real return | imagined reward / step | disagreement |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        for steps, real, imagined, doubt in imagination_rows(run):
            when = "since last eval" if steps is None else str(steps)
            lines.append(f"| {run.name} | {when} | {real:.1f} | {imagined:.2f} | {doubt:.2f} |")
    return "\n".join(lines)


def plot_runs(out: Path, runs: list[Path]) -> Path:
    """Real return vs real steps of the given runs (their ``learning_curve.csv`` so far), one line each."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from worldrl.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for run in runs:
        with (run / "learning_curve.csv").open() as f:
            rows = list(csv.DictReader(f))
        steps = [int(r["real_steps"]) for r in rows]
        ax.plot(steps, [float(r["mean"]) for r in rows], marker="o", ms=3, label=f"{run.parent.name}/{run.name}")
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("real return (eval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def zero_action_returns(env_id: str, seeds: list[int], episodes: int) -> None:
    import gymnasium as gym

    from worldrl.evaluation import evaluate_on_real_env

    action_dim = gym.make(env_id).action_space.shape[0]
    for seed in seeds:
        result = evaluate_on_real_env(
            lambda obs: np.zeros((obs.shape[0], action_dim), np.float32),
            env_id,
            episodes=episodes,
            seed=seed + 10_000,
            num_envs=episodes,
        )
        print(f"zero action, seed {seed}: {result}")


def episode_strip(run_dir: Path, out: Path) -> Path:
    """Frames ``STRIP_STEPS`` of the run's first final-evaluation episode, titled with that episode's return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from worldrl.data.video import decode_frames, probe_video_info
    from worldrl.io import atomic_write_bytes

    video = run_dir / "final_episode.mp4"
    fps = probe_video_info(video)["video.fps"]
    frames = decode_frames(video, np.array(STRIP_STEPS) / fps, tolerance_s=0.5 / fps)
    first_return = json.loads((run_dir / "final.json").read_text())["returns"][0]
    fig, axes = plt.subplots(1, len(STRIP_STEPS), figsize=(12, 2.4))
    for ax, step, frame in zip(axes, STRIP_STEPS, frames):
        ax.imshow(frame)
        ax.set_title(f"step {step}", fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"{run_dir.parts[-3]}, {run_dir.parts[-2]} {run_dir.parts[-1]}: first final-evaluation episode "
        f"(return {first_return:.1f})",
        fontsize=9,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="--out of benchmark_control.py")
    parser.add_argument("--zero-action", metavar="ENV_ID", help="also evaluate the zero action on this task")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--strip", nargs=2, type=Path, metavar=("RUN_DIR", "PNG"))
    parser.add_argument("--imagination", nargs="+", type=Path, metavar="RUN_DIR", help="imagined vs real, per eval")
    parser.add_argument("--curves", nargs="+", type=Path, metavar="PNG RUN_DIR", help="plot these runs' curves")
    args = parser.parse_args()
    print(phases_table(phase_rows(args.root)))
    if args.curves:
        print(f"wrote {plot_runs(args.curves[0], args.curves[1:])}")
    if args.imagination:
        print(imagination_table(args.imagination))
    if args.zero_action:
        zero_action_returns(args.zero_action, args.seeds, args.episodes)
    if args.strip:
        print(f"wrote {episode_strip(*args.strip)}")


if __name__ == "__main__":
    main()
