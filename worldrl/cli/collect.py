"""``worldrl collect``: record rollouts of a real env into a LeRobot v3.0 dataset."""

from __future__ import annotations

import argparse

from worldrl.data.collect import IMAGE_STORAGE, CollectConfig, collect


def image_size(text: str) -> int | tuple[int, int]:
    """``"64"`` or ``"48x64"`` (height x width)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW, got {text!r}") from err
    if len(parts) not in (1, 2) or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW with positive ints, got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="Gymnasium id (e.g. InvertedPendulum-v5) or dmc:domain-task")
    parser.add_argument("--episodes", type=int, required=True, help="episodes to save")
    parser.add_argument("--out", required=True, help="dataset root directory")
    parser.add_argument(
        "--policy",
        default="random",
        help="random | ou[:theta=..,sigma=..] | scripted | sb3:[ALGO:]PATH.zip | module.path:function",
    )
    parser.add_argument("--epsilon", type=float, default=0.0, help="probability of a random action per step")
    parser.add_argument(
        "--fast-render",
        action="store_true",
        help="MuJoCo frames without shadows and reflections (about 10x faster on CPU)",
    )
    parser.add_argument(
        "--num-envs",
        type=int,
        default=1,
        help="envs stepped in parallel, one worker process each (Gymnasium's AsyncVectorEnv); the dataset is "
        "the same for any N",
    )
    vector = parser.add_mutually_exclusive_group()
    for flag, mode, text in (
        ("--async", "async", "one worker process per env (the default when --num-envs > 1)"),
        ("--sync", "sync", "step all envs in this process"),
    ):
        vector.add_argument(flag, dest="vectorization", action="store_const", const=mode, default="auto", help=text)
    parser.add_argument("--pixels", action="store_true", help="also record offscreen camera frames")
    parser.add_argument(
        "--camera", default=None, help="camera name (default: the env's default camera, stored as 'front')"
    )
    parser.add_argument("--image-size", type=image_size, default=64, help="frame size: N or HxW (default 64)")
    parser.add_argument("--image-storage", choices=IMAGE_STORAGE, default="video", help="mp4 videos or PNG images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-episode-steps", type=int, default=None, help="time limit (truncation)")
    parser.add_argument("--task", default=None, help="task text stored with each frame (default: the env id)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    mode.add_argument("--resume", action="store_true", help="append to an existing dataset")
    parser.add_argument("--vcodec", default="libsvtav1", help="video codec (libsvtav1, libx264, ...)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    parser.add_argument(
        "--scene",
        default=None,
        help="worldrl/Playground-v0 only: scene kind (drop, collide, roll, dominoes, support, push)",
    )
    parser.add_argument(
        "--audio", action="store_true", help="worldrl/Playground-v0 only: record synthetic audio derived from contacts"
    )


def config_from_args(args: argparse.Namespace) -> CollectConfig:
    return CollectConfig(
        env_id=args.env,
        out=args.out,
        episodes=args.episodes,
        policy=args.policy,
        num_envs=args.num_envs,
        vectorization=args.vectorization,
        pixels=args.pixels,
        camera=args.camera,
        image_size=args.image_size,
        image_storage=args.image_storage,
        seed=args.seed,
        max_episode_steps=args.max_episode_steps,
        task=args.task,
        overwrite=args.overwrite,
        resume=args.resume,
        vcodec=args.vcodec,
        epsilon=args.epsilon,
        fast_render=args.fast_render,
        scene=args.scene,
        audio=args.audio,
    )


def run(args: argparse.Namespace) -> int:
    collect(config_from_args(args), progress=not args.quiet)
    return 0
