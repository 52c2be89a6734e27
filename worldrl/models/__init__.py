"""World-model families behind one protocol (see ``worldrl.models.base``)."""

from worldrl.models.base import (
    Capabilities,
    WorldModel,
    WorldModelConfig,
    available_families,
    build_model,
    get_family,
    register_family,
)
from worldrl.models.checkpoint import CheckpointError, load_pretrained, save_pretrained
from worldrl.models.hub import push_to_hub
from worldrl.models.task_spec import TaskSpec

__all__ = [
    "Capabilities",
    "CheckpointError",
    "TaskSpec",
    "WorldModel",
    "WorldModelConfig",
    "available_families",
    "build_model",
    "get_family",
    "load_pretrained",
    "push_to_hub",
    "register_family",
    "save_pretrained",
]
