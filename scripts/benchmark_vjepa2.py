"""V-JEPA 2 numbers on a recorded pixel task (docs/benchmarks.md, V-JEPA 2 section), each beside its baseline.

    MUJOCO_GL=egl OMP_NUM_THREADS=1 python -m worldrl train --config vjepa2_reacher
    MUJOCO_GL=egl OMP_NUM_THREADS=1 python scripts/benchmark_vjepa2.py --model runs/vjepa2_reacher/model \\
        --dataset outputs/datasets/reacher_pixels --env Reacher-v5 --out outputs/vjepa2_reacher.json

1. Representation: ridge linear probe from frozen features of one frame to the true MuJoCo state
   (``observation.state``) on held-out episodes (the training run's validation split): R^2 of the trained
   encoder, of the same architecture at random initialisation, and of a ridge on raw pixels.
2. Prediction: the AC predictor's open-loop latent L1 at 1..8 steps (``evaluate_fidelity``: the model's
   ``distance``-free latent error) beside "repeat the last latent" and "dataset mean".
3. Planning: goal reaching on the real env (``worldrl.loops.goal_reaching``, as ``worldrl plan-goal``): the goal is
   the frame (and state) ``--goal-steps`` random actions away from the start; ``mpc-goal`` (CEM in latent space)
   then acts ``--steps`` times; final latent and fingertip distance to the goal, success (fingertip < ``--success``),
   against random and zero actions.
4. Speed: training clips/s (from the run's log) and planning seconds per action.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from worldrl.data import LeRobotDatasetReader, split_episodes
from worldrl.evaluation import evaluate_fidelity
from worldrl.loops.goal_reaching import GoalReachingConfig, cem_settings, run_goal_reaching
from worldrl.models import build_model, load_pretrained


def ridge_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """R^2 (uniform over state dims) of a ridge whose penalty is picked on the last fifth of the training rows."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    ym = train_y.mean(0)
    xs, ts = (train_x - mu) / sd, (test_x - mu) / sd
    cut = int(len(xs) * 0.8)

    def fit(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
        if x.shape[1] > x.shape[0]:  # dual form
            return x.T @ np.linalg.solve(x @ x.T + alpha * np.eye(len(x)), y)
        return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)

    def r2(pred: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(1 - ((pred - y) ** 2).sum(0) / (((y - y.mean(0)) ** 2).sum(0) + 1e-12)))

    alphas = [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]
    best = max(alphas, key=lambda a: r2(xs[cut:] @ fit(xs[:cut], train_y[:cut] - ym, a) + ym, train_y[cut:]))
    return r2(ts @ fit(xs, train_y - ym, best) + ym, test_y)


@torch.no_grad()
def frame_features(model, frames: np.ndarray) -> np.ndarray:
    """Frozen-encoder latents of single frames ``[N, H, W, 3]`` of the model's first camera -> ``[N, tokens*D]``."""
    from tensordict import TensorDict

    key, out = model.cameras[0], []
    for i in range(0, len(frames), 256):
        clip = torch.as_tensor(frames[i : i + 256])[:, None]
        obs = TensorDict({key: clip}, batch_size=clip.shape[:2]) if model.task.is_keyed else clip
        out.append(model.encode_frames(obs)[:, 0].flatten(1).numpy())
    return np.concatenate(out)


def probe(model, reader, train_eps: list[int], test_eps: list[int]) -> dict[str, float]:
    key = model.cameras[0]
    states = reader.column("observation.state")

    def rows(eps: list[int]) -> np.ndarray:
        return np.concatenate([np.arange(*reader.episode_range(e)) for e in eps])

    tr, te = rows(train_eps), rows(test_eps)
    frames_tr, frames_te = reader.frames(key, tr), reader.frames(key, te)
    torch.manual_seed(0)
    random_model = build_model("vjepa2", model.config.to_dict(), model.task).eval()
    result = {}
    for name, m in (("trained encoder", model), ("random-init encoder", random_model)):
        result[name] = ridge_r2(frame_features(m, frames_tr), states[tr], frame_features(m, frames_te), states[te])
    small = model.image_size

    def pixels(frames: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255
        return torch.nn.functional.interpolate(x, size=(small, small), mode="area").flatten(1).numpy()

    result[f"raw pixels ({small}x{small})"] = ridge_r2(pixels(frames_tr), states[tr], pixels(frames_te), states[te])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--env", default="Reacher-v5")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--goal-steps", type=int, default=10)
    p.add_argument("--success", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--horizon", type=int, default=3)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_pretrained(args.model).eval()
    reader = LeRobotDatasetReader(args.dataset)
    run_cfg = yaml.safe_load((Path(args.model).parent / "config.yaml").read_text())
    episodes = [int(e["episode_index"]) for e in reader.episodes]
    train_eps, test_eps = split_episodes(episodes, float(run_cfg["data"]["val_fraction"]), int(run_cfg["seed"]))
    out: dict = {"model": args.model, "dataset": args.dataset, "held_out_episodes": test_eps}
    out["probe_r2"] = probe(model, reader, train_eps, test_eps)
    print("linear probe R^2:", out["probe_r2"])
    report = evaluate_fidelity(
        model, reader, test_eps, horizons=(1, 2, 4, 8), context=model.config.context_frames, num_starts=256
    )
    out["latent_l1"] = {
        "model": [h.latent_error for h in report.horizons],
        **{k: [h.latent_error for h in v] for k, v in report.baselines.items()},
    }
    print("latent error at 1, 2, 4, 8 steps:", out["latent_l1"])
    planner = cem_settings(args.samples, args.horizon, args.iterations)
    goal = run_goal_reaching(
        model,
        GoalReachingConfig(
            env_id=args.env,
            episodes=args.episodes,
            steps=args.steps,
            goal_steps=args.goal_steps,
            success=args.success,
            planner=planner,
        ),
    )
    out["goal_reaching"], out["plan_seconds_per_action"] = goal["agents"], goal["plan_seconds_per_action"]
    out["planner"] = planner
    print("goal reaching:", out["goal_reaching"], "plan s/action:", out["plan_seconds_per_action"])
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
