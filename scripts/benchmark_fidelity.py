"""Open-loop fidelity of each world-model family on the same recorded data, same held-out episodes.

For every task: record one dataset (the first preset's `data.collect` recipe), train each family's preset on
it, and measure open-loop error on the same validation episodes at horizons 1, 10 and 50 (normalised RMSE
per observation dimension, reward RMSE, termination accuracy; frame MSE/PSNR for pixel models). Writes the
table into the `fidelity` section of docs/benchmarks.md and nRMSE-vs-horizon plots next to it.

    .venv/bin/python scripts/benchmark_fidelity.py                      # all tasks, preset budgets
    .venv/bin/python scripts/benchmark_fidelity.py --tasks pendulum --steps-scale 0.25
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

from rich.console import Console  # noqa: E402

from worldrl.data import LeRobotDatasetReader, split_episodes  # noqa: E402
from worldrl.evaluation import compare_reports, evaluate_fidelity  # noqa: E402
from worldrl.evaluation.plots import plot_nrmse_curves  # noqa: E402
from worldrl.evaluation.report import describe_machine, update_doc_section  # noqa: E402
from worldrl.models import load_pretrained  # noqa: E402
from worldrl.training.run import load_config, train_from_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
console = Console()


@dataclass(frozen=True)
class Task:
    slug: str
    title: str
    presets: dict[str, str]
    """family -> preset; the first preset's data.collect block records the shared dataset."""


TASKS = {
    t.slug: t
    for t in (
        Task("pendulum", "Pendulum-v1 (state)",
             {"ensemble": "configs/ensemble_pendulum.yaml", "vrnn": "configs/vrnn_pendulum.yaml"}),
        Task("inverted_pendulum", "InvertedPendulum-v5 (state)",
             {"ensemble": "configs/ensemble_inverted_pendulum.yaml", "vrnn": "configs/vrnn_inverted_pendulum.yaml"}),
        Task("halfcheetah", "HalfCheetah-v5 (state)",
             {"ensemble": "configs/ensemble_halfcheetah.yaml", "vrnn": "configs/vrnn_halfcheetah.yaml"}),
        # The ensemble is a state-vector model (PETS/MBPO); on pixels only the vrnn family competes.
        Task("inverted_pendulum_pixels", "InvertedPendulum-v5 (64x64 pixels)",
             {"vrnn": "configs/vrnn_inverted_pendulum_pixels.yaml"}),
    )
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every preset's trainer.max_steps")
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--work", type=Path, default=REPO / "outputs" / "benchmark_fidelity")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def train(preset: str, run_dir: Path, data_root: Path, args: argparse.Namespace):
    base = load_config(REPO / preset)
    steps = max(1, int(base["trainer"]["max_steps"] * args.steps_scale))
    cfg = load_config(
        REPO / preset,
        [f"output_dir={run_dir}", f"data.root={data_root}", f"trainer.max_steps={steps}", f"seed={args.seed}"],
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return cfg, train_from_config(cfg)


INTRO = (
    "## World-model fidelity: families side by side\n\n"
    "One training run per family and task; each family sees the same recorded dataset and is scored on the same "
    "held-out episodes (10% of episodes, split by seed). Open loop: the model observes the start frame and imagines "
    "under the recorded actions. nRMSE = RMSE / dataset std, averaged over dimensions. Each task below names the "
    "command that produced it (`--tasks` re-runs one task and rewrites only its part)."
)


def write_task_section(args: argparse.Namespace, slug: str, text: str) -> None:
    command = "python scripts/benchmark_fidelity.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    update_doc_section(args.doc, "fidelity", INTRO)
    body = f"{text}\nCommand: `{command.strip()}` (seed {args.seed})  \nMachine: {describe_machine()}\n"
    update_doc_section(args.doc, f"fidelity-{slug}", body)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    for slug in args.tasks:
        task = TASKS[slug]
        console.rule(task.title)
        data_root = args.work / slug / "data"
        reports, seconds = {}, {}
        for i, (family, preset) in enumerate(task.presets.items()):
            if i == 0:
                shutil.rmtree(data_root, ignore_errors=True)  # the first preset records the shared dataset
            cfg, result = train(preset, args.work / slug / family, data_root, args)
            model = load_pretrained(result.model_path)
            reader = LeRobotDatasetReader(data_root)
            _, val = split_episodes(range(reader.num_episodes), cfg["data"]["val_fraction"], args.seed)
            reports[family] = evaluate_fidelity(
                model, reader, val, horizons=tuple(args.horizons), progress=True, name=family, seed=args.seed
            )
            seconds[family] = result.seconds
        png = plot_nrmse_curves(reports, args.doc.parent / f"fidelity_{slug}.png")
        budget = ", ".join(f"{f}: {Path(p).name} ({seconds[f]:.0f} s training)" for f, p in task.presets.items())
        text = f"### {task.title}\n\nPresets: {budget}.\n\n{compare_reports(reports)}\n\n![nRMSE]({png.name})\n"
        console.print(compare_reports(reports))
        write_task_section(args, slug, text)  # after every task, so an interrupted run keeps what it measured
    console.print(f"wrote the fidelity section of {args.doc} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
