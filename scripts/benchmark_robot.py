"""Robot-learning suites benchmark: PushT (LeRobot's gym-pusht), on the CPU.

Needs ``pip install worldrl[robot]`` (mujoco 3.x; see the README). DeepMind Control and ALOHA have their own scripts
(``scripts/benchmark_dmc.py``, ``scripts/benchmark_aloha.py``). Each command prints a table and rewrites its
part of the "Robot-learning suites" section of ``--doc`` (``<!-- robot:start -->`` ... ``<!-- robot:end -->``);
raw results go to ``<out>/<command>.json``.

    python scripts/benchmark_robot.py pusht --episodes 50      # state world model + MPC vs random and scripted
    python scripts/benchmark_robot.py report                   # rebuild the doc section from saved results

``pusht``: records ``--train-episodes`` PushT episodes in LeRobot's ``pusht_keypoints`` layout (agent xy as
``observation.state``, the block's 16 keypoint coordinates as ``observation.environment_state``) with an
Ornstein-Uhlenbeck policy, trains the probabilistic ensemble on both keys (a keyed task) and its reward head on
``next.reward`` (coverage / 0.95, clipped), then runs on the REAL env, from the same seeds: uniform random actions,
a scripted pusher (goes behind the block and pushes it toward the goal; it reads the simulator's block position)
and MPC (CEM planning in the learned model with its predicted reward). It reports success rate (coverage > 95%),
mean final and mean best coverage.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from worldrl.evaluation.report import describe_machine, update_doc_section
from worldrl.io import atomic_write_bytes

SECTION = "robot"
PUSHT = "gym_pusht/PushT-v0"
PUSHT_GOAL = np.array([256.0, 256.0])


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2).encode())


# --------------------------------------------------------------------------- PushT
def pusher_target(agent: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Where the scripted pusher sends the agent: behind the block (seen from the goal), then through it."""
    to_goal = PUSHT_GOAL - block
    direction = to_goal / (np.linalg.norm(to_goal) + 1e-6)
    behind = block - 70.0 * direction
    if np.linalg.norm(agent - behind) > 25.0 and np.dot(agent - block, direction) > -40.0:
        # not behind yet: go round the block at a safe distance, then come in from behind
        side = np.array([-direction[1], direction[0]])
        side = side if np.dot(agent - block, side) >= 0 else -side
        target = block + 90.0 * side - 40.0 * direction if np.linalg.norm(agent - behind) > 60 else behind
    else:
        target = block + 40.0 * direction
    return np.clip(target, 0.0, 512.0).astype(np.float32)


def scripted_pusht(env) -> np.ndarray:
    """The scripted pusher on the simulator's block position (the evaluation baseline)."""
    base = env.unwrapped
    return pusher_target(np.array(base.agent.position), np.array(base.block.position))


_PUSH_RNG = np.random.default_rng(0)


def pushing_policy(obs: np.ndarray) -> np.ndarray:
    """A data-collection policy (``collect`` spec ``__main__:pushing_policy``): the pusher on the recorded
    observation (agent xy, then the block's keypoints, whose centroid stands in for its position), its targets
    jittered by 40 px so the recorded pushes vary. OU data alone rarely touches the block, and a model trained on
    it learns that the block never moves (its block prediction then equals repeat-last)."""
    agent, block = obs[:, :2], obs[:, 2:].reshape(len(obs), -1, 2).mean(axis=1)
    targets = np.stack([pusher_target(a, b) for a, b in zip(agent, block)])
    return np.clip(targets + _PUSH_RNG.normal(0.0, 40.0, targets.shape), 0.0, 512.0).astype(np.float32)


def keyed_obs(obs: dict) -> dict[str, np.ndarray]:
    """gym-pusht's ``environment_state_agent_pos`` observation under LeRobot's dataset keys."""
    return {
        "observation.state": np.asarray(obs["agent_pos"], np.float32),
        "observation.environment_state": np.asarray(obs["environment_state"], np.float32),
    }


class KeyedMPC:
    """MPC (CEM in the learned model) from keyed observations of several envs at once."""

    def __init__(self, model, horizon: int, samples: int, iterations: int, seed: int):
        from tensordict import TensorDict

        from worldrl.agents.mpc import MPCAgent

        self.td, self.model = TensorDict, model
        self.agent = MPCAgent(
            model, "cem", horizon=horizon, num_samples=samples, num_elites=max(4, samples // 10), iterations=iterations
        )
        self.agent.seed(seed)

    def __call__(self, observations: list[dict[str, np.ndarray]]) -> np.ndarray:
        n = len(observations)
        obs = self.td(
            {k: torch.as_tensor(np.stack([o[k] for o in observations]))[:, None] for k in observations[0]},
            batch_size=[n, 1],
        )
        with torch.no_grad():
            state = self.model.observe_last(
                obs, torch.zeros(n, 1, self.model.task.action_dim), torch.ones(n, 1, dtype=torch.bool)
            )
            result = self.agent.plan(state)
        return result.action.cpu().numpy()


def run_pusht_episodes(policy: str, seeds: list[int], steps: int, mpc: KeyedMPC | None = None) -> dict:
    """Episodes on the real PushT from ``seeds`` (lock-step, batched for MPC): success, final and best coverage."""
    from worldrl.tasks.real_envs import make_real_env

    envs = [make_real_env(PUSHT, obs_type="environment_state_agent_pos", max_episode_steps=steps + 1) for _ in seeds]
    obs = [keyed_obs(env.reset(seed=s)[0]) for env, s in zip(envs, seeds)]
    rng = np.random.default_rng(seeds[0])
    done, success = np.zeros(len(seeds), bool), np.zeros(len(seeds), bool)
    final, best = np.zeros(len(seeds)), np.zeros(len(seeds))
    if mpc is not None:
        mpc.agent.reset()
    for _ in range(steps):
        live = np.flatnonzero(~done)
        if live.size == 0:
            break
        if policy == "random":
            actions = rng.uniform(0, 512, (live.size, 2)).astype(np.float32)
        elif policy == "scripted":
            actions = np.stack([scripted_pusht(envs[i]) for i in live])
        else:
            actions = mpc([obs[i] for i in live]) if live.size == len(seeds) else mpc(obs)[live]
        for a, i in zip(actions, live):
            o, _, terminated, truncated, info = envs[i].step(a)
            obs[i] = keyed_obs(o)
            final[i] = info["coverage"]
            best[i] = max(best[i], info["coverage"])
            success[i] |= bool(info["is_success"])
            done[i] = terminated or truncated
    for env in envs:
        env.close()
    return {
        "policy": policy,
        "episodes": len(seeds),
        "success_rate": float(success.mean()),
        "final_coverage": float(final.mean()),
        "best_coverage": float(best.mean()),
        "final_coverage_per_episode": final.tolist(),
    }


def best_checkpoint(run: Path) -> Path:
    """The checkpoint with the lowest validation loss (the trainer's ``best``), else the final one."""
    return run / "best" if (run / "best").exists() else run / "model"


def pusht(args: argparse.Namespace) -> dict:
    from worldrl.data.collect import CollectConfig, collect
    from worldrl.models.base import WorldModel
    from worldrl.training.run import train_from_config

    out = Path(args.out) / "pusht"
    data = out / "data"
    t0 = time.time()
    if not (data / "meta" / "info.json").exists():  # half Ornstein-Uhlenbeck, half pushes (pushing_policy)
        for i, policy in enumerate(("ou:theta=0.3,sigma=0.6", f"{__name__}:pushing_policy")):
            config = CollectConfig(
                PUSHT,
                data,
                episodes=args.train_episodes // 2,
                policy=policy,
                seed=1000 + i,
                max_episode_steps=args.steps,
                epsilon=0.1 * i,
                resume=i > 0,
            )
            collect(config, progress=True)
    collect_s = time.time() - t0
    cfg = {
        "output_dir": str(out / "model_run"),
        "seed": 0,
        "data": {"root": str(data), "window": 2, "val_fraction": 0.1},
        "model": {
            "family": "ensemble",
            "num_members": 5,
            "num_elites": 3,
            "hidden_dims": [200, 200, 200],
            "activation": "silu",
            "predict_delta": True,
            "predict_terminal": False,
        },
        "trainer": {
            "max_steps": args.model_steps,
            "batch_size": 256,
            "lr": 1e-3,
            "weight_decay": 1e-5,
            "warmup_steps": 50,
            "schedule": "cosine",
            "eval_every": 250,
            "early_stopping_patience": 3,  # the validation loss turns up after ~500 steps (20k frames)
            "log_every": 100,
            "checkpoint_every": 100000,
            "val_batches": 8,
        },
    }
    t0 = time.time()
    if not (out / "model_run" / "model").exists():
        train_from_config(cfg)
    model = WorldModel.from_pretrained(str(best_checkpoint(out / "model_run")), device="cpu")
    train_s = time.time() - t0
    seeds = list(range(100_000, 100_000 + args.episodes))
    results, seconds = {}, {}
    for name in ("random", "scripted", "mpc"):
        t0 = time.time()
        mpc = KeyedMPC(model, args.horizon, args.samples, args.iterations, seed=0) if name == "mpc" else None
        results[name] = run_pusht_episodes(name, seeds, args.steps, mpc)
        seconds[name] = time.time() - t0
        print(
            f"{name:9s} success {results[name]['success_rate']:.2f}  final coverage "
            f"{results[name]['final_coverage']:.3f}  best {results[name]['best_coverage']:.3f}  ({seconds[name]:.0f}s)"
        )
    summary = {
        "args": vars(args),
        "results": results,
        "seconds": {**seconds, "collect": collect_s, "train": train_s},
        "model_task": model.task.to_dict(),
    }
    write_json(Path(args.out) / "pusht.json", summary)
    return summary


def pusht_fidelity(args: argparse.Namespace) -> dict:
    """Open-loop fidelity of the PushT model on freshly recorded held-out episodes, with the trivial baselines."""
    from worldrl.data import LeRobotDatasetReader
    from worldrl.data.collect import CollectConfig, collect
    from worldrl.evaluation.fidelity import evaluate_fidelity
    from worldrl.models.base import WorldModel

    out = Path(args.out) / "pusht"
    heldout = out / "heldout_mixed"
    if not (heldout / "meta" / "info.json").exists():  # as the training data: 10 OU, 10 pushing episodes
        for i, policy in enumerate(("ou:theta=0.3,sigma=0.6", f"{__name__}:pushing_policy")):
            config = CollectConfig(
                PUSHT,
                heldout,
                episodes=10,
                policy=policy,
                seed=777 + i,
                max_episode_steps=args.steps,
                epsilon=0.1 * i,
                resume=i > 0,
            )
            collect(config, progress=False)
    model = WorldModel.from_pretrained(str(best_checkpoint(out / "model_run")), device="cpu")
    reader = LeRobotDatasetReader(heldout)
    episodes = [int(e["episode_index"]) for e in reader.episodes]
    report = evaluate_fidelity(model, reader, episodes, horizons=(1, 5, 10), num_starts=256, seed=0)
    markdown = report.to_markdown()
    atomic_write_bytes(Path(args.out) / "pusht_fidelity.md", markdown.encode())
    print(markdown)
    return {"markdown": markdown}


# --------------------------------------------------------------------------- report
def pusht_table(summary: dict) -> str:
    a, r = summary["args"], summary["results"]
    lines = [
        f"**PushT** (`{PUSHT}`, state world model): {a['train_episodes']} recorded episodes x {a['steps']} steps "
        f"(half OU noise, half a jittered scripted pusher), ensemble trained up to {a['model_steps']} steps (early stopping; MPC uses the checkpoint of lowest validation loss) on the keyed observation `observation.state` + "
        f"`observation.environment_state`; {a['episodes']} real episodes of {a['steps']} steps from the same seeds "
        f"per policy; MPC = CEM in the model (horizon {a['horizon']}, {a['samples']} samples, {a['iterations']} "
        "iterations) with the model's reward.",
        "",
        "| policy | success rate | final coverage | best coverage | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("random", "scripted", "mpc"):
        x = r[name]
        label = {"random": "random (uniform actions)", "scripted": "scripted pusher", "mpc": "**MPC in the model**"}
        lines.append(
            f"| {label[name]} | {x['success_rate']:.2f} | {x['final_coverage']:.3f} | {x['best_coverage']:.3f} | "
            f"{summary['seconds'][name]:.0f} |"
        )
    return "\n".join(lines)


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    parts = [
        "## Robot-learning suites",
        "",
        f"Machine: {describe_machine()}. Commands: `python scripts/benchmark_robot.py pusht --samples 128 "
        "--iterations 2`, `... pusht-fidelity`.",
    ]
    if (out / "pusht.json").exists():
        parts += ["", pusht_table(json.loads((out / "pusht.json").read_text()))]
    if (out / "pusht_fidelity.md").exists():
        parts += [
            "",
            "Open-loop fidelity of that PushT model on 20 held-out episodes (10 OU, 10 pushing; trivial baselines beside):",
            "",
        ]
        parts += [(out / "pusht_fidelity.md").read_text().strip()]
    if args.notes:
        parts += ["", Path(args.notes).read_text().strip()]
    update_doc_section(args.doc, SECTION, "\n".join(parts))
    print("\n".join(parts))


COMMANDS: dict[str, Callable[[argparse.Namespace], object]] = {
    "pusht": pusht,
    "pusht-fidelity": pusht_fidelity,
    "report": report,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--out", default="outputs/benchmark_robot")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--notes", default=None, help="a markdown file appended to the section (findings)")
    parser.add_argument("--episodes", type=int, default=50, help="pusht: real evaluation episodes per policy")
    parser.add_argument("--train-episodes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=100, help="pusht: steps per episode (10 s at 10 fps)")
    parser.add_argument("--model-steps", type=int, default=2000)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    COMMANDS[args.command](args)
    if args.command != "report":
        report(args)


if __name__ == "__main__":
    main()
