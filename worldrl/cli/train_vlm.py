"""``worldrl train-vlm --config configs/fusion_*.yaml [key=value ...] [--resume]``: fine-tune a fusion Gemma 3 on a
question set (data parallel under ``torchrun`` or ``accelerate launch --config_file configs/accelerate_fusion.yaml``)."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
common overrides: questions=DIR out=DIR steps=400 stage=all enable_world=false world_steps=2
  projection_mode=channel precision=bf16 grad_accum=4 ema_decay=0.999 loggers=[jsonl,wandb]
  gemma=google/gemma-3-4b-it world.source=nvidia/Cosmos-Predict2-2B-Video2World world.subfolder=vae
data parallel: torchrun --nproc_per_node 2 -m worldrl train-vlm --config ...  (CPU: gloo; note that
  `accelerate launch --cpu --num_processes 2` starts only ONE process; use torchrun or --multi_gpu)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", required=True, help="YAML config (configs/fusion_*.yaml, or a preset name)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. steps=50")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in out/")
    parser.add_argument("--quiet", action="store_true")


def load_vlm_config(path: str, overrides: list[str]):
    from importlib import resources

    from worldrl.config_loading import config_from_dict, load_yaml
    from worldrl.errors import ConfigError
    from worldrl.evaluation.vlm.finetune import VLMTrainConfig
    from worldrl.training.run import apply_overrides, coerce_numbers

    file = Path(path)
    if not file.is_file() and len(file.parts) == 1:
        preset = resources.files("worldrl.configs") / (file.name if file.suffix == ".yaml" else f"{file.name}.yaml")
        file = Path(str(preset)) if preset.is_file() else file
    if not file.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = load_yaml(file.read_text(), str(file)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a mapping at the top level")
    return config_from_dict(VLMTrainConfig, coerce_numbers(apply_overrides(data, overrides)), "train-vlm config")


def run(args: argparse.Namespace) -> int:
    from worldrl.evaluation.vlm.finetune import train_vlm

    config = load_vlm_config(args.config, args.overrides)
    summary = train_vlm(config, resume=args.resume, progress=not args.quiet)
    if "model" in summary:
        print(
            f"trained {summary['steps']} steps in {summary['seconds']:.1f}s ({summary['processes']} process(es)); loss {summary['first_loss']:.3f} -> "
            f"{summary['last_loss']:.3f}; {summary['trainable']:,} trainable of {summary['parameters']:,} "
            f"({100 * summary['trainable_share']:.2f}%) -> {summary['model']}"
        )
    return 0
