"""``worldrl train --config FILE [key=value ...] [--resume]``: fit a world model from a YAML preset."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (see configs/*.yaml)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. trainer.max_steps=100 model.num_members=3"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")


def run(args: argparse.Namespace) -> int:
    from worldrl.training.run import build_trainer, load_config, write_resolved_config

    cfg = load_config(args.config, args.overrides)
    trainer = build_trainer(cfg)
    write_resolved_config(cfg, trainer.output_dir)
    trainer.fit(resume=args.resume)  # a diverged loss exits 1 (DivergedError), an existing run 2
    return 0
