"""``TrainerConfig``: every knob of the shared trainer, typed, documented and validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

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
    """Validation batches per evaluation (in a fixed order); None = the whole validation set."""
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
    """Metric sinks: ``"jsonl"`` (always on), ``"wandb"`` (offline unless configured), ``"tensorboard"``."""
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
    """Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...); ``"auto"`` picks CUDA when available."""
    seed: int = 0
    """Seed of the sampler and of the global RNGs at the start of a fresh run."""
    compile: bool = False
    """Wrap the model's loss in ``torch.compile``."""
    wandb_project: str = "worldrl"
    """Weights & Biases project name when the ``"wandb"`` logger is on."""

    def __post_init__(self) -> None:
        self._check_types()
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.loggers = list(self.loggers)
        _check(self.max_steps >= 1, "max_steps", "must be >= 1", self.max_steps)
        _check(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        _check(self.lr > 0, "lr", "must be > 0", self.lr)
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "must be two values in [0, 1)", self.betas)
        _check(self.eps > 0, "eps", "must be > 0", self.eps)
        _check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0", self.warmup_steps)
        from worldrl.training.schedules import SCHEDULES  # late: schedules imports nothing from here

        _check(self.schedule in SCHEDULES, "schedule", f"must be one of {sorted(SCHEDULES)}", self.schedule)
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]", self.min_lr_ratio)
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 or null", self.grad_clip)
        _check(self.grad_accum_steps >= 1, "grad_accum_steps", "must be >= 1", self.grad_accum_steps)
        _check(
            self.batch_size % self.grad_accum_steps == 0,
            "grad_accum_steps",
            f"must divide batch_size={self.batch_size}",
            self.grad_accum_steps,
        )
        _check(self.precision in PRECISIONS, "precision", f"must be one of {list(PRECISIONS)}", self.precision)
        _check(self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay", "must be in (0, 1) or null", self.ema_decay)
        _check(self.eval_every >= 0, "eval_every", "must be >= 0", self.eval_every)
        _check(self.val_batches is None or self.val_batches >= 1, "val_batches", "must be >= 1 or null", self.val_batches)
        _check(
            self.early_stopping_patience is None or self.early_stopping_patience >= 1,
            "early_stopping_patience",
            "must be >= 1 or null",
            self.early_stopping_patience,
        )
        _check(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0", self.checkpoint_every)
        _check(self.keep_last >= 1, "keep_last", "must be >= 1", self.keep_last)
        _check(self.log_every >= 1, "log_every", "must be >= 1", self.log_every)
        unknown = sorted(set(self.loggers) - set(LOGGERS))
        _check(not unknown, "loggers", f"has unknown entries {unknown}; known: {list(LOGGERS)}", self.loggers)
        from worldrl.training.gradient_balancing import COMBINERS

        _check(
            self.gradient_balancing in COMBINERS,
            "gradient_balancing",
            f"must be one of {sorted(COMBINERS)}",
            self.gradient_balancing,
        )
        _check(0 <= self.rgb_mu < 1, "rgb_mu", "must be in [0, 1)", self.rgb_mu)
        _check(self.rgb_lambd >= 0, "rgb_lambd", "must be >= 0", self.rgb_lambd)
        _check(self.rgb_alpha_steps >= 0, "rgb_alpha_steps", "must be >= 0", self.rgb_alpha_steps)
        _check(self.rgb_inner_lr > 0, "rgb_inner_lr", "must be > 0", self.rgb_inner_lr)
        _check(isinstance(self.rgb_every, int) and self.rgb_every >= 1, "rgb_every", "must be an integer >= 1", self.rgb_every)
        _check(self.num_workers >= 0, "num_workers", "must be >= 0", self.num_workers)

    def _check_types(self) -> None:
        """Numbers must be numbers (YAML reads ``lr: 3e-4`` as a string); ints are accepted for floats."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), _NUMERIC.get(str(f.type))
            if kind is None or (value is None and "None" in str(f.type)):
                continue
            accepted = (int,) if kind is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, accepted):
                raise ValueError(f"TrainerConfig.{f.name} must be {kind.__name__}, got {value!r}")
            setattr(self, f.name, kind(value))

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.grad_accum_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown trainer field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"TrainerConfig.{name} {rule}, got {value!r}")
