"""What trains: projection only by default; stages unfreeze the vision tower, the language model or the world branch.

The projector (and the learned ``<start_of_world>``/``<end_of_world>`` rows) always train. Frozen parts are the
pretrained backbones, which checkpoints reference by source and sha256 instead of copying.
"""

from __future__ import annotations

from torch import nn

from worldrl.errors import ModelConfigurationError

STAGES: dict[str, dict[str, bool]] = {
    "projection": {"freeze_gemma_vision": True, "freeze_gemma_language": True, "freeze_world": True},
    "vision": {"freeze_gemma_vision": False, "freeze_gemma_language": True, "freeze_world": True},
    "language": {"freeze_gemma_vision": True, "freeze_gemma_language": False, "freeze_world": True},
    "world": {"freeze_gemma_vision": True, "freeze_gemma_language": True, "freeze_world": False},
    "gemma": {"freeze_gemma_vision": False, "freeze_gemma_language": False, "freeze_world": True},
    "all": {"freeze_gemma_vision": False, "freeze_gemma_language": False, "freeze_world": False},
}
"""Training stages (TheWorld's progressive unfreezing) as the three freeze flags they set."""


def stage_flags(stage: str) -> dict[str, bool]:
    if stage not in STAGES:
        raise ModelConfigurationError(f"unknown stage {stage!r}; one of {sorted(STAGES)}")
    return dict(STAGES[stage])


def gemma_parts(gemma: nn.Module) -> dict[str, list[nn.Module]]:
    """Gemma3ForConditionalGeneration's modules by the flag that freezes them."""
    inner = gemma.model
    return {
        "freeze_gemma_vision": [inner.vision_tower, inner.multi_modal_projector],
        "freeze_gemma_language": [inner.language_model, gemma.lm_head],
    }


def apply_freezing(
    gemma: nn.Module, world: nn.Module | None, trainable: list[nn.Module], flags: dict[str, bool]
) -> None:
    """Set ``requires_grad`` from the freeze flags; ``trainable`` modules (the projector) always train."""
    for flag, modules in gemma_parts(gemma).items():
        for module in modules:
            module.requires_grad_(not flags[flag])
    if world is not None:
        world.requires_grad_(not flags["freeze_world"])
    for module in trainable:
        module.requires_grad_(True)


def trainable_summary(model: nn.Module) -> tuple[int, int, float]:
    """(trainable parameters, all parameters, trainable share); shared (tied) tensors counted once."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, total, trainable / max(total, 1)


def describe_trainable(model: nn.Module) -> str:
    trainable, total, share = trainable_summary(model)
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * share:.3f}%)"


__all__ = ["STAGES", "apply_freezing", "describe_trainable", "stage_flags", "trainable_summary"]
