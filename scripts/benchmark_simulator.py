"""Simulator speed: the learned env vs its own model vs the real MuJoCo env, in one run.

Measures environment steps per second (env copies x steps / seconds) of
  1. the bare model: batched ``model.imagine`` on N states (the upper limit for any env built on it),
  2. the learned env: ``gym.make_vec("WorldModel-v0", num_envs=N, model=M)`` (one batched model call per step),
  3. the real task through gymnasium's SyncVectorEnv (and AsyncVectorEnv with ``--async``),
for N in ``--num-envs``, repeated ``--repeats`` times; reports medians and two ratios:
  env-layer overhead = 1 - learned env / bare model (target <= 10% at the largest N),
  learned-simulator speed-up = learned env / real sync vector env (target >= 10x at the largest N).
Speed does not depend on training: the default model is an untrained ensemble built from the preset config.

    python scripts/benchmark_simulator.py                      # full run; updates docs/benchmarks.md
    python scripts/benchmark_simulator.py --quick --doc /tmp/b.md   # seconds-long smoke run
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import yaml
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

import worldrl  # noqa: F401  (registers WorldModel-v0)
from worldrl.evaluation.report import describe_machine, update_doc_section
from worldrl.models import TaskSpec, build_model, load_pretrained

REPO = Path(__file__).resolve().parents[1]
SECTION = "simulator"  # the marked section of docs/benchmarks.md this script owns
OVERHEAD_TARGET, SPEEDUP_TARGET = 0.10, 10.0


@dataclass
class Args:
    task: str = "HalfCheetah-v5"
    """Real Gymnasium task; the learned env simulates it."""
    model: str | None = None
    """Checkpoint dir; default: an untrained ensemble from --preset (speed does not depend on training)."""
    preset: str = "configs/ensemble_halfcheetah.yaml"
    """YAML preset whose ``model`` block builds the default model."""
    num_envs: list[int] = field(default_factory=lambda: [1, 64, 1024])
    """Numbers of parallel env copies."""
    steps: int = 100
    """Timed steps per measurement."""
    warmup: int = 5
    """Untimed steps before each measurement."""
    repeats: int = 5
    """Measurements per setting; the median is reported."""
    use_async: bool = False
    """Also time gymnasium's AsyncVectorEnv (one process per copy) for N <= --async-max-envs."""
    async_max_envs: int = 16
    """Largest N for the async real env (a process per copy)."""
    device: str = "cpu"
    """Torch device of the learned model."""
    threads: int | None = None
    """torch.set_num_threads; default: torch's own choice."""
    seed: int = 0
    doc: str = "docs/benchmarks.md"
    """Markdown file whose simulator section (between markers) is written; '' to skip."""
    quick: bool = False
    """Smoke run: N in (1, 8), 3 steps, 1 repeat."""
    sample: bool = False
    """Sampled imagination (the ensemble's trajectory sampling: one member per row, as PETS planners use)
    instead of the default mean prediction (all elites on every row); written to its own doc section."""


def parse_args() -> Args:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Args()
    p.add_argument("--task", default=d.task)
    p.add_argument("--model", default=d.model)
    p.add_argument("--preset", default=d.preset)
    p.add_argument("--num-envs", type=int, nargs="+", default=d.num_envs)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--repeats", type=int, default=d.repeats)
    p.add_argument("--async", dest="use_async", action="store_true")
    p.add_argument("--async-max-envs", type=int, default=d.async_max_envs)
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--doc", default=d.doc)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--sample", action="store_true", help="sampled imagination (trajectory sampling) instead of the mean"
    )
    args = Args(**vars(p.parse_args()))
    if args.quick:
        args.num_envs, args.steps, args.warmup, args.repeats = [1, 8], 3, 1, 1
    if min(args.num_envs) < 1 or args.steps < 1 or args.repeats < 1:
        p.error("--num-envs, --steps and --repeats must be positive")
    return args


# ------------------------------------------------------------------------------------------ the model
def make_model(args: Args) -> torch.nn.Module:
    if args.model:
        model = load_pretrained(args.model, device=args.device)
        if model.task.task_id != args.task:
            sys.exit(f"error: {args.model} simulates {model.task.task_id!r}, not --task {args.task!r}")
        return model
    preset = Path(args.preset) if Path(args.preset).is_absolute() else REPO / args.preset
    if not preset.exists():
        sys.exit(f"error: preset {preset} not found (pass --preset FILE or --model DIR)")
    config = dict(yaml.safe_load(preset.read_text())["model"])
    real = gym.make(args.task)
    task = TaskSpec(
        real.observation_space,
        real.action_space,
        task_id=args.task,
        fps=float(real.metadata.get("render_fps", 0)),
        max_episode_steps=real.spec.max_episode_steps,
    )
    real.close()
    return build_model(config.pop("family"), config, task).to(args.device).eval()


# ------------------------------------------------------------------------------------------ timing
def median_rate(step_fn, n: int, args: Args, sync=lambda: None) -> float:
    """Median over repeats of env steps per second, n copies x args.steps calls of step_fn(t).

    ``sync`` waits for queued device work (CUDA kernels run asynchronously) before the clock stops.
    """
    for t in range(args.warmup):
        step_fn(t)
    sync()
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for t in range(args.steps):
            step_fn(t)
        sync()
        rates.append(n * args.steps / (time.perf_counter() - start))
    return statistics.median(rates)


def random_actions(space: gym.spaces.Box, n: int, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, size=(steps, n, *space.shape)).astype(np.float32)


def bench_bare(model, n: int, args: Args) -> float:
    space = model.task.action_space
    acts = torch.as_tensor(random_actions(space, n, args.steps + args.warmup, args.seed), device=args.device)
    real = gym.make(args.task)
    obs0 = np.stack([real.reset(seed=args.seed + i)[0] for i in range(min(n, 16))])
    real.close()
    obs = torch.as_tensor(obs0[np.arange(n) % len(obs0)], dtype=torch.float32, device=args.device)
    zeros = torch.zeros(n, 1, model.task.action_dim, device=args.device)
    with torch.no_grad():
        state = model.observe_last(obs[:, None], zeros, torch.ones(n, 1, dtype=torch.bool, device=args.device))

        generator = torch.Generator(device=args.device).manual_seed(args.seed) if args.sample else None

        def step(t: int) -> None:
            nonlocal state
            state = model.imagine(state, acts[t], generator)

        sync = torch.cuda.synchronize if torch.device(args.device).type == "cuda" else (lambda: None)
        return median_rate(step, n, args, sync)


def bench_vector_env(env: gym.vector.VectorEnv, n: int, args: Args) -> float:
    acts = random_actions(env.single_action_space, n, args.steps + args.warmup, args.seed)
    env.reset(seed=args.seed)
    try:
        return median_rate(lambda t: env.step(acts[t]), n, args)
    finally:
        env.close()


def bench_learned_env(model, n: int, args: Args) -> float:
    env = gym.make_vec("WorldModel-v0", num_envs=n, model=model, device=args.device, sample=args.sample)
    return bench_vector_env(env, n, args)


def bench_real(n: int, args: Args, mode: str) -> float:
    return bench_vector_env(gym.make_vec(args.task, num_envs=n, vectorization_mode=mode), n, args)


# ------------------------------------------------------------------------------------------ report
def flops_per_step(model, args: Args, n: int = 64) -> float:
    """FLOPs of one env step of the model's ``imagine``, counted by torch's FlopCounterMode on a batch of n."""
    from torch.utils.flop_counter import FlopCounterMode

    obs = torch.zeros(n, 1, *model.task.obs_shape, device=args.device)
    first = torch.ones(n, 1, dtype=torch.bool, device=args.device)
    with torch.no_grad():
        state = model.observe_last(obs, torch.zeros(n, 1, model.task.action_dim, device=args.device), first)
        with FlopCounterMode(display=False) as counter:
            model.imagine(state, torch.zeros(n, model.task.action_dim, device=args.device))
    return counter.get_total_flops() / n


def verdicts(rows: dict[int, dict[str, float]], flops: float) -> list[tuple[str, str, str]]:
    """(target, measured, met/missed + why) at the largest N."""
    n = max(rows)
    r = rows[n]
    overhead = 1.0 - r["env"] / r["bare"]
    speedup = r["env"] / r["real_sync"]
    bare_speedup = r["bare"] / r["real_sync"]
    why_overhead = (
        "met"
        if overhead <= OVERHEAD_TARGET
        else "missed: per-step work outside the model call (action checks, numpy/torch copies, autoreset, time limits) "
        "is a visible share of a step"
    )
    why_speedup = (
        "met"
        if speedup >= SPEEDUP_TARGET
        else (
            f"missed: the bare model itself is only {bare_speedup:.1f}x the real env here, so the model, not the env "
            f"layer, is the limit ({flops / 1e6:.2f} MFLOP per env step = {flops * r['bare'] / 1e9:.1f} GFLOP/s at its "
            "measured rate); a smaller ensemble, fewer elites or a GPU (--device cuda) closes the gap"
            if bare_speedup < SPEEDUP_TARGET
            else "missed: the env layer, not the model, loses the margin"
        )
    )
    return [
        (f"env-layer overhead <= {OVERHEAD_TARGET:.0%} at N={n}", f"{overhead:.1%}", why_overhead),
        (f"learned env >= {SPEEDUP_TARGET:.0f}x real SyncVectorEnv at N={n}", f"{speedup:.1f}x", why_speedup),
    ]


def render(rows: dict[int, dict[str, float]], args: Args, model) -> tuple[Table, Table, str]:
    flops = flops_per_step(model, args)
    cols = ["N", "bare imagine", "WorldModel-v0 vec", "real sync"] + (["real async"] if args.use_async else [])
    cols += ["env overhead", "learned / real"]
    table = Table(title=f"steps/s, median of {args.repeats} ({args.task})")
    for c in cols:
        table.add_column(c, justify="right")
    lines = []
    for n, r in sorted(rows.items()):
        cells = [str(n), f"{r['bare']:,.0f}", f"{r['env']:,.0f}", f"{r['real_sync']:,.0f}"]
        if args.use_async:
            cells.append(f"{r['real_async']:,.0f}" if "real_async" in r else "skipped")
        cells += [f"{1 - r['env'] / r['bare']:.1%}", f"{r['env'] / r['real_sync']:.1f}x"]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    targets = Table(title="targets")
    for c in ("target", "measured", "verdict"):
        targets.add_column(c)
    for row in verdicts(rows, flops):
        targets.add_row(*row)
    command = "python scripts/benchmark_simulator.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    params = sum(p.numel() for p in model.parameters())
    md = "\n".join(
        [
            "## Simulator speed" + (" (sampled imagination)" if args.sample else " (mean prediction)"),
            "",
            f"Task: {args.task}; learned simulator vs the real env through gymnasium vector envs.  ",
            f"Command: `{command.strip()}`  ",
            f"Machine: {describe_machine()}  ",
            f"Model: {type(model).__name__} ({params:,} parameters, {flops / 1e6:.2f} MFLOP per env step, "
            f"{'from ' + args.model if args.model else 'untrained, from ' + args.preset}; "
            f"speed does not depend on training), device {args.device}  ",
            f"Steps/s = env copies x steps / seconds; median of {args.repeats} repeats of {args.steps} steps "
            f"after {args.warmup} warm-up steps, all in one run.",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "---:|" * len(cols),
            *lines,
            "",
            "| target | measured | verdict |",
            "|---|---:|---|",
            *("| " + " | ".join(v) + " |" for v in verdicts(rows, flops)),
            *(["", "*Smoke run (--quick): too few steps for meaningful numbers.*"] if args.quick else []),
        ]
    )
    return table, targets, md


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = make_model(args)
    rows: dict[int, dict[str, float]] = {}
    jobs = [
        (n, kind)
        for n in args.num_envs
        for kind in ("bare", "env", "real_sync", "real_async")
        if kind != "real_async" or (args.use_async and n <= args.async_max_envs)
    ]
    for n, kind in tqdm(jobs, desc="benchmark", unit="setting"):
        run = {
            "bare": lambda n=n: bench_bare(model, n, args),
            "env": lambda n=n: bench_learned_env(model, n, args),
            "real_sync": lambda n=n: bench_real(n, args, "sync"),
            "real_async": lambda n=n: bench_real(n, args, "async"),
        }[kind]
        rows.setdefault(n, {})[kind] = run()
    table, targets, md = render(rows, args, model)
    console = Console()
    console.print(table)
    console.print(targets)
    if args.doc:
        doc = Path(args.doc)
        update_doc_section(doc, SECTION + ("-sampled" if args.sample else ""), md)
        console.print(f"updated the simulator section of {doc}")


if __name__ == "__main__":
    main()
