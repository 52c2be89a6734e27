"""TorchRL's Dreamer actor trained inside a worldrl model, judged on the real env against trivial policies.

The usual TorchRL model-based script with worldrl's pieces (issue 21): a TorchRL ``Collector`` on real Pendulum-v1
fills a TorchRL ``ReplayBuffer``; worldrl fits a world model on it (``fit_from_torchrl``, no conversion code);
``torchrl.objectives.dreamer``'s actor and value losses train a TorchRL actor in the model's imagination
(``DreamerLearner``); the actor then runs on the real env through TorchRL's ``GymEnv`` (a recurrent family carries
its posterior, ``RecurrentRealEnvPolicy``), next to a uniform-random policy and the zero action on the same seeds.

    .venv/bin/python scripts/benchmark_torchrl_dreamer.py --family vrnn

Measured so far (2 shared CPU cores, real seeds 1-3): the ensemble (README tutorial) beats random
(-1262/-126/-119 vs -1557/-1404/-1335); the vrnn does not yet: fitted 600/1000/1500 steps on 3000-4000 random
frames, 250-400 updates, its actor's median return was -1457/-1582/-1606 against random's -1335/-1303/-1327, and
the imagined reward per step did not rise (-6.3 -> -6.4, -6.4 -> -6.3, -6.1 -> -6.2): the actor does not learn in
the vrnn's imagination. Cause not yet found.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import GymEnv, InitTracker, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from worldrl.agents.torchrl_dreamer import DreamerLearner, dreamer_actor_value, fit_from_torchrl, real_env_policy
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


def real_return(policy, seed: int, steps: int = 200) -> float:
    env = TransformedEnv(GymEnv("Pendulum-v1"), InitTracker())
    env.set_seed(seed)
    if hasattr(policy, "reset"):
        policy.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        return float(env.rollout(steps, policy)["next", "reward"].sum())


def zero_policy(td):
    return td.set("action", torch.zeros(*td.batch_size, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=sorted(MODELS), default="vrnn")
    parser.add_argument("--frames", type=int, default=4000, help="real frames collected (random policy)")
    parser.add_argument("--fit-steps", type=int, default=1500)
    parser.add_argument("--updates", type=int, default=400, help="Dreamer actor/value updates")
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()

    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rb = ReplayBuffer(storage=LazyTensorStorage(args.frames))
    collector = Collector(env, None, frames_per_batch=1000, total_frames=args.frames)
    for batch in collector:
        rb.extend(batch.reshape(-1))
    collector.shutdown()

    config, options = MODELS[args.family]
    options = dict(options)
    window = options.pop("window")
    model = build_model(args.family, config, TaskSpec.from_env_id("Pendulum-v1"))
    with tempfile.TemporaryDirectory() as out:
        fit = fit_from_torchrl(
            model, rb, out, window=window, max_steps=args.fit_steps, eval_every=args.fit_steps, **options
        )
    fitted = time.perf_counter()
    print(f"fitted {args.family} for {fit.steps} steps in {fitted - started:.0f} s")

    actor, value = dreamer_actor_value(model)
    learner = DreamerLearner(model, actor, value, horizon=args.horizon, actor_lr=1e-3)
    observations = rb[:]["observation"]
    generator = torch.Generator().manual_seed(0)
    first = last = None
    for i in range(args.updates):
        metrics = learner.update(
            learner.starts(observations[torch.randint(len(observations), (128,), generator=generator)])
        )
        first = first or metrics
        last = metrics
        if (i + 1) % 100 == 0:
            print(f"update {i + 1}: {metrics}")
    print(f"Dreamer updates in {time.perf_counter() - fitted:.0f} s")

    policies = {"dreamer actor": real_env_policy(model, actor), "random": None, "zero action": zero_policy}
    rows = []
    for name, policy in policies.items():
        returns = [real_return(policy, seed) for seed in args.seeds]
        rows.append((name, statistics.median(returns), min(returns), max(returns)))
    print(f"\n| policy on real Pendulum-v1 ({args.family}, seeds {args.seeds}) | median return | min | max |")
    print("| --- | --- | --- | --- |")
    for name, median, low, high in rows:
        print(f"| {name} | {median:.1f} | {low:.1f} | {high:.1f} |")
    print(
        f"\nimagined reward per step {first['imagined_reward']:.3f} -> {last['imagined_reward']:.3f}; "
        f"actor loss {first['loss_actor']:.3f} -> {last['loss_actor']:.3f}; total {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
