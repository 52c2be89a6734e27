"""Save and load a fusion model without copying its frozen backbones.

A checkpoint directory holds ``fusion_config.json`` (the ``FusionConfig`` plus the sha256 of the Gemma 3 and world
sources' weight files), ``fusion.safetensors`` (the projector, the rows of the added world tokens, and every
backbone tensor that was trainable: those differ from the source) and ``processor/`` (the tokenizer with the world
tokens). Loading rebuilds from the sources, verifies their hashes and refuses a mismatch in one line. Never pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from worldrl.errors import CheckpointError
from worldrl.io import atomic_directory, read_json, write_json
from worldrl.models.external import weights_sha256
from worldrl.models.fusion.config import FusionConfig

CONFIG_NAME = "fusion_config.json"
WEIGHTS_NAME = "fusion.safetensors"
PROCESSOR_DIR = "processor"
FORMAT_VERSION = 1


def is_fusion_checkpoint(path: str | Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file()


def trained_tensors(model: Any) -> dict[str, torch.Tensor]:
    """What a checkpoint stores: the projector, the world-token rows, and the trainable backbone tensors."""
    tensors: dict[str, torch.Tensor] = {}
    if model.projector is not None:
        tensors.update({f"projector.{k}": v for k, v in model.projector.state_dict().items()})
        rows = model.gemma.get_input_embeddings().weight[model.world_ids]
        tensors["world_token_rows"] = rows
    for prefix, module in (("gemma.", model.gemma), ("world.", model.world)):
        if module is None:
            continue
        names = {id(p): n for n, p in module.named_parameters()}
        tensors.update({prefix + names[id(p)]: p for p in module.parameters() if p.requires_grad})
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def save_fusion(model: Any, directory: str | Path) -> None:
    config = model.config
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "config": config.to_dict()}
    meta["gemma_sha256"] = weights_sha256(model.gemma_local_dir)
    if model.world is not None:
        meta["world_sha256"] = weights_sha256(model.world.local_dir)
    meta["dtype"] = str(next(model.gemma.parameters()).dtype).removeprefix("torch.")
    with atomic_directory(directory) as tmp:
        write_json(tmp / CONFIG_NAME, meta)
        save_file(trained_tensors(model), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        model.processor.save_pretrained(str(tmp / PROCESSOR_DIR))


def _verify(local_dir: str, expected: str | None, what: str, path: Path) -> None:
    if expected is None:
        return
    found = weights_sha256(local_dir)
    if found != expected:
        raise CheckpointError(
            f"{path}: the {what} weights at {local_dir} are not those this checkpoint was trained with "
            f"(sha256 {found[:12]}... != {expected[:12]}...)"
        )


def load_fusion(directory: str | Path, dtype: Any = None, device_map: Any = None) -> Any:
    from worldrl.models.fusion.model import WorldGemma

    directory = Path(directory)
    meta = read_json(directory / CONFIG_NAME, CheckpointError)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{directory / CONFIG_NAME}: format_version {meta.get('format_version')} unsupported")
    config = FusionConfig.from_dict(meta["config"])
    model = WorldGemma.build(config, dtype=dtype, device_map=device_map, processor_dir=directory / PROCESSOR_DIR)
    _verify(model.gemma_local_dir, meta.get("gemma_sha256"), "Gemma 3", directory)
    if model.world is not None:
        _verify(model.world.local_dir, meta.get("world_sha256"), "world", directory)
    try:
        tensors = load_file(str(directory / WEIGHTS_NAME))
    except (OSError, RuntimeError) as err:
        raise CheckpointError(f"{directory / WEIGHTS_NAME}: {' '.join(str(err).split())}") from None
    _load(model, tensors, directory / WEIGHTS_NAME)
    return model


def _load(model: Any, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Copy the stored tensors in place; any name the model lacks (or a projector tensor not stored) is an error."""
    targets: dict[str, torch.Tensor] = {}
    if model.projector is not None:
        targets.update({f"projector.{k}": v for k, v in model.projector.state_dict().items()})
    for prefix, module in (("gemma.", model.gemma), ("world.", model.world)):
        if module is not None:
            targets.update({prefix + n: p for n, p in module.named_parameters()})
    unknown = sorted(set(tensors) - set(targets) - {"world_token_rows"})
    missing = sorted(k for k in targets if k.startswith("projector.") and k not in tensors)
    if unknown or missing:
        raise CheckpointError(f"{path} does not fit this model: unknown {unknown[:5]}, missing {missing[:5]}")
    with torch.no_grad():
        for name, value in tensors.items():
            if name == "world_token_rows":
                weight = model.gemma.get_input_embeddings().weight
                weight[model.world_ids] = value.to(weight)
            else:
                targets[name].copy_(value.to(targets[name]))


__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "is_fusion_checkpoint", "load_fusion", "save_fusion", "trained_tensors"]
