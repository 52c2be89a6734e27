"""``worldrl plan-goal --model DIR --env ID``: goal-image planning (``mpc-goal``, CEM in latent space) on the real
env, each episode's goal being the observation a few random actions away; against random and zero actions."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint directory or Hub id of a latent model (vjepa2)")
    parser.add_argument("--env", default="Reacher-v5", help="real env id (rendered at the model's camera size)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=15, help="actions per episode")
    parser.add_argument("--goal-steps", type=int, default=10, help="random actions from the start to the goal")
    parser.add_argument("--success", type=float, default=0.05, help="success radius of --body (m)")
    parser.add_argument("--body", default="fingertip", help="MuJoCo body whose distance to the goal is reported")
    parser.add_argument("--samples", type=int, default=32, help="CEM samples")
    parser.add_argument("--horizon", type=int, default=2, help="CEM horizon")
    parser.add_argument("--iterations", type=int, default=2, help="CEM iterations")
    parser.add_argument("--goal-image", default=None, help="PNG/JPEG goal frame for every episode (camera's size)")
    parser.add_argument("--goal-camera", default=None, help="camera key the goal image is for (default: first)")
    parser.add_argument("--save-goals", default=None, help="write each episode's goal frame here as PNG")
    parser.add_argument("--out", default=None, help="write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    from worldrl.errors import ConfigError
    from worldrl.loops.goal_reaching import GoalReachingConfig, cem_settings, load_goal_image, run_goal_reaching
    from worldrl.models import load_pretrained

    model = load_pretrained(args.model).eval()
    if getattr(model, "cameras", None) is None:
        raise ConfigError(f"{args.model} is a {type(model).__name__}: plan-goal needs a camera model (vjepa2)")
    planner = cem_settings(args.samples, args.horizon, args.iterations)
    config = GoalReachingConfig(
        env_id=args.env,
        episodes=args.episodes,
        steps=args.steps,
        goal_steps=args.goal_steps,
        success=args.success,
        tracked_body=args.body,
        planner=planner,
        goal_image=load_goal_image(args.goal_image, model, args.goal_camera) if args.goal_image else None,
        save_goals=args.save_goals,
    )
    results = run_goal_reaching(model, config)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        from worldrl.io import atomic_write_bytes

        atomic_write_bytes(args.out, text.encode())
    return 0
