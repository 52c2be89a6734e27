"""Does a PushT pixel world model rank plans the way the real PushT does?

MPC keeps the candidate action sequences its model scores best. If those scores do not order the candidates as the
real outcomes would, planning picks at random among them, or worse, picks what the model gets most wrong. This
takes held-out starts of a pixel recording (the trainer's validation split; where the block moves most, or with
``--pick random`` anywhere in those episodes), builds
candidates around the recorded actions as CEM's local search does (the recorded sequence itself, holding still,
and Gaussian perturbations), scores them in the model, and replays each one on the real gym-pusht from the
recorded state (the pusher's position and velocity, the block's pose), then compares per start:

- the *model's reward* (the sum of the reward head over the horizon, what ``mpc`` ranks by) against the real
  rewards' sum;
- with a block reader (``--reader``, ``scripts/benchmark_robot.py``'s ``FrameRegressor``), the *known-goal value*
  (``PixelGoalValue``: the block read off the start frame plus the vrnn's predicted motion, its distance to the goal
  pose, what pixel ``mpc-goal`` ranks by) against the real final goal distance;
- with ``--particles K``, a *pessimistic reward*: the summed reward's mean minus ``--caution`` x its std over K
  rollouts that sample the latent (does the model's own spread flag the plans it overrates?).

It prints the rank correlation (Spearman) over the candidates of each start, and how much worse in reality the
model's pick is than the real best candidate and than holding still.

    python scripts/pusht_plan_ranking.py --model <out>/pusht/pixel_model_run/model --data <out>/pusht/pixel_data \\
        --reader <out>/pusht
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

KEY = "observation.image"
FPS = 10.0
"""gym-pusht's control rate: the recorded pusher velocity is its last step's displacement times this."""


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks ``0..n-1`` of ``x`` (ties broken by order; candidates' scores are continuous)."""
    return np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two score vectors (nan when either is constant)."""
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def random_windows(reader, episodes: list[int], horizon: int, context: int, count: int, seed: int = 0) -> list[int]:
    """``count`` global start indices drawn uniformly from ``episodes``, each with ``context - 1`` frames before it
    and ``horizon`` after it inside its episode."""
    rng = np.random.default_rng(seed)
    pool = [i for e in episodes for lo, hi in [reader.episode_range(e)] for i in range(lo + context - 1, hi - horizon)]
    return sorted(rng.choice(pool, size=min(count, len(pool)), replace=False).tolist())


def candidates(recorded: np.ndarray, hold: np.ndarray, count: int, std: float, rng: np.random.Generator) -> np.ndarray:
    """``[count, H, 2]`` pusher targets: the recorded sequence, holding still at ``hold``, then the recorded
    sequence plus Gaussian noise of ``std`` in CEM's normalised units (half the 512-pixel arena per unit)."""
    noise = rng.normal(0.0, std * 256.0, (count - 2, *recorded.shape))
    out = np.concatenate([recorded[None], np.broadcast_to(hold, recorded.shape)[None], recorded[None] + noise])
    return np.clip(out, 0.0, 512.0).astype(np.float32)


def replay(env, agent_xy: np.ndarray, agent_velocity: np.ndarray, keypoints: np.ndarray, actions: np.ndarray):
    """Set the real env to a recorded state and step ``actions [H, 2]``: (rewards ``[H]``, final keypoints
    ``[8, 2]``, final pusher ``[2]``)."""
    from worldrl.tasks.pusht_scripted import pose_from_keypoints

    base = env.unwrapped
    pose = pose_from_keypoints(keypoints)
    # gym-pusht's reset rebuilds the space (bodies set by hand in a used space kept contacts and cached shapes from
    # the previous replay, which made blocks fly off); its reset_to_state sets the block's angle about another point
    # than the keypoints assume, so the pose is set as draw_pusht sets it (whose frames match the env's own), then a
    # step too short to move anything refreshes the shapes, and the velocities are set after it (the pusher's is
    # hidden from the observation but carried by its PD controller)
    base.reset(options={"reset_to_state": [*agent_xy, *pose]})
    base.block.position, base.block.angle = (float(pose[0]), float(pose[1])), float(pose[2])
    base.space.step(1e-9)
    base.agent.velocity = (float(agent_velocity[0]), float(agent_velocity[1]))
    base.block.velocity, base.block.angular_velocity = (0.0, 0.0), 0.0
    rewards, obs = [], None
    for action in actions:
        obs, reward, *_ = base.step(action)
        rewards.append(reward)
    return np.asarray(rewards), np.asarray(obs["environment_state"]).reshape(8, 2), np.asarray(obs["agent_pos"])


def model_scores(
    model, value, frames, prev_actions, is_first, agent_xy, plans: np.ndarray, particles: int = 0, caution: float = 1.0
) -> dict[str, np.ndarray]:
    """Scores ``[N]`` of ``plans [N, H, 2]`` from the state after observing the context ``frames [C, ...]``:
    ``reward`` (the reward head summed over the deterministic rollout), with ``value`` ``goal`` (its known-goal
    value at the end), with ``particles`` ``sampled`` (the summed reward's mean minus ``caution`` x its std over
    that many rollouts sampling the latent, a pessimistic score)."""
    from worldrl.agents.planners.common import expand_batch

    scores = {}
    with torch.no_grad():
        state = model.observe(
            torch.from_numpy(frames)[None].float(),
            torch.from_numpy(prev_actions)[None].float(),
            torch.from_numpy(is_first)[None],
        )[:, -1]
        start = expand_batch(state, len(plans))
        states = model.rollout(start, torch.from_numpy(plans))
        scores["reward"] = states["reward"].sum(-1).numpy()
        if value is not None:
            value.observe({KEY: frames[-1:], "observation.state": agent_xy[None].astype(np.float32)})
            scores["goal"] = value(model.latent(states[:, -1])).numpy()
        if particles:
            generator = torch.Generator().manual_seed(0)
            sampled = torch.stack(
                [model.rollout(start, torch.from_numpy(plans), generator)["reward"].sum(-1) for _ in range(particles)]
            )
            scores["sampled"] = (sampled.mean(0) - caution * sampled.std(0)).numpy()
    return scores


def summarise(name: str, row: dict[str, list[float]], unit: str) -> None:
    """One table row: the rank correlation over candidates (mean +- 95% over starts), the pick's real shortfall
    against the best candidate, and its real gain over holding still beside the gain the model expected."""
    rho = np.asarray([r for r in row["rho"] if np.isfinite(r)])
    half = 1.96 * rho.std(ddof=1) / np.sqrt(len(rho)) if len(rho) > 1 else float("nan")
    real, expected = np.asarray(row["over_hold"]), np.asarray(row["expected_over_hold"])
    print(
        f"| {name} | {rho.mean():+.2f} +- {half:.2f} ({len(rho)} starts) | {np.mean(row['short']):.3f} | "
        f"{real.mean():+.3f} (model: {expected.mean():+.3f}) | {int((real > 0).sum())} / {int((real < 0).sum())} "
        f"| {spearman(expected, real):+.2f} | {unit} |"
    )


def sibling_script(name: str):
    """``scripts/<name>.py`` beside this one, imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    from worldrl.data import LeRobotDatasetReader, split_episodes
    from worldrl.data.suite_layouts import LAYOUTS
    from worldrl.models.checkpoint import load_pretrained
    from worldrl.tasks.real_envs import make_real_env

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint directory of a PushT pixel vrnn")
    parser.add_argument("--data", required=True, help="its PushT pixel dataset (with the keypoint column)")
    parser.add_argument(
        "--reader",
        type=Path,
        default=None,
        help="directory of the block reader for the goal value (benchmark_robot's block_reader.safetensors; trained "
        "on --data there when missing)",
    )
    parser.add_argument("--reader-steps", type=int, default=3000, help="updates of a block reader trained here")
    parser.add_argument("--starts", type=int, default=24, help="held-out starts")
    parser.add_argument(
        "--pick",
        choices=("moving", "random"),
        default="moving",
        help="where the block moves most in the recording (pushes), or uniformly at random",
    )
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--std", type=float, default=0.3, help="perturbation std, CEM's normalised units")
    parser.add_argument("--context", type=int, default=8, help="frames observed before the plan (as MPC does)")
    parser.add_argument("--particles", type=int, default=0, help="sampled rollouts per candidate (0: none)")
    parser.add_argument("--caution", type=float, default=1.0, help="std multiple the sampled score subtracts")
    args = parser.parse_args(argv)

    bench = sibling_script("benchmark_robot")
    torch.manual_seed(0)
    model = load_pretrained(args.model).eval()
    value = None
    if args.reader is not None:
        block_reader, _ = bench.fit_block_reader(args.reader, Path(args.data), args.reader_steps)  # loads if there
        value = bench.PixelGoalValue(model, block_reader)
    reader = LeRobotDatasetReader(args.data, video_cache_mb=1024)
    _, val = split_episodes([int(e["episode_index"]) for e in reader.episodes], 0.1, 0)
    diagnosis = sibling_script("pusht_pixel_diagnosis")
    starts = (
        diagnosis.moving_windows(reader, val, args.horizon, args.starts)
        if args.pick == "moving"
        else random_windows(reader, val, args.horizon, args.context, args.starts)
    )
    action = reader.column("action").astype(np.float32)
    agent = reader.column("observation.state").astype(np.float32)
    keypoints = reader.column("observation.environment_state").astype(np.float32).reshape(-1, 8, 2)
    episode_of = reader.episode_of(np.arange(reader.num_frames))
    env = make_real_env(bench.PUSHT, **LAYOUTS["gym-pusht"].kwargs(False))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    rows = {
        name: {k: [] for k in ("rho", "short", "over_hold", "expected_over_hold")}
        for name in ("reward", "sampled", "goal")
    }

    def goal_distance(keypoints: np.ndarray, pusher: np.ndarray) -> torch.Tensor:
        return bench.goal_distance(torch.from_numpy(keypoints[None]), torch.from_numpy(pusher[None]))

    print(f"{len(starts)} held-out starts x {args.candidates} candidates of {args.horizon} steps", flush=True)
    for n, t in enumerate(starts):
        lo, _ = reader.episode_range(int(episode_of[t]))
        ctx = np.arange(max(lo, t - args.context + 1), t + 1)
        prev = np.where((ctx > lo)[:, None], action[np.maximum(ctx - 1, 0)], 0.0).astype(np.float32)
        velocity = (agent[t] - agent[t - 1]) * FPS if t > lo else np.zeros(2, np.float32)
        plans = candidates(action[t : t + args.horizon], agent[t], args.candidates, args.std, rng)
        scores = model_scores(
            model, value, reader.frames(KEY, ctx), prev, ctx == lo, agent[t], plans, args.particles, args.caution
        )
        real = [replay(env, agent[t], velocity, keypoints[t], plan) for plan in plans]
        real_reward = np.array([r[0].sum() for r in real])
        real_goal = -np.array([float(goal_distance(k, p)) for _, k, p in real]) / bench.GOAL_PIXELS_PER_UNIT
        truths = {"reward": real_reward, "sampled": real_reward, "goal": real_goal}
        scored = [(name, score, truths[name]) for name, score in scores.items()]
        for name, predicted, truth in scored:
            row, pick = rows[name], int(np.argmax(predicted))
            row["rho"].append(spearman(predicted, truth))
            row["short"].append(float(truth.max() - truth[pick]))
            row["over_hold"].append(float(truth[pick] - truth[1]))  # candidate 1 holds still
            row["expected_over_hold"].append(float(predicted[pick] - predicted[1]))
        print(
            f"  start {n + 1}/{len(starts)}: rank correlation "
            + ", ".join(f"{k} {rows[k]['rho'][-1]:+.2f}" for k, *_ in scored),
            flush=True,
        )
    env.close()
    print(
        "\n| score | rank correlation over candidates (mean +- 95%) | real shortfall of the pick against the best "
        "candidate | pick minus holding still, real (model) | starts where the pick is better / worse in reality "
        "| rank correlation of the expected and the real gain over starts | units |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    summarise("model's reward, summed (`mpc`)", rows["reward"], "coverage / 0.95 per step, summed")
    if args.particles:
        summarise(
            f"summed reward over {args.particles} sampled rollouts, mean - {args.caution} std",
            rows["sampled"],
            "coverage / 0.95 per step, summed",
        )
    if value is not None:
        summarise(
            "known-goal value (`mpc-goal`)", rows["goal"], f"minus goal distance / {bench.GOAL_PIXELS_PER_UNIT:.0f} px"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
