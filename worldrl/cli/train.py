"""``worldrl train --config FILE [key=value ...] [--resume]``: fit a world model from a YAML preset."""

from __future__ import annotations

import argparse
import sys

from worldrl.training.trainer import TrainingDivergedError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (see configs/*.yaml)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. trainer.max_steps=100 model.num_members=3"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")


def run(args: argparse.Namespace) -> int:
    from worldrl.training.run import build_trainer, load_config, write_resolved_config

    try:
        cfg = load_config(args.config, args.overrides)
        trainer = build_trainer(cfg)
    except (ValueError, KeyError, FileNotFoundError) as err:  # bad config, missing dataset, unknown family
        print(f"worldrl train: error: {_one_line(err)}", file=sys.stderr)
        return 2
    write_resolved_config(cfg, trainer.output_dir)
    try:
        trainer.fit(resume=args.resume)
    except FileExistsError as err:
        print(f"worldrl train: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:
        print(f"worldrl train: error: {_one_line(err)}", file=sys.stderr)
        return 1
    return 0


def _one_line(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split())
