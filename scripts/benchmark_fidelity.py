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
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread: on a shared machine extra threads wait on each other

import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from worldrl.data import LeRobotDatasetReader, split_episodes  # noqa: E402
from worldrl.evaluation import compare_reports, evaluate_fidelity  # noqa: E402
from worldrl.evaluation.plots import plot_frame_strip, plot_nrmse_curves  # noqa: E402
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
        Task(
            "pendulum",
            "Pendulum-v1 (state)",
            {"ensemble": "configs/ensemble_pendulum.yaml", "vrnn": "configs/vrnn_pendulum.yaml"},
        ),
        Task(
            "inverted_pendulum",
            "InvertedPendulum-v5 (state)",
            {"ensemble": "configs/ensemble_inverted_pendulum.yaml", "vrnn": "configs/vrnn_inverted_pendulum.yaml"},
        ),
        Task(
            "halfcheetah",
            "HalfCheetah-v5 (state)",
            {"ensemble": "configs/ensemble_halfcheetah.yaml", "vrnn": "configs/vrnn_halfcheetah.yaml"},
        ),
        # The ensemble is a state-vector model (PETS/MBPO); on pixels only the vrnn family competes.
        Task(
            "inverted_pendulum_pixels",
            "InvertedPendulum-v5 (64x64 pixels)",
            {"vrnn": "configs/vrnn_inverted_pendulum_pixels.yaml"},
        ),
    )
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every preset's trainer.max_steps")
    p.add_argument(
        "--family-scale",
        nargs="+",
        default=[],
        metavar="FAMILY=X",
        help="multiply one family's trainer.max_steps instead (e.g. ensemble=0.5)",
    )
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--work", type=Path, default=REPO / "outputs" / "benchmark_fidelity")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--contexts",
        type=int,
        nargs="+",
        default=[1, 8],
        help="observed steps before imagining; recurrent families are scored at each, others at the first",
    )
    p.add_argument("--reuse", action="store_true", help="score finished runs in --work again instead of retraining")
    return p.parse_args()


def step_scale(family: str, args: argparse.Namespace) -> float:
    scales = dict(item.split("=", 1) for item in args.family_scale)
    return float(scales.get(family, args.steps_scale))


def train(preset: str, run_dir: Path, data_root: Path, args: argparse.Namespace) -> tuple[dict, Path, float]:
    """Train ``preset`` into ``run_dir`` (or reuse a finished run there): config, model path, training seconds."""
    base = load_config(REPO / preset)
    steps = max(1, int(base["trainer"]["max_steps"] * step_scale(base["model"]["family"], args)))
    cfg = load_config(
        REPO / preset,
        [f"output_dir={run_dir}", f"data.root={data_root}", f"trainer.max_steps={steps}", f"seed={args.seed}"],
    )
    timing = run_dir / "train_seconds.txt"
    if args.reuse and timing.exists() and (run_dir / "model").exists():
        return cfg, run_dir / "model", float(timing.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    result = train_from_config(cfg)
    timing.write_text(f"{result.seconds:.1f}\n")
    return cfg, Path(result.model_path), result.seconds


def save_frame_strip(report, path: Path) -> Path | None:
    """Real (top) and imagined (bottom) frames of the example whose real frames change the most, as one PNG."""
    if report.examples is None:
        return None
    title = f"{report.model}, context {report.context}"
    return plot_frame_strip(report.examples, path, title=title)


INTRO = (
    "## World-model fidelity: families side by side\n\n"
    "One training run per family and task; each family sees the same recorded dataset and is scored on the same "
    "held-out episodes (10% of episodes, split by seed). Open loop: the model observes the last `context` real steps "
    "and imagines under the recorded actions (recurrent models at context 1 and 8). nRMSE = RMSE / dataset std, "
    "averaged over dimensions. The `baseline:` rows are trivial predictors scored on the same starts: repeating the "
    "last observed observation, and the mean observation of the training episodes. Each task below names the "
    "command that produced it (`--tasks` re-runs one task and rewrites only its part)."
)


def write_task_section(args: argparse.Namespace, slug: str, text: str) -> None:
    command = "python scripts/benchmark_fidelity.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    update_doc_section(args.doc, "fidelity", INTRO)
    body = f"{text}\nCommand: `{command.strip()}` (seed {args.seed})  \nMachine: {describe_machine()}\n"
    update_doc_section(args.doc, f"fidelity-{slug}", body)


def evaluate(model, reader, val, family: str, args: argparse.Namespace) -> dict:
    """Reports keyed by row name: recurrent families at every ``--contexts`` length, others at the first."""
    contexts = args.contexts if model.capabilities.recurrent else args.contexts[:1]
    reports = {}
    for context in contexts:
        name = family if len(contexts) == 1 else f"{family} (context {context})"
        reports[name] = evaluate_fidelity(
            model,
            reader,
            val,
            horizons=tuple(args.horizons),
            context=context,
            progress=True,
            name=name,
            seed=args.seed,
            num_examples=16 if model.task.is_pixel else 4,  # pixels: more candidates for a strip where the pole moves
            batch_size=32 if model.task.is_pixel else 256,  # frames x 50 steps x SSIM: bound the memory per batch
        )
    return reports


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    for slug in args.tasks:
        task = TASKS[slug]
        console.rule(task.title)
        data_root = args.work / slug / "data"
        reports, seconds = {}, {}
        for i, (family, preset) in enumerate(task.presets.items()):
            if i == 0 and not args.reuse:
                shutil.rmtree(data_root, ignore_errors=True)  # the first preset records the shared dataset
            cfg, model_path, seconds[family] = train(preset, args.work / slug / family, data_root, args)
            model = load_pretrained(model_path)
            reader = LeRobotDatasetReader(data_root)
            _, val = split_episodes(range(reader.num_episodes), cfg["data"]["val_fraction"], args.seed)
            reports.update(evaluate(model, reader, val, family, args))
        png = plot_nrmse_curves(reports, args.doc.parent / f"fidelity_{slug}.png")
        budget = ", ".join(
            f"{f}: {Path(p).name} x{step_scale(f, args):g} steps ({seconds[f]:.0f} s training)"
            for f, p in task.presets.items()
        )
        figures = f"![nRMSE]({png.name})"
        pixel_reports = [r for r in reports.values() if r.is_pixel]
        if pixel_reports:
            strip = save_frame_strip(pixel_reports[0], args.doc.parent / f"fidelity_{slug}_strip.png")
            figures += f"\n\n![imagined vs real frames]({strip.name})" if strip else ""
        table = compare_reports(reports)
        text = f"### {task.title}\n\nPresets: {budget}.\n\n{table}\n\n{figures}\n"
        console.print(table)
        write_task_section(args, slug, text)  # after every task, so an interrupted run keeps what it measured
    console.print(f"wrote the fidelity section of {args.doc} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
