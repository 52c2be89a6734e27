"""``NeuralWorldTrainer``: the document's training API for users who bring their own loaders, on the shared trainer.

It is a thin adapter: the arguments become a ``TrainerConfig`` and ``train()`` is ``Trainer.fit`` (same step
anatomy, EMA, early stopping, safetensors checkpoints, metrics.jsonl, exact resume). The shared trainer draws its
own seeded batches from ``train_dataloader.dataset`` with the loader's batch size (so a resumed run replays the
same batches); the datasets must yield the trainer's windows (``worldrl.data.multimodal_loaders.create_dataloaders``
or ``worldrl.data.WindowDataset`` items).

``multimodal_model_for(loader, **config)`` builds a ``multimodal`` model for a loader's dataset (task spaces,
normalisation from the training windows, episode starts for envs).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader

from worldrl.errors import TrainingError
from worldrl.models.base import WorldModel, build_model
from worldrl.training.config import TrainerConfig
from worldrl.training.trainer import Trainer, TrainResult, resolve_device

PRECISION_NAMES = {"fp16": "fp16", "bf16": "bf16", "fp32": "fp32", "no": "fp32", None: "fp32"}
DEFAULT_EMA_DECAY = 0.999


def _first_dataset(dataset: Any) -> Any:
    return dataset.datasets[0] if isinstance(dataset, ConcatDataset) else dataset


class NeuralWorldTrainer:
    """The document's constructor; ``**kwargs`` are further ``TrainerConfig`` fields (``lr``, ``device``,
    ``eval_every``, ``max_steps`` (overrides ``num_epochs``), ``grad_clip``, ``seed``, ...).

    ``optimizer`` / ``scheduler`` replace the shared trainer's AdamW / schedule (they must cover the model's
    parameters); ``loss_fn`` (a ``MultimodalLoss``) replaces the model's criterion. ``mixed_precision='fp16'`` on a
    CPU device runs in fp32 (fp16 autocast needs CUDA) and says so.
    """

    def __init__(
        self,
        model: WorldModel,
        train_dataloader: DataLoader,
        val_dataloader: DataLoader | None = None,
        test_dataloader: DataLoader | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any | None = None,
        loss_fn: torch.nn.Module | None = None,
        num_epochs: int = 100,
        gradient_accumulation_steps: int = 1,
        mixed_precision: str = "fp16",
        checkpoint_dir: str = "./checkpoints",
        early_stopping_patience: int | None = 10,
        use_ema: bool = True,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, WorldModel):
            raise TrainingError(f"NeuralWorldTrainer trains worldrl WorldModels, got {type(model).__name__}")
        self._check_loader(train_dataloader, "train_dataloader")
        for name, loader in (("val_dataloader", val_dataloader), ("test_dataloader", test_dataloader)):
            if loader is not None:
                self._check_loader(loader, name)
        if mixed_precision not in PRECISION_NAMES:
            raise TrainingError(f"mixed_precision must be one of fp16, bf16, fp32, no; got {mixed_precision!r}")
        if num_epochs < 1 or gradient_accumulation_steps < 1:
            raise TrainingError(
                f"num_epochs and gradient_accumulation_steps must be >= 1, got {num_epochs}, "
                f"{gradient_accumulation_steps}"
            )
        precision = PRECISION_NAMES[mixed_precision]
        device = resolve_device(str(kwargs.get("device", "auto")))
        if precision == "fp16" and device.type != "cuda":
            print("NeuralWorldTrainer: fp16 needs CUDA; training in fp32 on", device, file=sys.stderr)
            precision = "fp32"
        micro = int(train_dataloader.batch_size)
        batch = micro * gradient_accumulation_steps
        steps_per_epoch = max(1, math.ceil(len(train_dataloader.dataset) / batch))
        fields = {
            "max_steps": num_epochs * steps_per_epoch,
            "batch_size": batch,
            "grad_accum_steps": gradient_accumulation_steps,
            "precision": precision,
            "ema_decay": DEFAULT_EMA_DECAY if use_ema else None,
            "early_stopping_patience": early_stopping_patience,
            "eval_every": steps_per_epoch,
            "checkpoint_every": steps_per_epoch,
            "val_batches": None,
            **kwargs,
        }
        try:
            config = TrainerConfig.from_dict(fields, "NeuralWorldTrainer")
        except ValueError as err:
            raise TrainingError(str(err)) from None
        if loss_fn is not None:
            if not hasattr(model, "criterion"):
                raise TrainingError(f"{type(model).__name__} has no criterion for loss_fn to replace")
            model.criterion = loss_fn
        self.model, self.num_epochs, self.steps_per_epoch = model, num_epochs, steps_per_epoch
        self.test_dataloader = test_dataloader
        val = val_dataloader.dataset if val_dataloader is not None else None
        self.trainer = Trainer(model, train_dataloader.dataset, val, config, checkpoint_dir)
        if optimizer is not None:
            self.trainer.optimizer = optimizer
        if scheduler is not None:
            self.trainer.scheduler = scheduler
        self._resume_from: Path | None = None

    @staticmethod
    def _check_loader(loader: Any, name: str) -> None:
        if not isinstance(loader, DataLoader) or loader.batch_size is None:
            raise TrainingError(f"{name} must be a torch DataLoader with a batch_size, got {type(loader).__name__}")
        if len(loader.dataset) == 0:
            raise TrainingError(f"{name} has no windows (episodes shorter than the sequence length?)")
        item = loader.dataset[0]
        if not isinstance(item, dict) or "mask" not in item:
            raise TrainingError(
                f"{name} must yield worldrl windows (dicts with obs/<key>, action, reward, terminated, is_first, "
                "mask), e.g. from worldrl.data.multimodal_loaders.create_dataloaders"
            )

    @property
    def checkpoint_dir(self) -> Path:
        return self.trainer.output_dir

    def train(self) -> TrainResult:
        """Train for ``num_epochs`` epochs of the training windows (or early stop); continues from a checkpoint
        given to ``load_checkpoint`` or from the newest one in ``checkpoint_dir``."""
        resume_from, self._resume_from = self._resume_from, None
        from worldrl.training.checkpointing import latest_checkpoint

        resume = resume_from is None and latest_checkpoint(self.trainer.checkpoints_dir) is not None
        return self.trainer.fit(resume=resume, resume_from=resume_from)

    def save_checkpoint(self, epoch: int | None = None, metrics: dict[str, float] | None = None) -> Path:
        """Write a resumable checkpoint (weights, optimizer, schedule, EMA, RNG) of the current step; returns its
        directory. ``epoch`` and ``metrics`` are recorded beside it in ``checkpoint_info.json``."""
        from worldrl.io import write_json

        path = self.trainer._checkpoint()
        write_json(
            path / "checkpoint_info.json",
            {"epoch": epoch, "step": self.trainer.progress.step, "metrics": dict(metrics or {})},
        )
        return path

    def load_checkpoint(self, checkpoint_path: str | Path) -> None:
        """Restore weights and trainer state from a checkpoint directory; the next ``train()`` continues there."""
        path = Path(checkpoint_path)
        self.trainer._restore(path)
        self._resume_from = path

    @torch.no_grad()
    def evaluate(self, loader: DataLoader | None = None) -> dict[str, float] | None:
        """Mean loss terms of the training model's EMA/plain weights on ``loader`` (default: the test loader)."""
        loader = loader or self.test_dataloader
        if loader is None:
            return None
        saved = self.trainer.val_dataset
        self.trainer.val_dataset = loader.dataset
        try:
            return self.trainer.evaluate()
        finally:
            self.trainer.val_dataset = saved


def multimodal_model_for(loader: DataLoader, task_id: str | None = None, **config: Any) -> WorldModel:
    """A ``multimodal`` model for the windows of ``loader`` (built with ``create_dataloaders``): task spaces from
    the dataset, normalisation from the loader's windows, training episode starts for envs."""
    from worldrl.training.run import MAX_SAVED_STARTS, _available_stats, episode_starts, infer_task

    dataset = _first_dataset(loader.dataset)
    windows = getattr(dataset, "windows", dataset)
    reader, keys = windows.reader, windows.keys
    obs_keys = [key for name, key in keys.items() if name.startswith("obs/") and key]
    task = infer_task(reader, obs_keys, task_id)
    size = getattr(dataset, "video_size", None)
    if size is not None:  # the loader resizes frames: the model's camera space is the resized one
        import gymnasium as gym

        from worldrl.models.task_spec import TaskSpec

        spaces = task.key_spaces()
        camera = task.image_keys[0]
        spaces[camera] = gym.spaces.Box(0, 255, (size, size, spaces[camera].shape[-1]), spaces[camera].dtype)
        task = TaskSpec.keyed(
            spaces, task.action_space, task_id=task.task_id, fps=task.fps, max_episode_steps=task.max_episode_steps
        )
    model = build_model("multimodal", config, task)
    roles = [name for name, key in keys.items() if key and name != "terminated"]
    model.fit_normalization(_available_stats(windows, roles))
    model.start_states = episode_starts(reader, task, windows.episodes[:MAX_SAVED_STARTS])
    return model


__all__ = ["NeuralWorldTrainer", "multimodal_model_for"]
