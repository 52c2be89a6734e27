"""``worldrl evaluate``: open-loop quality of a saved world model on held-out episodes of a dataset.

Every family gets the fidelity report: ``fidelity.json``, ``fidelity.md`` and PNG plots in ``--out`` (default
``<model dir>/eval``). A ``multimodal`` checkpoint gets the benchmark suite instead (the document's form)::

    worldrl evaluate --checkpoint DIR --dataset DATA --metrics psnr ssim frechet contact_onsets --output-dir DIR

(``worldrl.evaluation.benchmark_suite``: video, audio and physics metrics per horizon beside their trivial
baselines, ``benchmarks.json`` / ``benchmarks.md`` and an example mp4/wav/png). ``--checkpoint`` and
``--output-dir`` are the document's spellings of ``--model`` and ``--out``. The default episode selection ``val``
repeats the trainer's split (``split_episodes`` with the same ``--val-fraction`` and ``--seed``), so with the
training run's values these are episodes the model never trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from worldrl.errors import ConfigError

EPISODE_SELECTORS = ("val", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        required=True,
        help="checkpoint directory (config.json, model.safetensors, task.json)",
    )
    parser.add_argument("--dataset", required=True, help="LeRobot v3.0 dataset directory or Hub id")
    parser.add_argument(
        "--horizons",
        type=int,
        nargs="+",
        default=None,
        help="open-loop horizons (default 1 10 50; multimodal 1 5 10 20)",
    )
    parser.add_argument("--episodes", default="val", help="'val' (held-out split), 'all', or indices like 0,3,5")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation fraction of the trainer's split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trainer's split and of start sampling")
    parser.add_argument(
        "--context",
        type=int,
        default=None,
        help="real steps observed before imagining (default 1; multimodal: its context)",
    )
    parser.add_argument("--num-starts", type=int, default=256, help="start steps sampled (0 = every start)")
    parser.add_argument("--batch-size", type=int, default=64, help="starts per rollout call")
    parser.add_argument("--sample", action="store_true", help="sample the dynamics (seeded) instead of the mean")
    parser.add_argument("--device", default="cpu", help="torch device for the model")
    parser.add_argument(
        "--out", "--output-dir", dest="out", default=None, help="output directory (default: <model dir>/eval)"
    )
    suite = parser.add_argument_group("multimodal checkpoints (the benchmark suite)")
    suite.add_argument("--metrics", nargs="+", default=None, help="metric names (default: all that need no weights)")
    suite.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature of the rollouts (0 = greedy)"
    )
    suite.add_argument(
        "--feature-encoder", default=None, help="a worldrl checkpoint observing one camera (e.g. vjepa2)"
    )
    suite.add_argument("--lpips-weights", default=None, help="local TorchScript LPIPS network (no download)")
    suite.add_argument("--fvd-weights", default=None, help="local TorchScript I3D feature network (no download)")
    suite.add_argument("--save-predictions", action="store_true", help="write an example mp4/wav/png")


def parse_episodes(spec: str, num_episodes: int, val_fraction: float, seed: int) -> list[int]:
    """Episode indices from ``val``, ``all`` or a comma-separated list; ValueError naming a bad entry."""
    from worldrl.data import split_episodes

    spec = spec.strip()
    if spec == "all":
        return list(range(num_episodes))
    if spec == "val":
        if num_episodes < 2:
            raise ConfigError(f"--episodes val needs >= 2 episodes to split, the dataset has {num_episodes}; use 'all'")
        return sorted(
            int(e) for e in split_episodes(list(range(num_episodes)), val_fraction=val_fraction, seed=seed)[1]
        )
    try:
        episodes = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--episodes must be {EPISODE_SELECTORS} or comma-separated integers, got {spec!r}") from None
    bad = [e for e in episodes if not 0 <= e < num_episodes]
    if not episodes or bad:
        raise ConfigError(f"--episodes {spec!r}: episodes {bad or '[]'} not in the dataset's 0..{num_episodes - 1}")
    return episodes


def _load(args: argparse.Namespace) -> tuple[Any, Any, list[int]]:
    from worldrl.data import LeRobotDatasetReader
    from worldrl.evaluation.fidelity import check_dataset_matches
    from worldrl.models import load_pretrained

    if not 0.0 < args.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must lie in (0, 1), got {args.val_fraction}")
    model = load_pretrained(args.model, device=args.device)
    if getattr(args, "metrics", None) is not None and model.config.family != "multimodal":
        raise ConfigError(
            f"--metrics selects the benchmark suite of multimodal checkpoints; {args.model} is a "
            f"{model.config.family} model, whose report is the fidelity table (drop --metrics)"
        )
    reader = LeRobotDatasetReader(args.dataset)
    check_dataset_matches(model.task, reader)
    episodes = parse_episodes(args.episodes, reader.num_episodes, args.val_fraction, args.seed)
    return model, reader, episodes


def _print_table(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (
        f"open-loop fidelity: {report.model} on {report.task_id} ({report.num_starts} starts, context {report.context})"
    )
    table = Table(title=title)
    header, rows = report.table()
    for col in header:
        table.add_column(col, justify="right")
    for cells in rows:
        table.add_row(*(_cell(c) for c in cells))
    console = Console()
    console.print(table)
    for note in report.all_notes():
        console.print(f"note: {note}")


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _write_outputs(report: Any, out: Path, model_dir: Path) -> list[Path]:
    from worldrl.evaluation.plots import plot_frame_strip, plot_learning_curves, plot_nrmse_curves, plot_trajectories
    from worldrl.io import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    report.to_json(out / "fidelity.json")
    atomic_write_bytes(out / "fidelity.md", report.to_markdown().encode())
    written = [out / "fidelity.json", out / "fidelity.md"]
    if report.examples is not None and report.is_pixel:
        strip = plot_frame_strip(report.examples, out / "frames.png")
        written += [strip] if strip is not None else []
    elif report.examples is not None:
        written.append(plot_trajectories(report.examples, out / "trajectories.png", report.dim_names))
    if any((m.nrmse if not report.is_pixel else m.psnr) is not None for m in report.curve):
        written.append(plot_nrmse_curves(report, out / ("psnr_curve.png" if report.is_pixel else "nrmse_curve.png")))
    metrics = model_dir.parent / "metrics.jsonl"  # a trainer run saves the model at <output_dir>/model
    if metrics.exists():
        written.append(plot_learning_curves(metrics, out / "learning_curves.png"))
    return written


def checked_horizons(horizons: list[int] | None, reader: Any, episodes: list[int]) -> list[int]:
    """Asked horizons, refused when one is beyond the longest held-out episode (no step of it could be scored, and
    a huge one would only cost time and memory); the defaults 1 10 50 stay (unscored ones are reported as such)."""
    if horizons is None:
        return [1, 10, 50]
    longest = max(stop - start for start, stop in (reader.episode_range(e) for e in episodes)) - 1
    if max(horizons) > longest:
        raise ConfigError(
            f"--horizons {max(horizons)} is beyond the longest evaluated episode ({longest} steps after its first "
            f"observation); choose horizons <= {longest}"
        )
    return horizons


def run(args: argparse.Namespace) -> int:
    from worldrl.evaluation.fidelity import evaluate_fidelity

    model, reader, episodes = _load(args)
    if model.config.family == "multimodal":
        return _run_suite(args, model, reader, episodes)
    args.horizons = checked_horizons(args.horizons, reader, episodes)
    args.context = 1 if args.context is None else args.context
    generator = torch.Generator(device=args.device).manual_seed(args.seed) if args.sample else None
    report = evaluate_fidelity(
        model,
        reader,
        episodes,
        horizons=args.horizons,
        context=args.context,
        num_starts=args.num_starts or None,
        generator=generator,
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=True,
    )
    out = Path(args.out) if args.out else Path(args.model) / "eval"
    _print_table(report)
    written = _write_outputs(report, out, Path(args.model))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _run_suite(args: argparse.Namespace, model: Any, reader: Any, episodes: list[int]) -> int:
    """The benchmark suite of a multimodal checkpoint on windows of the selected episodes."""
    from worldrl.evaluation.benchmark_suite import BenchmarkSuite, checkpoint_encoder, results_markdown, scene_windows

    torch.manual_seed(args.seed)
    encoder = checkpoint_encoder(args.feature_encoder, args.device) if args.feature_encoder else None
    suite = BenchmarkSuite(
        model,
        args.device,
        metrics=args.metrics,
        save_predictions=args.save_predictions,
        output_dir=Path(args.out) if args.out else Path(args.model) / "eval",
        horizons=args.horizons or (1, 5, 10, 20),
        context=args.context,
        temperature=args.temperature,
        feature_encoder=encoder,
        lpips_weights=args.lpips_weights,
        fvd_weights=args.fvd_weights,
        progress=True,
    )
    windows = scene_windows(reader.root, episodes, suite.window_length, max(suite.horizons), args.batch_size)
    results = suite.run_all_benchmarks(windows)
    print(f"benchmark suite: multimodal model {args.model} on {len(episodes)} episode(s) of {reader.root}")
    print(results_markdown(results), end="")
    print(f"wrote {suite.output_dir / 'benchmarks.json'}, {suite.output_dir / 'benchmarks.md'}")
    return 0
