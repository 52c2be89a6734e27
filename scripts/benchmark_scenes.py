"""Physics scenes and questions: simulation + rendering speed of ``worldrl/Playground-v0``, QA generation rate and
the answer balance of a generated question set.

Measures, per scene kind, env steps per second (one step = 10 physics steps + the event log; ``pixels``: a 64x64
frame rendered per step; ``audio``: synthetic audio derived from contacts and its per-frame log-mel), then generates
a question set and reports items per second and the answers per type and split. Prints a table and writes the
``physics-scenes`` section of docs/benchmarks.md.

    MUJOCO_GL=egl python scripts/benchmark_scenes.py                          # ~2 minutes; updates the docs
    MUJOCO_GL=egl python scripts/benchmark_scenes.py --quick --doc /tmp/b.md  # seconds-long smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.table import Table

os.environ.setdefault("MUJOCO_GL", "egl")

from worldrl.evaluation.physics_qa.generate import SPLITS, QAConfig, generate
from worldrl.evaluation.physics_qa.questions import QUESTION_TYPES
from worldrl.evaluation.report import describe_machine, update_doc_section
from worldrl.tasks.scenes.env import PlaygroundEnv
from worldrl.tasks.scenes.kinds import KINDS

MODES = {
    "state only": {"pixels": False, "audio": False},
    "pixels": {"pixels": True, "audio": False},
    "pixels + audio": {"pixels": True, "audio": True},
}


def steps_per_second(kind: str, mode: dict, episodes: int, steps: int) -> float:
    env = PlaygroundEnv(kind, width=64, height=64, **mode)
    env.action_space.seed(0)
    total, seconds = 0, 0.0
    for ep in range(episodes):
        env.reset(seed=ep)
        start = time.perf_counter()
        for _ in range(steps):
            action = env.action_space.sample() if kind == "push" else np.zeros(2, np.float32)
            env.step(action)
        seconds += time.perf_counter() - start
        total += steps
    env.close()
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--items", type=int, default=350)
    parser.add_argument("--quick", action="store_true", help="1 episode of 20 steps, 14 items")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.steps, args.items = 1, 20, 14
    console = Console()

    speed = {k: {m: steps_per_second(k, cfg, args.episodes, args.steps) for m, cfg in MODES.items()} for k in KINDS}
    table = Table(title="Playground-v0 env steps/s (64x64)")
    table.add_column("kind")
    for m in MODES:
        table.add_column(m, justify="right")
    for k, row in speed.items():
        table.add_row(k, *[f"{row[m]:.0f}" for m in MODES])
    console.print(table)

    with tempfile.TemporaryDirectory() as tmp:
        summary = generate(QAConfig(out=f"{tmp}/qa", items=args.items, seed=0))
        with open(f"{tmp}/qa/meta.json") as f:
            meta = json.load(f)
    console.print(
        f"QA: {summary.items} items from {summary.scenes} scenes in {summary.seconds:.1f}s = "
        f"{summary.items_per_second:.2f} items/s (including rendering, PNG and mp4 writing)"
    )

    command = "MUJOCO_GL=egl python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        "## Physics scenes and questions (`worldrl/Playground-v0`, `worldrl qa generate`)",
        "",
        f"`{command}` on {describe_machine()}; the CPUs were shared with other jobs, so treat the numbers as lower",
        "bounds. One env step is 10 MuJoCo steps (50 frames/s of simulated time) plus the event log; `pixels` renders",
        "a 64x64 frame per step with shadows and reflections off (software GL via EGL); `audio` adds the synthetic",
        "audio derived from contacts (modal impacts and sliding noise at 16 kHz) and its per-frame log-mel",
        f"(`torch.stft`). {args.episodes} episode(s) of {args.steps} steps per kind; zero action (random for push).",
        "",
        "| kind | " + " | ".join(f"{m} (steps/s)" for m in MODES) + " |",
        "| --- | " + " | ".join("---:" for _ in MODES) + " |",
    ]
    lines += [f"| {k} | " + " | ".join(f"{row[m]:.0f}" for m in MODES) + " |" for k, row in speed.items()]
    lines += [
        "",
        (
            f"Question generation: {summary.items} items (scene kinds {', '.join(QAConfig(out='.').scenes)}) from "
            f"{summary.scenes} simulated scenes in {summary.seconds:.0f} s: **{summary.items_per_second:.2f} items/s**,"
        ),
        "including rendering every clip, the context PNGs, mp4 encoding and the counterfactual re-simulations. Answers",
        "per type and split (yes/no counts; multiple choice: how often the answer sits at choice 0/1/2/3):",
        "",
        "| type | " + " | ".join(SPLITS) + " | chance | answer prior (test) |",
        "| --- | --- | --- | --- | ---: | ---: |",
    ]
    for t in QUESTION_TYPES:
        bal, base = meta["balance"].get(t, {}), meta["baselines"].get(t, {})
        cells = [", ".join(f"{a}: {n}" for a, n in bal.get(s, {}).items()) or "-" for s in SPLITS]
        lines.append(
            f"| {t} | " + " | ".join(cells) + f" | {base.get('chance', float('nan')):.3f} | "
            f"{base.get('answer_prior', float('nan')):.3f} |"
        )
    lines += [
        "",
        "Each type's quota is shared 80/10/10 over the splits (by a hash of the scene seed); yes/no answers",
        "are equal within every split (an odd quota's extra item is a train yes). The answer prior is a blind",
        "guess scored on test: the most common train answer when it is offered, else the most common train",
        "answer position (quantitative: the object stays where it was in the last context frame, right",
        "within 0.1 m).",
    ]
    body = "\n".join(lines)
    console.print(body)
    update_doc_section(args.doc, "physics-scenes", body)


if __name__ == "__main__":
    main()
