"""TorchRL's Dreamer actor trained inside a worldrl model, judged on the real env against trivial policies.

The usual TorchRL model-based script with worldrl's pieces (issue 21): a TorchRL ``Collector`` on real Pendulum-v1
fills a TorchRL ``ReplayBuffer`` with a ``SliceSampler``; worldrl fits a world model on it (``fit_from_torchrl``, no
conversion code); ``torchrl.objectives.dreamer``'s actor and value losses train a TorchRL actor in the model's
imagination (``DreamerLearner``), started from the posterior of sampled real slices (``slice_starts``); the actor
then runs on the real env through TorchRL's ``GymEnv`` (a recurrent family filters its posterior the same way,
``RecurrentRealEnvPolicy``), next to a uniform-random policy and the zero action on the same seeds.

One fitted model, several learner variants side by side (``--variants``): the discount and where imagination starts
(``filtered``: slice posteriors; ``episode-start``: single observations encoded as episode starts, the old way).
Writes the table, the loss curves (docs/torchrl_dreamer_<family>.png) and the "TorchRL modules" section of
docs/benchmarks.md.

    .venv/bin/python scripts/benchmark_torchrl_dreamer.py --family vrnn
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torchrl.envs import GymEnv, InitTracker, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from worldrl.agents.torchrl_dreamer import DreamerLearner, dreamer_actor_value, fit_from_torchrl, real_env_policy
from worldrl.data.torchrl_replay import random_slice_buffer
from worldrl.evaluation.report import describe_machine, update_doc_section
from worldrl.models import TaskSpec, build_model

MODELS = {
    "ensemble": ({"num_members": 3, "num_elites": 2, "hidden_dims": [64, 64]}, {"window": 2, "lr": 3e-3}),
    "vrnn": (
        {
            "latent_dim": 8,
            "hidden_dim": 64,
            "context_dim": 32,
            "max_components": 8,
            "num_latents": 4,
            "num_heads": 2,
            "context_window": 4,
            "num_slots": 3,
            "slot_dim": 16,
            "token_dim": 16,
            "stick_kl_terms": 10,
            "recon_std": 0.05,
            "free_nats": 1.0,
        },
        {"window": 16, "lr": 1e-3, "batch_size": 64},
    ),
}
"""Per family: model config and trainer options (the vrnn's are configs/vrnn_pendulum.yaml's)."""

VARIANTS = {
    "g0.9-filtered": (0.9, "filtered"),
    "g0.95-filtered": (0.95, "filtered"),
    "g0.9-episode-start": (0.9, "episode-start"),
    "g0.99-filtered": (0.99, "filtered"),
    "g0.99-episode-start": (0.99, "episode-start"),
}
"""Learner variants: discount, and where imagination starts. The first is ``DreamerLearner``'s default."""

SLICE = 16
"""Slice length of the sampler and memory of the recurrent real-env policy (the vrnn's training window)."""


def real_return(policy, seed: int, steps: int = 200) -> float:
    env = TransformedEnv(GymEnv("Pendulum-v1"), InitTracker())
    env.set_seed(seed)
    if hasattr(policy, "reset"):
        policy.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        return float(env.rollout(steps, policy)["next", "reward"].sum())


def zero_policy(td):
    return td.set("action", torch.zeros(*td.batch_size, 1))


def train_actor(model, rb, gamma: float, start: str, args) -> tuple[object, list[dict[str, float]]]:
    """A fresh actor and critic trained by ``DreamerLearner``; the metrics every ``--log-every`` updates."""
    torch.manual_seed(0)
    actor, value = dreamer_actor_value(model)
    learner = DreamerLearner(model, actor, value, horizon=args.horizon, gamma=gamma, actor_lr=1e-3)
    curve = []
    for i in range(args.updates):
        slices = rb.sample().reshape(args.starts, SLICE)
        starts = learner.slice_starts(slices) if start == "filtered" else learner.starts(slices["observation"][:, -1])
        metrics = learner.update(starts)
        if i % args.log_every == 0 or i == args.updates - 1:
            curve.append({"update": i, **metrics})
            print(f"  update {i}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()), flush=True)
    return actor, curve


def imagination_checks(model, episodes: int = 6, horizon: int = 10) -> str:
    """Is the model a usable imagination for Dreamer? On held-out real random-action episodes (seeds 100..):
    imagined rewards along the real actions against the real rewards (from the slice posterior, as
    ``slice_starts``, and from an episode-start encoding), next to trivial predictors; whether the model ranks
    constant actions as the real env does; how far the two kinds of start lie apart in belief space."""
    import gymnasium as gym
    import numpy as np

    from worldrl.models.torchrl_modules import initial_tensordict

    def episode(seed):
        env = gym.make("Pendulum-v1")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(200):
            action = rng.uniform(-2, 2, size=1).astype(np.float32)
            state = env.unwrapped.state.copy()
            nxt, reward, *_ = env.step(action)
            rows.append((obs, action, reward, state))
            obs = nxt
        return [np.array(column) for column in zip(*rows)]

    def real_return(state, actions):
        env = gym.make("Pendulum-v1")
        env.reset(seed=0)
        env.unwrapped.state = np.array(state, dtype=np.float64)
        return sum(env.step(np.array([a], np.float32))[1] for a in actions)

    def imagine(state, actions):
        rewards = []
        for k in range(actions.shape[1]):
            state = model.imagine(state, actions[:, k])
            rewards.append(model.reward(state))
        return torch.stack(rewards, 1)

    data = [episode(100 + i) for i in range(episodes)]
    starts = [(e, t) for e in range(episodes) for t in range(SLICE, 200 - horizon, 12)]
    window = lambda column, e, t: data[e][column][t - SLICE + 1 : t + 1]  # noqa: E731
    obs = torch.tensor(np.stack([window(0, e, t) for e, t in starts]), dtype=torch.float32)
    prev = torch.tensor(np.stack([window(1, e, t - 1) for e, t in starts]), dtype=torch.float32)
    actions = torch.tensor(np.stack([data[e][1][t : t + horizon] for e, t in starts]), dtype=torch.float32)
    real = torch.tensor(np.stack([data[e][2][t : t + horizon] for e, t in starts]), dtype=torch.float32)
    first = torch.zeros(len(starts), SLICE, dtype=torch.bool)
    first[:, 0] = True  # a window filtered from the initial state, as slice_starts does
    lines = [f"| start | reward RMSE @1 / @5 / @{horizon} | corr @{horizon} | best constant action agrees |"]
    lines.append("| --- | --- | ---: | ---: |")
    levels = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    truth = torch.tensor([[real_return(data[e][3][t], [float(a)] * horizon) for a in levels] for e, t in starts])
    with torch.no_grad():
        kinds = {
            "slice posterior (slice_starts)": model.observe_last(obs, prev, first),
            "episode-start encoding (starts)": initial_tensordict(model, obs[:, -1])["state"],
        }
        for name, state in kinds.items():
            rmse = (imagine(state, actions) - real).pow(2).mean(0).sqrt()
            corr = float(np.corrcoef(imagine(state, actions)[:, -1], real[:, -1])[0, 1])
            planned = torch.stack([imagine(state, torch.full_like(actions, float(a))).sum(1) for a in levels], 1)
            agree = float((planned.argmax(1) == truth.argmax(1)).float().mean())
            rmses = " / ".join(f"{float(rmse[k]):.2f}" for k in (0, 4, horizon - 1))
            lines.append(f"| {name} | {rmses} | {corr:.2f} | {agree:.2f} |")
        mean = float(real.mean())
        repeat = torch.tensor([data[e][2][t - 1] for e, t in starts])[:, None]
        rmses = " / ".join(
            f"{float((repeat[:, 0] - real[:, k]).pow(2).mean().sqrt()):.2f}" for k in (0, 4, horizon - 1)
        )
        lines.append(f"| baseline: repeat the last real reward | {rmses} | | |")
        lines.append(f"| baseline: the mean reward | {float((real - mean).pow(2).mean().sqrt()):.2f} | | |")
        filtered, single = (model.latent(state) for state in kinds.values())
        gap = float((filtered - single).norm(dim=-1).mean())
        spread = float((filtered - filtered.mean(0)).norm(dim=-1).mean())
    lines.append(
        f"\nbelief distance between the two starts of the same real step: {gap:.2f} "
        f"(spread of slice-posterior beliefs: {spread:.2f}); {len(starts)} starts"
    )
    return "\n".join(lines)


def plot(curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for name, curve in curves.items():
        steps = [row["update"] for row in curve]
        for ax, key in zip(axes, ("loss_actor", "loss_value", "imagined_reward")):
            ax.plot(steps, [row[key] for row in curve], label=name)
            ax.set_title(key)
            ax.set_xlabel("update")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=sorted(MODELS), default="vrnn")
    parser.add_argument("--frames", type=int, default=4000, help="real frames collected (random policy)")
    parser.add_argument("--fit-steps", type=int, default=1500)
    parser.add_argument("--updates", type=int, default=300, help="Dreamer actor/value updates per variant")
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--starts", type=int, default=128, help="imagination starts (sampled slices) per update")
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--variants", nargs="*", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--doc", default="docs/benchmarks.md", help="'' to skip writing the section")
    parser.add_argument("--diagnose", action="store_true", help="print imagination checks of the fitted model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()

    rb = random_slice_buffer("Pendulum-v1", args.frames, args.starts, SLICE)
    config, options = MODELS[args.family]
    options = dict(options)
    window = options.pop("window")
    model = build_model(args.family, config, TaskSpec.from_env_id("Pendulum-v1"))
    with tempfile.TemporaryDirectory() as out:
        fit = fit_from_torchrl(
            model, rb, out, window=window, max_steps=args.fit_steps, eval_every=args.fit_steps, **options
        )
    print(f"fitted {args.family} for {fit.steps} steps in {time.perf_counter() - started:.0f} s", flush=True)

    if args.diagnose:
        print(imagination_checks(model), flush=True)
    rows, curves = [], {}
    for name in args.variants:
        gamma, start = VARIANTS[name]
        print(f"variant {name}", flush=True)
        actor, curves[name] = train_actor(model, rb, gamma, start, args)
        returns = [real_return(real_env_policy(model, actor, SLICE), seed) for seed in args.seeds]
        first, last = curves[name][0], curves[name][-1]
        rows.append((f"Dreamer actor, {name}", returns, first, last))
    for name, policy in (("random", None), ("zero action", zero_policy)):
        rows.append((name, [real_return(policy, seed) for seed in args.seeds], None, None))

    header = (
        f"| policy on real Pendulum-v1 ({args.family}) | mean return | median | per seed {args.seeds} "
        "| imagined reward/step first -> last | value loss first -> last |"
    )
    lines = [header, "| --- | ---: | ---: | --- | --- | --- |"]
    for name, returns, first, last in rows:
        per_seed = " / ".join(f"{r:.0f}" for r in returns)
        imagined = f"{first['imagined_reward']:.2f} -> {last['imagined_reward']:.2f}" if first else ""
        value = f"{first['loss_value']:.0f} -> {last['loss_value']:.0f}" if first else ""
        mean, median = statistics.mean(returns), statistics.median(returns)
        lines.append(f"| {name} | {mean:.0f} | {median:.0f} | {per_seed} | {imagined} | {value} |")
    table = "\n".join(lines)
    total = time.perf_counter() - started
    print("\n" + table + f"\n\ntotal {total:.0f} s")
    if args.doc and curves:
        image = Path(args.doc).parent / f"torchrl_dreamer_{args.family}.png"
        plot(curves, image)
        write_section(args, table, image.name, total)


def write_section(args, table: str, image: str, total: float) -> None:
    command = "python scripts/benchmark_torchrl_dreamer.py " + " ".join(
        [f"--family {args.family}", f"--fit-steps {args.fit_steps}", f"--updates {args.updates}"]
    )
    body = f"""## TorchRL modules: TorchRL's Dreamer actor in a worldrl model ({args.family}, issue 21)

{args.frames} random-policy frames of real Pendulum-v1 from a TorchRL `Collector` in a TorchRL `ReplayBuffer`
(`SliceSampler`, slices of {SLICE}); the {args.family} fitted on it for {args.fit_steps} steps (`fit_from_torchrl`);
per variant a fresh TorchRL actor and critic trained for {args.updates} updates of `torchrl.objectives.dreamer`'s
actor and value losses (horizon {args.horizon}, lambda 0.95, {args.starts} starts per update), then run
deterministically on real Pendulum-v1 through TorchRL's `GymEnv` on seeds {args.seeds}, next to a random policy and
the zero action on the same seeds. `filtered`: imagination starts at the posterior of sampled real slices
(`DreamerLearner.slice_starts`, what the real-env policy computes); `episode-start`: each observation encoded as an
episode start. `g`: the discount.

{table}

![losses]({image})

Command: `{command}` ({total:.0f} s)
Machine: {describe_machine()}
"""
    update_doc_section(args.doc, "torchrl", body)


if __name__ == "__main__":
    main()
