"""DeepMind Control benchmark: the online loop on ``dmc:`` tasks at a CPU budget, beside random and published returns.

Needs ``pip install worldrl[dmc]`` (dm-control with mujoco 3.x; see the README). Each ``dmc`` run trains an agent
with ``worldrl.loops.train_agent`` on the real task, evaluates it on ``--eval-episodes`` real episodes every
``--eval-every`` real steps, and stores its learning curve; ``report`` prints the table and rewrites the
``<!-- dmc:start -->`` ... ``<!-- dmc:end -->`` section of ``--doc`` (placed after the robot section) with a
learning-curve PNG per task next to it. Raw results go to ``<out>/dmc.json`` (one entry per task and agent).

    python scripts/benchmark_dmc.py dmc --tasks cartpole-swingup --real-steps 3000 --eval-episodes 3
    python scripts/benchmark_dmc.py dmc --tasks pendulum-swingup --agent mpc-ac --real-steps 3000
    python scripts/benchmark_dmc.py dmc --tasks cheetah-run --agent dreamer --agent-option updates_per_real_step=0.2
    python scripts/benchmark_dmc.py dmc --real-steps 100000 --eval-episodes 10 --device cuda   # published budget
    python scripts/benchmark_dmc.py report --notes findings.md   # rebuild the doc section from saved results

Beside each return: uniform random actions on the same number of episodes, and TD-MPC2's, SAC's and DreamerV3's
published 100k-step returns (TD-MPC2 repository, 3 seeds; REFERENCE.md). DMC episodes are 1,000 steps, so a CPU
budget of a few thousand real steps is a few episodes; the ratio to 100k is printed in the table.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from worldrl.evaluation.report import describe_machine, update_doc_section
from worldrl.io import atomic_write_bytes

SECTION = "dmc"
AFTER_SECTION = "robot"
"""The dmc section goes right after this one in the doc (``place_section``)."""
PUBLISHED_BUDGET = 100_000
PUBLISHED_100K = {  # TD-MPC2 repository results, DMC, 100k env steps, 3 seeds (docs: REFERENCE.md)
    "pendulum-swingup": (724, 96, 699),
    "cartpole-swingup": (839, 835, 677),
    "reacher-easy": (937, 540, 872),
    "cheetah-run": (519, 310, 336),
}
TASKS = tuple(PUBLISHED_100K)


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2).encode())


def place_section(doc: Path, name: str, after: str) -> None:
    """Put empty ``name`` markers right after the ``after`` section's end marker when the doc has none yet.

    ``update_doc_section`` appends a missing section at the end of the file; placing the markers first keeps the
    suite sections together.
    """
    text = doc.read_text() if doc.exists() else ""
    start, end, anchor = f"<!-- {name}:start -->", f"<!-- {name}:end -->", f"<!-- {after}:end -->"
    if start in text or anchor not in text:
        return
    head, tail = text.split(anchor, 1)
    atomic_write_bytes(doc, f"{head}{anchor}\n\n{start}\n{end}{tail}".encode())


# --------------------------------------------------------------------------- measurement
def random_returns(env_id: str, episodes: int, seed: int) -> list[float]:
    """Episode returns of uniform random actions on the real env, from seeds ``seed``, ``seed + 1``, ..."""
    from worldrl.tasks.real_envs import make_real_env

    env, returns = make_real_env(env_id), []
    env.action_space.seed(seed)
    for e in range(episodes):
        env.reset(seed=seed + e)
        total, done = 0.0, False
        while not done:
            _, r, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + r, terminated or truncated
        returns.append(total)
    env.close()
    return returns


def agent_options(args: argparse.Namespace) -> dict:
    """Planner settings and ``--agent-option`` values from the command line (only the ones given: the loop's
    defaults fill the rest)."""
    names = {"horizon": args.horizon, "num_samples": args.samples, "iterations": args.iterations}
    options = {k: v for k, v in names.items() if v is not None}
    if args.samples is not None:
        options["num_elites"] = max(4, args.samples // 10)
    if args.agent == "dreamer":  # dreamer does not plan
        options = {}
    from worldrl.cli.train_agent import parse_key_values

    return {**options, **parse_key_values(args.agent_option)}


def read_curve(path: Path) -> list[dict[str, float]]:
    lines = path.read_text().strip().splitlines()
    header = lines[0].split(",")
    return [{k: float(v) if v else float("nan") for k, v in zip(header, line.split(","))} for line in lines[1:]]


def run_dir(out: Path, task: str, agent: str) -> Path:
    return out / "dmc" / task / agent


def load_results(out: Path) -> dict:
    """Every finished run under ``out`` by ``task/agent`` (each run writes its own ``result.json``, so runs of
    several tasks may go on in parallel processes)."""
    results = {}
    for path in sorted((out / "dmc").glob("*/*/result.json")):
        entry = json.loads(path.read_text())
        results[f"{entry['task']}/{entry['agent']}"] = entry
    return results


def dmc(args: argparse.Namespace) -> dict:
    from worldrl.loops import OnlineConfig, train_agent

    out = Path(args.out)
    for task in args.tasks:
        env_id, directory = f"dmc:{task}", run_dir(out, task, args.agent)
        options = agent_options(args)
        t0 = time.time()
        run = train_agent(
            OnlineConfig(
                agent=args.agent,
                env_id=env_id,
                real_steps=args.real_steps,
                initial_random_steps=args.random_steps,
                steps_per_iteration=args.steps_per_iteration,
                eval_every=args.eval_every or args.real_steps,
                eval_episodes=args.eval_episodes,
                model_steps=args.model_steps,
                output_dir=str(directory),
                overwrite=True,
                video=False,
                save_dataset=False,
                device=args.device,
                agent_options=options,
                seed=args.seed,
            )
        )
        seconds = time.time() - t0
        random = random_returns(env_id, args.eval_episodes, seed=args.seed + 10_000)  # the loop's eval seeds
        entry = {
            "task": task,
            "agent": args.agent,
            "agent_options": options,
            "real_steps": args.real_steps,
            "random_steps": args.random_steps,
            "model_steps": args.model_steps,
            "eval_episodes": args.eval_episodes,
            "final_returns": [float(r) for r in run.final_returns],
            "return": float(np.mean(run.final_returns)),
            "random_returns": random,
            "random_return": float(np.mean(random)),
            "curve": read_curve(run.curve_csv),
            "seconds": seconds,
            "device": str(args.device),
        }
        write_json(directory / "result.json", entry)
        print(
            f"{task}/{args.agent}: return {entry['return']:.1f} (random {entry['random_return']:.1f}), {seconds:.0f}s"
        )
    results = load_results(out)
    write_json(out / "dmc.json", results)
    return results


# --------------------------------------------------------------------------- report
def plot_task(path: Path, task: str, entries: list[dict]) -> Path:
    """Real return vs real steps of every agent run on ``task``, with random's return and the published ones."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for x in entries:
        steps = [c["real_steps"] for c in x["curve"]]
        ax.plot(steps, [c["mean"] for c in x["curve"]], marker="o", label=f"{x['agent']} (ours)")
        low, high = [c["ci95_low"] for c in x["curve"]], [c["ci95_high"] for c in x["curve"]]
        if np.isfinite(low).all():
            ax.fill_between(steps, low, high, alpha=0.2)
    ax.axhline(entries[0]["random_return"], color="gray", ls=":", label="random actions")
    if task in PUBLISHED_100K:
        ax.axhline(PUBLISHED_100K[task][0], color="green", ls="--", alpha=0.6, label="TD-MPC2 @100k")
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("episode return")
    ax.set_ylim(0, 1000)
    ax.set_title(f"dmc:{task}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def fmt_returns(values: list[float]) -> str:
    mean = float(np.mean(values))
    return f"{mean:.1f} ± {np.std(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def settings_text(entry: dict) -> str:
    """The planner settings given (the agent's defaults otherwise), random warm-up and model fitting, in short."""
    options = ", ".join(f"{k} {v}" for k, v in entry["agent_options"].items() if k != "num_elites") or "defaults"
    return f"{options}; {entry['random_steps']} random steps first; {entry['model_steps']} model steps per fit"


def dmc_table(results: dict) -> str:
    lines = [
        "| task | agent (settings) | real steps (of 100k) | ours: final return | random | eval episodes | minutes | "
        "TD-MPC2 @100k | SAC @100k | DreamerV3 @100k |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = {t: i for i, t in enumerate(TASKS)}
    for x in sorted(results.values(), key=lambda x: (order.get(x["task"], 99), x["agent"])):
        tdmpc, sac, dreamer = PUBLISHED_100K.get(x["task"], ("n/a",) * 3)
        share = f"{x['real_steps']:,} ({x['real_steps'] / PUBLISHED_BUDGET:.0%})"
        lines.append(
            f"| {x['task']} | {x['agent']} ({settings_text(x)}) | {share} | **{fmt_returns(x['final_returns'])}** | "
            f"{fmt_returns(x['random_returns'])} | {x['eval_episodes']} | {x['seconds'] / 60:.0f} | {tdmpc} | {sac} | "
            f"{dreamer} |"
        )
    return "\n".join(lines)


def report(args: argparse.Namespace) -> None:
    out, doc = Path(args.out), Path(args.doc)
    parts = [
        "## DeepMind Control",
        "",
        f"Machine: {describe_machine()}. Command: `python scripts/benchmark_dmc.py dmc --tasks <task> --agent "
        "<agent> ...` with the settings of each row, then `... report`.",
        "",
        "The online loop (`worldrl.loops.train_agent`) on the real `dmc:` task at a CPU budget; the return is the "
        "mean ± std over the evaluation episodes of the final agent, next to uniform random actions on as many "
        "episodes (the same seeds) and the published 100k-step returns (TD-MPC2 repository, 3 seeds; REFERENCE.md).",
    ]
    results = load_results(out)
    if results:
        parts += ["", dmc_table(results)]
        for task in TASKS:
            entries = [x for x in results.values() if x["task"] == task]
            if entries:
                png = plot_task(doc.parent / f"dmc_{task}.png", task, entries)
                parts += ["", f"![dmc:{task} real return vs real steps]({png.name})"]
    if args.notes:
        parts += ["", Path(args.notes).read_text().strip()]
    place_section(doc, SECTION, AFTER_SECTION)
    update_doc_section(doc, SECTION, "\n".join(parts))
    print("\n".join(parts))


COMMANDS: dict[str, Callable[[argparse.Namespace], object]] = {"dmc": dmc, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--out", default="outputs/benchmark_dmc")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--notes", default=None, help="a markdown file appended to the section (findings)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--agent", default="mpc-cem", help="mpc-cem, mpc-mppi, mpc-ac, dreamer, mbpo")
    parser.add_argument("--real-steps", type=int, default=3000)
    parser.add_argument("--random-steps", type=int, default=1000, help="uniform random real steps first")
    parser.add_argument("--steps-per-iteration", type=int, default=500)
    parser.add_argument("--eval-every", type=int, default=None, help="real steps between evaluations (default: end)")
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--model-steps", type=int, default=200, help="optimiser steps per model fit")
    parser.add_argument("--horizon", type=int, default=None, help="planner horizon (default: the loop's)")
    parser.add_argument("--samples", type=int, default=None, help="planner samples (default: the loop's)")
    parser.add_argument("--iterations", type=int, default=None, help="planner iterations (default: the loop's)")
    parser.add_argument(
        "--agent-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="agent setting (YAML value) over the loop's defaults, as worldrl train-agent's, e.g. updates_per_real_step=0.2",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device of model and agent (cuda on a GPU)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    COMMANDS[args.command](args)
    if args.command != "report":
        report(args)


if __name__ == "__main__":
    main()
