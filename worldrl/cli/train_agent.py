"""``worldrl train-agent --agent {mpc-cem,mpc-mppi,mpc-ac,dreamer,mbpo} --env ID --real-steps N``: the online loop.

Collect real steps, fit the world model, improve the agent in imagination, evaluate on the real env every
``--eval-every`` steps; curves (CSV + PNG), checkpoints and the final model and agent go to ``--out``.
Agent settings: ``--agent-option key=value`` (YAML values), e.g. ``--agent-option num_samples=400``.
"""

from __future__ import annotations

import argparse

from worldrl.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", required=True, help="mpc-cem, mpc-mppi, mpc-ac, dreamer or mbpo")
    parser.add_argument("--env", required=True, dest="env_id", help="real env id, e.g. Pendulum-v1")
    parser.add_argument("--real-steps", type=int, required=True, help="total real environment steps")
    parser.add_argument(
        "--model-config",
        default=None,
        help="YAML with model/trainer sections (default: configs/ensemble_<task>.yaml if present)",
    )
    parser.add_argument(
        "--model-family",
        default=None,
        help="world-model family (ensemble, vrnn, ...): its packaged preset <family>_<task>.yaml (default: ensemble)",
    )
    parser.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model setting over the model config's model section (repeatable), value parsed as YAML",
    )
    parser.add_argument("--model", default=None, help="pretrained world-model checkpoint to start from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=1000, help="real steps between real-env evaluations")
    parser.add_argument("--eval-episodes", type=int, default=5, help="real episodes per evaluation")
    parser.add_argument("--steps-per-iteration", type=int, default=250, help="real steps between model fits")
    parser.add_argument(
        "--collect-envs", type=int, default=1, help="real envs stepped in parallel worker processes (AsyncVectorEnv)"
    )
    parser.add_argument(
        "--initial-random-steps", type=int, default=None, help="random-action warm-up steps (default: one episode)"
    )
    parser.add_argument("--model-steps", type=int, default=100, help="optimiser steps per model fit")
    parser.add_argument("--out", default=None, help="output directory (default: runs/<agent>_<env>_s<seed>)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... or auto")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in --out (refused otherwise; train-agent cannot resume)",
    )
    parser.add_argument(
        "--agent-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="agent setting (repeatable), value parsed as YAML",
    )
    parser.add_argument("--no-dataset", action="store_true", help="do not write the real steps as a LeRobot dataset")
    parser.add_argument(
        "--no-video", action="store_true", help="do not record the final agent's real episode as final_episode.mp4"
    )


def parse_key_values(items: list[str], flag: str = "--agent-option") -> dict:
    """``["key=value", ...]`` -> ``{key: YAML value}``: agent, model and planner options (``flag`` names the option
    in errors)."""
    from worldrl.config_loading import load_yaml
    from worldrl.training.run import coerce_numbers  # YAML 1.1 reads "1e-3" as a string

    options = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r} must look like key=value")
        value = load_yaml(raw, f"{flag} {item!r}: {raw!r}") if raw.strip() else None
        options[key.strip()] = coerce_numbers(value)
    return options


def run(args: argparse.Namespace) -> int:
    from worldrl.loops import OnlineConfig, train_agent

    out = args.out or f"runs/{args.agent}_{args.env_id.replace(':', '_')}_s{args.seed}"
    config = OnlineConfig(
        agent=args.agent,
        env_id=args.env_id,
        real_steps=args.real_steps,
        seed=args.seed,
        initial_random_steps=args.initial_random_steps,
        steps_per_iteration=args.steps_per_iteration,
        collect_envs=args.collect_envs,
        model_config=args.model_config,
        model_family=args.model_family,
        model_options=parse_key_values(args.model_option, "--model-option"),
        model=args.model,
        model_steps=args.model_steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        output_dir=out,
        device=args.device,
        agent_options=parse_key_values(args.agent_option),
        save_dataset=not args.no_dataset,
        video=not args.no_video,
        overwrite=args.overwrite,
    )
    train_agent(config)  # a diverged model or agent exits 1 (DivergedError), bad input 2
    return 0
