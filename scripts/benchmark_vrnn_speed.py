"""Update time of the vrnn preset on one CPU thread: plain sum of the loss groups, RGB every update, RGB every k.

One update = what the trainer does per step: ``loss_groups`` -> the combiner's backward -> gradient clipping ->
AdamW step (the trainer's own ``build_adamw`` / ``clip_grad_norm``: fused AdamW, multi-tensor clipping), on a fixed batch of B x T windows (random observations of the task's shape; the cost does not depend
on the values). All variants run in the same process, interleaved in rounds, so the ratios are measured under the
same machine load; the median over rounds is reported, as wall-clock time and as the CPU time of the (single)
computing thread, which other processes sharing the cores inflate much less than the wall clock. A last row
repeats the RGB-every-k update with torch's default per-tensor AdamW loop and clipping (the trainer before it
built them fused), so that saving is measured side by side too.

    .venv/bin/python scripts/benchmark_vrnn_speed.py                       # Pendulum preset, batch 8 x 16
    .venv/bin/python scripts/benchmark_vrnn_speed.py --batch 64 --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402

from worldrl.evaluation.report import describe_machine, update_doc_section  # noqa: E402
from worldrl.models import TaskSpec, build_model  # noqa: E402
from worldrl.training.gradient_balancing import build_combiner  # noqa: E402
from worldrl.training.optimizer import build_adamw, clip_grad_norm  # noqa: E402
from worldrl.training.run import load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="configs/vrnn_pendulum.yaml")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--rgb-every", type=int, default=10)
    p.add_argument("--rounds", type=int, default=15, help="rounds; each runs every variant for --updates updates")
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--doc", type=Path, default=None, help="write the table into this markdown file's vrnn-speed section"
    )
    return p.parse_args()


def pendulum_like_task(obs_dim: int, action_dim: int) -> TaskSpec:
    return TaskSpec(
        gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32), gym.spaces.Box(-1, 1, (action_dim,), np.float32)
    )


def make_batch(b: int, t: int, obs_dim: int, action_dim: int) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return TensorDict(
        obs=torch.randn(b, t, obs_dim, generator=g),
        action=torch.rand(b, t, action_dim, generator=g) * 2 - 1,
        reward=torch.randn(b, t, generator=g),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
        mask=torch.ones(b, t, dtype=torch.bool),
        batch_size=[b, t],
    )


def count_ops(fn) -> int:
    """Torch operator calls (``aten::`` events) of one call of ``fn``: a load-independent measure of loop overhead."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(REPO / args.preset)
    model_cfg = {k: v for k, v in cfg["model"].items() if k != "family"}
    trainer = cfg["trainer"]
    obs_dim, action_dim = 3, 1  # Pendulum-v1; only the shapes matter for the cost
    torch.manual_seed(0)
    model = build_model("vrnn", model_cfg, pendulum_like_task(obs_dim, action_dim))
    batch = make_batch(args.batch, args.window, obs_dim, action_dim)
    params = [p for p in model.parameters() if p.requires_grad]
    adam = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    fused = build_adamw([{"params": params}], **adam)  # what the trainer builds
    looped = torch.optim.AdamW(params, **adam, foreach=False)  # torch's per-tensor loop (the trainer before)
    clip = float(trainer.get("grad_clip") or 1e9)
    fused_step = (fused, lambda: clip_grad_norm(params, clip))
    looped_step = (looped, lambda: torch.nn.utils.clip_grad_norm_(params, clip, foreach=False))
    variants = {
        "plain sum": (build_combiner("sum"), *fused_step),
        "RGB every update": (build_combiner("rgb", interval=1), *fused_step),
        f"RGB every {args.rgb_every}": (build_combiner("rgb", interval=args.rgb_every), *fused_step),
        f"RGB every {args.rgb_every}, per-tensor AdamW + clipping": (
            build_combiner("rgb", interval=args.rgb_every),
            *looped_step,
        ),
    }

    def update(variant) -> None:
        combiner, optimizer, clip_grads = variant
        optimizer.zero_grad(set_to_none=True)
        groups, _ = model.loss_groups(batch)
        combiner.backward(list(groups.values()), params)
        clip_grads()
        optimizer.step()

    for variant in variants.values():  # warm-up
        for _ in range(3):
            update(variant)
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.rounds):
        for name, variant in variants.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            for _ in range(args.updates):
                update(variant)
            cpu[name].append((time.thread_time() - start_cpu) / args.updates * 1000)
            times[name].append((time.perf_counter() - start) / args.updates * 1000)
        print(f"round {i + 1}/{args.rounds}: " + ", ".join(f"{n} {times[n][-1]:.1f} ms" for n in variants), flush=True)
    plain, plain_cpu = statistics.median(times["plain sum"]), statistics.median(cpu["plain sum"])
    rows = [
        "| update | median ms (wall) | min ms (wall) | median ms (thread CPU) | ratio to plain sum (wall / CPU) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in times.items():
        med, med_cpu = statistics.median(values), statistics.median(cpu[name])
        rows.append(
            f"| {name} | {med:.1f} | {min(values):.1f} | {med_cpu:.1f} | {med / plain:.2f} / {med_cpu / plain_cpu:.2f} |"
        )
    table = "\n".join(rows)
    ops = count_ops(lambda: update(variants["plain sum"]))
    header = (
        f"{ops} torch ops per plain-sum update. "
        f"vrnn update time, `{args.preset}`, batch {args.batch} x {args.window}, {args.threads} thread(s), "
        f"{args.rounds} rounds x {args.updates} updates per variant (interleaved):\n\n"
    )
    print(header + table)
    if args.doc is not None:
        body = (
            header + table + f"\n\nCommand: `python scripts/benchmark_vrnn_speed.py --batch {args.batch} "
            f"--rgb-every {args.rgb_every}`  \nMachine: {describe_machine()}\n"
        )
        update_doc_section(args.doc, f"vrnn-speed-b{args.batch}", body)


if __name__ == "__main__":
    main()
