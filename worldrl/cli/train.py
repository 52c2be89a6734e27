"""``worldrl train --config FILE [key=value ...] [--resume]``: fit a world model from a YAML preset."""

from __future__ import annotations

import argparse

EPILOG = """\
common overrides (every field of the config's sections can be set; see README.md):
  trainer.max_steps=600        optimizer steps
  trainer.loggers=wandb        metric sinks besides the JSONL file, always written: wandb, tensorboard;
                               one name, names joined by commas, or a list: trainer.loggers=[wandb,tensorboard]
                               (wandb runs offline unless WANDB_MODE or WANDB_API_KEY is set;
                               trainer.wandb_project=NAME names its project; tensorboard writes
                               OUTPUT_DIR/tensorboard)
  trainer.device=cuda          torch device (default: auto)
  trainer.strategy=ddp         several processes: none | ddp | fsdp (FSDP2), launched with
                               torchrun --nproc_per_node N -m worldrl train --config ...;
                               trainer.batch_size is the global batch, split over the processes
  output_dir=runs/NAME         where checkpoints, metrics.jsonl and the final model go
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", required=True, help="YAML config (see configs/*.yaml)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides, e.g. trainer.max_steps=100 model.num_members=3",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in output_dir (settings may change only where "
        "that is safe, e.g. trainer.max_steps; other changes are refused, naming them)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from worldrl.training.distributed import destroy_distributed, process_info
    from worldrl.training.run import accept_run, build_trainer, load_config, write_resolved_config

    cfg = load_config(args.config, args.overrides)
    for change in accept_run(cfg, args.resume):  # refused before anything is written (config.yaml included)
        if process_info().is_main:
            print(f"worldrl train: resuming with changed {change}", file=sys.stderr)
    trainer = None
    try:
        trainer = build_trainer(cfg)  # under torchrun with trainer.strategy=ddp|fsdp: joins the process group
        write_resolved_config(cfg, trainer.output_dir)
        trainer.fit(resume=args.resume)  # a diverged loss exits 1 (DivergedError), an existing run 2
    except KeyboardInterrupt:  # Ctrl-C: where it stopped and how to go on, not a traceback (issue 19)
        if trainer is None or not process_info().is_main:
            raise
        again = " ".join(["worldrl train --config", str(args.config), *args.overrides, "--resume"])
        print(f"worldrl train: stopped at step {trainer.progress.step}; resume with: {again}", file=sys.stderr)
        return 130  # the shell's Ctrl-C status
    finally:
        destroy_distributed()
    return 0
