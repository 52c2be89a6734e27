"""The shared trainer: AdamW, schedules, AMP, EMA, accumulation, clipping, gradient balancing (sum/RGB),
checkpoints without pickle, exact resume, early stopping and metric logging, one process or several under
``torchrun`` (``trainer.strategy``: ddp, fsdp; ``distributed.py``); plus ``train_from_config``."""

from worldrl.training.config import TrainerConfig
from worldrl.training.gradient_balancing import COMBINERS, RGBCombiner, SumCombiner, build_combiner, rgb_combine
from worldrl.training.trainer import Trainer, TrainingDivergedError, TrainResult

__all__ = [
    "COMBINERS",
    "RGBCombiner",
    "SumCombiner",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TrainingDivergedError",
    "build_combiner",
    "rgb_combine",
    "train_from_config",
]


def __getattr__(name: str):  # run.py pulls in the data layer; import it only when asked
    if name == "train_from_config":
        from worldrl.training.run import train_from_config

        return train_from_config
    raise AttributeError(name)
