"""``worldrl info DATASET``: summarise a LeRobot dataset (local path or Hub id) as rich tables."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset root directory or Hugging Face Hub repo id (owner/name)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")


def _fmt(values: Any, width: int = 4) -> str:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    shown = ", ".join(f"{v:.4g}" for v in arr[:width])
    return f"[{shown}{', ...' if arr.size > width else ''}]"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from worldrl.data import LeRobotDatasetReader

    console = Console()
    reader = LeRobotDatasetReader(args.dataset, revision=args.revision)  # a bad path: DatasetError, exit 2
    lengths = np.array([int(e["length"]) for e in reader.episodes] or [0])
    overview = Table(title=f"LeRobot dataset {reader.root}", show_header=False)
    for name, value in (
        ("format", reader.info["codebase_version"]),
        ("robot_type", reader.info.get("robot_type")),
        ("fps", reader.fps),
        ("episodes", reader.num_episodes),
        ("frames", reader.num_frames),
        ("duration", f"{reader.num_frames / reader.fps:.1f} s"),
        ("episode length min/mean/max", f"{lengths.min()} / {lengths.mean():.1f} / {lengths.max()}"),
        ("tasks", "; ".join(reader.tasks) or "-"),
    ):
        overview.add_row(name, str(value))
    console.print(overview)

    features = Table(title="features")
    features.add_column("key", no_wrap=True)
    for col in ("dtype", "shape", "mean", "std"):
        features.add_column(col)
    for key, ft in reader.features.items():
        st = reader.stats.get(key, {})
        features.add_row(
            key,
            ft["dtype"],
            str(list(ft["shape"])),
            _fmt(st["mean"]) if "mean" in st else "-",
            _fmt(st["std"]) if "std" in st else "-",
        )
    console.print(features)
    return 0
