"""``TrainerConfig``: every knob of the shared trainer, typed, documented and validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from worldrl.config_loading import config_from_dict, require

PRECISIONS = ("fp32", "bf16", "fp16")
_NUMERIC = {"int": int, "float": float, "int | None": int, "float | None": float}
LOGGERS = ("jsonl", "wandb", "tensorboard")


@dataclass
class TrainerConfig:
    """How to fit any world model: optimisation, precision, evaluation, checkpoints, logging."""

    max_steps: int = 1000
    """Optimizer steps to run (one step = ``batch_size`` windows, possibly over several micro-batches)."""
    batch_size: int = 64
    """Windows per optimizer step (split into ``grad_accum_steps`` equal micro-batches)."""
    lr: float = 1e-3
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW moment coefficients."""
    eps: float = 1e-8
    """AdamW denominator epsilon."""
    warmup_steps: int = 0
    """Linear warm-up from 0 to ``lr`` over this many steps."""
    schedule: str = "constant"
    """Learning-rate shape after warm-up: ``"cosine"``, ``"constant"`` or ``"linear"`` (see ``schedules.py``)."""
    min_lr_ratio: float = 0.0
    """Floor of the cosine/linear decay as a fraction of ``lr``."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value; None = no clipping."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step; ``batch_size`` must be divisible by it."""
    precision: str = "fp32"
    """``"fp32"``, ``"bf16"`` (autocast on CPU and GPU) or ``"fp16"`` (autocast + GradScaler, CUDA only)."""
    ema_decay: float | None = None
    """Decay of an exponential moving average of the weights, used for validation and the saved model; None = off."""
    eval_every: int = 100
    """Validate every this many steps (and at the end); 0 = only at the end."""
    val_batches: int | None = 8
    """Validation batches per evaluation (fixed windows spread evenly over the validation set); None = all of it."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without a lower validation loss; None = off."""
    checkpoint_every: int = 500
    """Write a resumable checkpoint every this many steps (and at the end); 0 = only at the end."""
    keep_last: int = 3
    """Keep only the newest K step checkpoints."""
    log_every: int = 10
    """Log training metrics (averaged over the interval) every this many steps."""
    progress: bool = True
    """Show a tqdm bar of the fit; callers with their own bar (the online loop's inner fits) turn it off."""
    loggers: list[str] = field(default_factory=lambda: ["jsonl"])
    """Metric sinks: ``"jsonl"`` (always on), ``"wandb"`` (offline unless configured), ``"tensorboard"``; a list
    (``trainer.loggers=[wandb,tensorboard]``) or one name, or names joined by commas (``trainer.loggers=wandb``)."""
    gradient_balancing: str = "sum"
    """How the model's loss groups become one gradient: ``"sum"`` or ``"rgb"`` (see ``gradient_balancing.py``)."""
    rgb_mu: float = 0.9
    """RGB: EMA momentum of the consensus direction."""
    rgb_lambd: float = 1.0
    """RGB: weight of the proximity term (how far a rotated gradient may move from its task's direction)."""
    rgb_alpha_steps: int = 3
    """RGB: inner gradient steps on the rotation angles."""
    rgb_inner_lr: float = 0.2
    """RGB: step size of the inner angle optimisation."""
    rgb_every: int = 1
    """RGB: balance every this many backward passes (one per group); the plain sum of the groups in between."""
    num_workers: int = 0
    """DataLoader worker processes for the training windows."""
    device: str = "auto"
    """Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...); ``"auto"`` picks CUDA when available. Under
    ``torchrun`` each process takes ``cuda:LOCAL_RANK``."""
    strategy: str = "none"
    """How processes share the work (``distributed.py``): ``"none"`` (one process), ``"ddp"`` (a replica per
    process, gradients averaged) or ``"fsdp"`` (FSDP2: parameters, gradients and optimizer state sharded).
    Launch several processes with ``torchrun --nproc_per_node N``; ``batch_size`` stays the global batch, split
    evenly over the processes."""
    seed: int = 0
    """Seed of the sampler and of the global RNGs at the start of a fresh run."""
    compile: bool = False
    """Wrap the model's loss in ``torch.compile``."""
    wandb_project: str = "worldrl"
    """Weights & Biases project name when the ``"wandb"`` logger is on."""

    def __post_init__(self) -> None:
        self._check_types()
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.loggers = _logger_names(self.loggers)
        require(self, "max_steps", self.max_steps >= 1, ">= 1")
        require(self, "batch_size", self.batch_size >= 1, ">= 1")
        require(self, "lr", self.lr > 0, "> 0")
        require(self, "weight_decay", self.weight_decay >= 0, ">= 0")
        require(self, "betas", len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "two values in [0, 1)")
        require(self, "eps", self.eps > 0, "> 0")
        require(self, "warmup_steps", self.warmup_steps >= 0, ">= 0")
        from worldrl.training.schedules import SCHEDULES  # late: schedules imports nothing from here

        require(self, "schedule", self.schedule in SCHEDULES, f"one of {sorted(SCHEDULES)}")
        require(self, "min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]")
        require(self, "grad_clip", self.grad_clip is None or self.grad_clip > 0, "> 0 or null")
        require(self, "grad_accum_steps", self.grad_accum_steps >= 1, ">= 1")
        require(
            self,
            "grad_accum_steps",
            self.batch_size % self.grad_accum_steps == 0,
            f"divide batch_size={self.batch_size}",
        )
        require(self, "precision", self.precision in PRECISIONS, f"one of {list(PRECISIONS)}")
        require(self, "ema_decay", self.ema_decay is None or 0 < self.ema_decay < 1, "in (0, 1) or null")
        require(self, "eval_every", self.eval_every >= 0, ">= 0")
        require(self, "val_batches", self.val_batches is None or self.val_batches >= 1, ">= 1 or null")
        require(
            self,
            "early_stopping_patience",
            self.early_stopping_patience is None or self.early_stopping_patience >= 1,
            ">= 1 or null",
        )
        require(self, "checkpoint_every", self.checkpoint_every >= 0, ">= 0")
        require(self, "keep_last", self.keep_last >= 1, ">= 1")
        require(self, "log_every", self.log_every >= 1, ">= 1")
        unknown = sorted(set(self.loggers) - set(LOGGERS))
        require(self, "loggers", not unknown, f"a list of {list(LOGGERS)} (unknown: {unknown})")
        from worldrl.training.gradient_balancing import COMBINERS

        require(self, "gradient_balancing", self.gradient_balancing in COMBINERS, f"one of {sorted(COMBINERS)}")
        require(self, "rgb_mu", 0 <= self.rgb_mu < 1, "in [0, 1)")
        require(self, "rgb_lambd", self.rgb_lambd >= 0, ">= 0")
        require(self, "rgb_alpha_steps", self.rgb_alpha_steps >= 0, ">= 0")
        require(self, "rgb_inner_lr", self.rgb_inner_lr > 0, "> 0")
        require(self, "rgb_every", isinstance(self.rgb_every, int) and self.rgb_every >= 1, "an integer >= 1")
        require(self, "num_workers", self.num_workers >= 0, ">= 0")
        from worldrl.training.distributed import STRATEGIES

        require(self, "strategy", self.strategy in STRATEGIES, f"one of {sorted(STRATEGIES)}")

    def _check_types(self) -> None:
        """Numbers must be numbers (YAML reads ``lr: 3e-4`` as a string); ints are accepted for floats."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), _NUMERIC.get(str(f.type))
            if kind is None or (value is None and "None" in str(f.type)):
                continue
            accepted = (int,) if kind is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, accepted):
                require(self, f.name, False, kind.__name__)
            setattr(self, f.name, kind(value))

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.grad_accum_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "trainer") -> TrainerConfig:
        """The config from ``to_dict`` output or a YAML ``trainer`` section (strict: ``config_from_dict``)."""
        return config_from_dict(cls, data, where)


def _logger_names(value: Any) -> list[str]:
    """``"wandb"`` and ``"wandb,tensorboard"`` as lists (a string is one value, not a list of letters)."""
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return list(value)
