"""Scale-out on CPU: collection with N env worker processes, and training with 1 vs 2 processes (DDP), in one run.

1. ``collect`` frames/s of a real MuJoCo task for N = 1, 2, 4 envs (AsyncVectorEnv for N > 1), once with state
   only and once with 64x64 camera frames; each N is timed ``--repeats`` times, interleaved, and the median is
   reported beside its ratio to N = 1 (the one-process baseline).
2. ``worldrl train`` optimizer steps/s of the same config in 1 process and under ``torchrun --nproc_per_node 2``
   with ``trainer.strategy=ddp`` (same global batch: each process computes half of it). The 2-process time is rank
   0's ``fit`` time; process start-up is excluded from both.

The numbers land in the ``scale-out`` section of docs/benchmarks.md with the machine's description. On a machine
whose cores are shared with other jobs the ratios are what that machine gave, not what the code can give.

    python scripts/benchmark_scaleout.py                       # full run (a few minutes)
    python scripts/benchmark_scaleout.py --quick --doc /tmp/b.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from rich.console import Console
from rich.table import Table

from worldrl.data.collect import CollectConfig, collect
from worldrl.evaluation.report import describe_machine, update_doc_section

REPO = Path(__file__).resolve().parents[1]
SECTION = "scale-out"
WHERE_THE_TIME_GOES = [
    "Where the time goes (cProfile of a one-env state run of 2,000 frames, 2026-12-02): the dataset writer's",
    "`save_episode` (parquet and metadata, once per episode) took 9.1 of the 12.8 s, stepping HalfCheetah under",
    "1 s. State collection is writer-bound, so more env processes cannot speed it up; pixel collection is",
    "render-bound, which worker processes do parallelise when there are free cores to run them.",
]
"""A profile of the state collection (kept beside the numbers it explains)."""


def time_collection(task: str, n: int, pixels: bool, episodes: int, steps: int, out: Path) -> float:
    """Frames per second of a ``collect`` run while it records (stepping N envs and writing the dataset; the
    start-up of the worker processes, seconds on a loaded machine, is left out)."""
    shutil.rmtree(out, ignore_errors=True)
    config = CollectConfig(
        task,
        out,
        episodes=episodes,
        num_envs=n,
        pixels=pixels,
        image_size=64,
        fast_render=True,
        max_episode_steps=steps,
        seed=0,
    )
    summary = collect(config, progress=False)
    return summary.frames / summary.recording_seconds


def collection_rows(args: argparse.Namespace, work: Path) -> list[dict]:
    rows = []
    for pixels in (False, True):
        times: dict[int, list[float]] = {n: [] for n in args.num_envs}
        for repeat in range(args.repeats):  # interleaved: load changes hit every N alike
            for n in args.num_envs:
                episodes = args.episodes if pixels else 5 * args.episodes  # state frames are ~50x cheaper
                fps = time_collection(args.task, n, pixels, episodes, args.steps, work / f"c{n}")
                times[n].append(fps)
                print(f"collect {'pixels' if pixels else 'state'} N={n} repeat {repeat + 1}: {fps:.0f} frames/s")
        base = statistics.median(times[args.num_envs[0]])
        for n in args.num_envs:
            fps = statistics.median(times[n])
            rows.append({"obs": "64x64 pixels" if pixels else "state", "N": n, "fps": fps, "ratio": fps / base})
    return rows


def train_config(work: Path, data: Path, steps: int, batch: int) -> Path:
    config = {
        "output_dir": str(work / "train"),
        "seed": 0,
        "data": {"root": str(data), "window": 8},
        "model": {"family": "vrnn", "latent_dim": 8, "hidden_dim": 128, "context_dim": 64},
        "trainer": {
            "max_steps": steps,
            "batch_size": batch,
            "eval_every": 0,
            "checkpoint_every": 0,
            "log_every": steps,
            "progress": False,
            "device": "cpu",
        },
    }
    path = work / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train_worker(config: Path, strategy: str, result: Path) -> None:
    """Run inside each process: fit, and rank 0 writes steps/s."""
    from worldrl.training.distributed import destroy_distributed, process_info
    from worldrl.training.run import build_trainer, load_config

    torch.set_num_threads(1)
    cfg = load_config(config, [f"trainer.strategy={strategy}", f"output_dir={result.parent / strategy}"])
    trainer = build_trainer(cfg)
    fit = trainer.fit()
    if process_info().is_main:
        result.write_text(json.dumps({"steps": fit.steps, "seconds": fit.seconds}))
    destroy_distributed()


def time_training(config: Path, processes: int, work: Path) -> float:
    strategy = "none" if processes == 1 else "ddp"
    result = work / f"train_{processes}.json"
    shutil.rmtree(work / strategy, ignore_errors=True)
    script = [str(Path(__file__).resolve()), "--train-worker", str(config), strategy, str(result)]
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *script]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True)
    record = json.loads(result.read_text())
    return record["steps"] / record["seconds"]


def training_rows(args: argparse.Namespace, work: Path) -> list[dict]:
    data = work / "train_data"
    collect(CollectConfig(args.task, data, episodes=8, max_episode_steps=100, seed=1), progress=False)
    config = train_config(work, data, args.train_steps, args.batch)
    times: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for processes in (1, 2):
            times[processes].append(time_training(config, processes, work))
            print(f"train {processes} process(es) repeat {repeat + 1}: {times[processes][-1]:.2f} steps/s")
    base = statistics.median(times[1])
    return [
        {"processes": p, "sps": statistics.median(t), "ratio": statistics.median(t) / base} for p, t in times.items()
    ]


def render(args: argparse.Namespace, collection: list[dict], training: list[dict]) -> tuple[Table, Table, str]:
    t1 = Table(title=f"collect {args.task}: frames/s (median of {args.repeats})")
    for col in ("observation", "N envs", "frames/s", "vs N=1"):
        t1.add_column(col, justify="right")
    for r in collection:
        t1.add_row(r["obs"], str(r["N"]), f"{r['fps']:.0f}", f"{r['ratio']:.2f}x")
    t2 = Table(title=f"train vrnn, global batch {args.batch}: steps/s (median of {args.repeats})")
    for col in ("processes", "strategy", "steps/s", "vs 1 process"):
        t2.add_column(col, justify="right")
    for r in training:
        t2.add_row(
            str(r["processes"]), "none" if r["processes"] == 1 else "ddp", f"{r['sps']:.2f}", f"{r['ratio']:.2f}x"
        )
    lines = [
        "## Scale-out: parallel collection and multi-process training (CPU)",
        "",
        f"Machine: {describe_machine()}. **The cores were shared with other jobs while this ran**, so the ratios are",
        "what this machine gave at the time, not the code's ceiling: with 2 cores, N=4 workers cannot beat N=2, and",
        "2 training processes compete with everything else for the same 2 cores.",
        "",
        f"Collection: `worldrl collect --env {args.task} --num-envs N`, episodes of {args.steps} steps, fast render",
        f"for pixels; {args.episodes} episodes with pixels, {5 * args.episodes} without; frames/s while recording",
        "(stepping the envs and writing the dataset; worker start-up left out). The datasets are identical for every N",
        "(tests/test_parallel_collect.py). Baseline: N = 1.",
        "",
        "| observation | N envs | frames/s | vs N=1 |",
        "|---|---:|---:|---:|",
        *[f"| {r['obs']} | {r['N']} | {r['fps']:.0f} | {r['ratio']:.2f}x |" for r in collection],
        "",
        *WHERE_THE_TIME_GOES,
        "",
        f"Training: a vrnn (hidden 128) on {args.task} windows of 8 steps, global batch {args.batch}, "
        f"{args.train_steps} steps;",
        "2 processes = `torchrun --nproc_per_node 2 ... trainer.strategy=ddp` (gloo). Baseline: 1 process.",
        "",
        "| processes | strategy | steps/s | vs 1 process |",
        "|---:|---|---:|---:|",
        *[
            f"| {r['processes']} | {'none' if r['processes'] == 1 else 'ddp'} | {r['sps']:.2f} | {r['ratio']:.2f}x |"
            for r in training
        ],
        "",
        f"Medians of {args.repeats} interleaved repeats. Reproduce: `python scripts/benchmark_scaleout.py`.",
    ]
    return t1, t2, "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--train-worker":
        train_worker(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="HalfCheetah-v5")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--episodes", type=int, default=8, help="episodes per collection run with pixels (x5 without)")
    parser.add_argument("--steps", type=int, default=100, help="steps per episode")
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.steps, args.train_steps, args.repeats, args.num_envs = 2, 20, 4, 1, [1, 2]
    torch.set_num_threads(1)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        collection = collection_rows(args, Path(tmp))
        training = training_rows(args, Path(tmp))
    t1, t2, body = render(args, collection, training)
    console = Console()
    console.print(t1)
    console.print(t2)
    update_doc_section(args.doc, SECTION, body)
    print(f"wrote the {SECTION} section of {args.doc} ({time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
