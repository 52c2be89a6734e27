"""The one trainer every world-model family uses: it only calls the ``WorldModel`` training protocol.

Per optimizer step: ``grad_accum_steps`` micro-batches -> ``model.loss`` (or ``model.loss_groups`` under a
gradient-balancing combiner) -> backward -> unscale, clip -> AdamW step -> lr schedule -> EMA ->
``model.on_train_step_end``; then logging, validation (EMA weights when on, ``model.on_validation_end``,
best model, early stopping) and checkpoints. Sampling is an endless stream of seeded per-epoch
permutations, so the data position is a single integer and resuming replays the exact same batches.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from tqdm.auto import tqdm

from worldrl.errors import CheckpointError, ConfigError, DatasetError, DivergedError, OutputExistsError
from worldrl.models.base import WorldModel
from worldrl.training.checkpointing import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    remove_checkpoints_after,
    save_checkpoint,
    step_dir_name,
)
from worldrl.training.config import TrainerConfig
from worldrl.training.distributed import LossModule, build_strategy, check_batch_divides
from worldrl.training.ema import EMA
from worldrl.training.gradient_balancing import SumCombiner, build_combiner
from worldrl.training.metrics_logging import METRICS_FILE, MultiLogger, truncate_metrics
from worldrl.training.optimizer import build_adamw, clip_grad_norm
from worldrl.training.schedules import build_scheduler


class TrainingDivergedError(DivergedError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint.

    ``reason`` and ``checkpoint`` hold the two parts apart, so a caller that keeps its own checkpoints (the
    online loop) reports the reason with its own checkpoint instead of parsing this message.
    """

    def __init__(self, reason: str, checkpoint: Path | None) -> None:
        self.reason, self.checkpoint = reason, checkpoint
        super().__init__(f"{reason}; stopped. Last good checkpoint: {checkpoint or 'none written yet'}")


@dataclass
class TrainResult:
    """What a finished ``Trainer.fit`` reports."""

    steps: int
    """Optimizer steps completed (including those of a run this one resumed)."""
    seconds: float
    """Wall-clock time of this ``fit`` call."""
    final_train_loss: float | None
    """Mean training loss over the last logging interval."""
    final_val_loss: float | None
    """Validation loss of the saved model at the end (None without validation data)."""
    best_val_loss: float | None
    """Lowest validation loss seen."""
    best_step: int | None
    """Step of ``best_val_loss``."""
    stopped_early: bool
    """Early stopping ended the run before ``max_steps``."""
    output_dir: Path
    model_path: Path
    """``output_dir/model``: the final weights (EMA weights when EMA is on)."""
    best_path: Path | None
    """``output_dir/best``: the best-validation weights, when validation ran."""
    last_checkpoint: Path | None
    """The newest resumable checkpoint."""
    metrics_path: Path = field(default_factory=Path)
    """``output_dir/metrics.jsonl``."""

    def summary(self) -> str:
        val = "no validation" if self.final_val_loss is None else f"val loss {self.final_val_loss:.5g}"
        if self.best_val_loss is not None:
            val += f" (best {self.best_val_loss:.5g} at step {self.best_step})"
        train = "n/a" if self.final_train_loss is None else f"{self.final_train_loss:.5g}"
        stop = ", stopped early" if self.stopped_early else ""
        return (
            f"trained {self.steps} steps in {self.seconds:.1f}s{stop}; train loss {train}; {val}\n"
            f"model: {self.model_path}" + (f"\nbest: {self.best_path}" if self.best_path else "")
        )


# --------------------------------------------------------------------------- sampling and batching
def epoch_permutation(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of epoch ``epoch``: a pure function of (seed, epoch), so no generator state to save."""
    return np.random.default_rng([seed, epoch]).permutation(num_items)


class InfiniteBatchSampler:
    """Endless batches of indices from consecutive seeded permutations, starting at sample ``start``.

    With ``world_size`` > 1 each batch is the same global batch on every rank, of which rank ``rank`` yields
    its own contiguous slice: the ranks together see each window of the stream exactly once, as one process
    would (a ``DistributedSampler`` over the endless stream)."""

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if num_items < 1:
            raise DatasetError("the training dataset has no windows (check the episode split and window length)")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} does not split over {world_size} ranks")
        self.num_items, self.batch_size, self.seed, self.start = num_items, batch_size, seed, start
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.num_items)
            order = epoch_permutation(self.num_items, self.seed, epoch)
            batch: list[int] = []
            while len(batch) < self.batch_size:
                take = order[offset : offset + self.batch_size - len(batch)]
                batch.extend(int(i) for i in take)
                offset += len(take)
                if offset >= self.num_items:
                    epoch, offset = epoch + 1, 0
                    order = epoch_permutation(self.num_items, self.seed, epoch)
            position += self.batch_size
            share = self.batch_size // self.world_size
            yield batch[self.rank * share : (self.rank + 1) * share]


def collate_windows(items: list[dict[str, Any]]) -> TensorDict:
    """Stack dataset windows into a ``[B, T]`` TensorDict; per-window scalars are broadcast over time."""
    stacked = default_collate(items)
    if "mask" not in stacked:
        raise KeyError(f"dataset items need a 'mask' [T] entry; got keys {sorted(stacked)}")
    batch_size = tuple(stacked["mask"].shape[:2])
    out = {}
    for key, value in stacked.items():
        value = torch.as_tensor(value)
        if value.ndim == 1:
            value = value[:, None].expand(batch_size)
        elif tuple(value.shape[:2]) != batch_size:
            raise DatasetError(
                f"dataset key {key!r} has shape {tuple(value.shape[1:])} per window, expected [T={batch_size[1]}, ...]"
            )
        out[key] = value
    return nest_keyed(TensorDict(out, batch_size=batch_size))


KEY_SEPARATOR = "/"
"""Window names ``"<role>/<dataset key>"`` (``"obs/observation.state"``) collate into a nested ``role`` entry."""


def nest_keyed(batch: TensorDict) -> TensorDict:
    """``batch`` with ``"obs/<key>"`` entries gathered into one ``obs`` TensorDict keyed by dataset key."""
    roles: dict[str, dict[str, torch.Tensor]] = {}
    for name in [k for k in batch.keys() if isinstance(k, str) and KEY_SEPARATOR in k]:
        role, key = name.split(KEY_SEPARATOR, 1)
        roles.setdefault(role, {})[key] = batch.pop(name)
    for role, entries in roles.items():
        batch[role] = TensorDict(entries, batch_size=batch.batch_size)
    return batch


def to_task_shapes(batch: TensorDict, task: Any) -> TensorDict:
    """Give ``obs``/``action`` the task's per-step shapes (datasets squeeze features of shape (1,) to scalars,
    while the protocol promises ``action [B, T, A]``); anything that does not fit is a named error. Keyed
    observations are reshaped key by key."""
    if task.is_keyed:
        targets = [(("obs", key), tuple(space.shape)) for key, space in task.key_spaces().items()]
    else:
        targets = [("obs", task.obs_shape)]
    for key, shape in [*targets, ("action", tuple(task.action_space.shape))]:
        if key not in batch.keys(include_nested=True):
            continue
        value = batch.get(key)
        if tuple(value.shape[2:]) == tuple(shape):
            continue
        if value[0, 0].numel() != int(np.prod(shape)):
            raise DatasetError(
                f"batch[{key!r}] has per-step shape {tuple(value.shape[2:])}, but the task expects {tuple(shape)}"
            )
        batch.set(key, value.reshape(*batch.batch_size, *shape))
    return batch


def resolve_device(name: str) -> torch.device:
    """``trainer.device`` as a torch device that exists here (``auto``: CUDA if present); one-line error else."""
    from worldrl.models.checkpoint import resolve_device as existing_device

    return existing_device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# --------------------------------------------------------------------------- the trainer
def checked_parameter_groups(model: WorldModel, lr: float) -> list[dict[str, Any]]:
    """The family's optimiser groups (``WorldModel.parameter_groups``), checked: each trainable parameter exactly
    once, no frozen one. Learning-rate schedules scale every group's own ``lr`` alike."""
    groups = model.parameter_groups(lr)
    seen: set[int] = set()
    for group in groups:
        for param in group["params"]:
            if not param.requires_grad:
                raise ValueError(
                    f"{type(model).__name__}.parameter_groups puts a frozen parameter in {group.get('name')!r}"
                )
            if id(param) in seen:
                raise ValueError(f"{type(model).__name__}.parameter_groups lists a parameter twice")
            seen.add(id(param))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if not trainable:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    if seen != trainable:
        raise ValueError(
            f"{type(model).__name__}.parameter_groups leaves {len(trainable - seen)} trainable parameter(s) out"
        )
    return groups


class _NullLogger:
    """The sink of ranks other than 0: only rank 0 writes metrics."""

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class _Progress:
    step: int = 0
    position: int = 0
    best_val_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    last_val_loss: float | None = None
    last_val_step: int | None = None


def validation_windows(dataset: Dataset, batches: int | None, batch_size: int) -> Dataset:
    """The windows one validation scores: all of them, or ``batches * batch_size`` spread evenly over the set (its
    windows come in episode order, so the first ones alone would be the first episode's opening steps)."""
    if batches is None or len(dataset) <= batches * batch_size:
        return dataset
    return Subset(dataset, np.linspace(0, len(dataset) - 1, batches * batch_size).round().astype(int).tolist())


class Trainer:
    """Fits ``model`` on ``train_dataset`` windows; see the module docstring for the step anatomy."""

    def __init__(
        self,
        model: WorldModel,
        train_dataset: Dataset,
        val_dataset: Dataset | None,
        config: TrainerConfig,
        output_dir: str | Path,
    ) -> None:
        self.config = config
        self.output_dir = Path(output_dir)
        self.strategy = build_strategy(config.strategy, resolve_device(config.device))
        self.device, self.process = self.strategy.device, self.strategy.info
        check_batch_divides(config.micro_batch_size, self.process, config.batch_size, config.grad_accum_steps)
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(
                f"TrainerConfig.precision='fp16' needs a CUDA device (GradScaler), but the device is {self.device}; "
                "use 'bf16' or 'fp32'"
            )
        self.model = model.to(self.device)
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.ema = EMA(self.model, config.ema_decay) if config.ema_decay is not None else None  # before sharding
        self.combiner = build_combiner(
            config.gradient_balancing,
            mu=config.rgb_mu,
            lambd=config.rgb_lambd,
            alpha_steps=config.rgb_alpha_steps,
            inner_lr=config.rgb_inner_lr,
            interval=config.rgb_every,
        )
        loss_fn = torch.compile(self.model.loss) if config.compile else self.model.loss
        groups_fn = torch.compile(self.model.loss_groups) if config.compile else self.model.loss_groups
        # the optimiser takes the parameters as the strategy leaves them (FSDP2 replaces them by shards)
        self.loss_module = self.strategy.wrap(
            LossModule(self.model, loss_fn, groups_fn), manual_grad_sync=not isinstance(self.combiner, SumCombiner)
        )
        groups = checked_parameter_groups(self.model, config.lr)
        self.params = [p for group in groups for p in group["params"]]
        self.optimizer = build_adamw(
            groups, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
        )
        self.scheduler = build_scheduler(
            self.optimizer,
            max_steps=config.max_steps,
            warmup_steps=config.warmup_steps,
            schedule=config.schedule,
            min_lr_ratio=config.min_lr_ratio,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.progress = _Progress()

    # ------------------------------------------------------------------ paths
    @property
    def checkpoints_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    @property
    def eval_model(self) -> WorldModel:
        """The weights that validate and get saved: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------------ public API
    def fit(self, resume: bool = False, resume_from: str | Path | None = None) -> TrainResult:
        """Train to ``max_steps`` (or early stop). ``resume`` continues from the newest checkpoint in
        ``output_dir`` (a fresh start when there is none); ``resume_from`` from a given checkpoint directory."""
        cfg, start_time = self.config, time.perf_counter()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._start(resume, resume_from)
        main = self.process.is_main  # only rank 0 logs and writes files
        logger = (
            MultiLogger(cfg.loggers, self.output_dir, config=cfg.to_dict(), project=cfg.wandb_project)
            if main
            else _NullLogger()
        )
        batches = self._train_batches()
        window: dict[str, list[float]] = {}
        last_train_loss: float | None = None
        stopped_early = False
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.progress.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=not (cfg.progress and main),
        )
        try:
            while self.progress.step < cfg.max_steps and not stopped_early:
                metrics = self._train_step(batches)
                step = self.progress.step
                for key, value in metrics.items():
                    window.setdefault(key, []).append(value)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4g}", lr=f"{metrics['lr']:.2e}", refresh=False)
                if step % cfg.log_every == 0 or step == cfg.max_steps:
                    means = self.strategy.mean_metrics({k: float(np.mean(v)) for k, v in window.items()})
                    last_train_loss = means["loss"]
                    logger.log(step, "train", means)
                    window = {}
                if cfg.eval_every and step % cfg.eval_every == 0:
                    stopped_early = self._validate(logger)
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    self._checkpoint()
            if self.progress.last_val_step != self.progress.step:
                self._validate(logger)
            last = self._checkpoint()
            self._save_eval_model("model")
            self.strategy.barrier()  # every rank returns once the files exist
        finally:
            bar.close()
            logger.close()
        best = self.output_dir / "best"
        result = TrainResult(
            steps=self.progress.step,
            seconds=time.perf_counter() - start_time,
            final_train_loss=last_train_loss,
            final_val_loss=self.progress.last_val_loss,
            best_val_loss=self.progress.best_val_loss,
            best_step=self.progress.best_step,
            stopped_early=stopped_early,
            output_dir=self.output_dir,
            model_path=self.output_dir / "model",
            best_path=best if best.exists() else None,
            last_checkpoint=last,
            metrics_path=self.output_dir / METRICS_FILE,
        )
        if main:
            tqdm.write(result.summary())
        return result

    def _full_eval_model(self) -> WorldModel:
        """``eval_model`` with whole weights (every rank calls it: FSDP gathers the shards)."""
        return self.ema.module if self.ema is not None else self.strategy.full_model(self.model)

    def _save_eval_model(self, name: str) -> None:
        model = self._full_eval_model()
        if self.process.is_main:
            model.save_pretrained(str(self.output_dir / name))

    # ------------------------------------------------------------------ start / resume
    def _start(self, resume: bool, resume_from: str | Path | None) -> None:
        checkpoint = Path(resume_from) if resume_from is not None else None
        if checkpoint is None and resume:
            checkpoint = latest_checkpoint(self.checkpoints_dir)
        if checkpoint is not None:
            self._restore(checkpoint)
            self.strategy.barrier()  # all ranks have read the checkpoint before rank 0 prunes anything
            if self.process.is_main:
                # what the abandoned branch wrote after this point must not mix with the continuation
                truncate_metrics(self.output_dir / METRICS_FILE, self.progress.step)
                remove_checkpoints_after(self.checkpoints_dir, self.progress.step)
            return
        if latest_checkpoint(self.checkpoints_dir) is not None:
            raise OutputExistsError(
                f"{self.output_dir} already holds checkpoints of a run; resume it (--resume / fit(resume=True)) "
                "or choose another output_dir"
            )
        if self.process.is_main:
            (self.output_dir / METRICS_FILE).unlink(missing_ok=True)
        seed_everything(self.config.seed + self.process.rank)  # ranks draw different noise for their windows

    def _restore(self, directory: Path) -> None:
        model_state, state = load_checkpoint(directory)
        self.strategy.check_resumable(state.get("distributed"), str(directory))
        self.strategy.load_model_state(self.model, model_state)
        self.strategy.load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state["ema"] is None:
                raise CheckpointError(f"{directory} was written without EMA, but ema_decay={self.config.ema_decay}")
            self.ema.load_state_dict(state["ema"])
        self.combiner.load_state_dict(state["combiner"])
        self.progress = _Progress(**state["progress"])
        set_rng_state(state["rng_ranks"][self.process.rank] if "rng_ranks" in state else state["rng"])

    def _checkpoint(self) -> Path:
        """Write a resumable checkpoint (rank 0 writes; every rank takes part in gathering the state)."""
        optimizer_state = self.strategy.optimizer_state(self.optimizer)
        rng_ranks = self.strategy.gather_objects(rng_state())
        model = self.strategy.full_model(self.model)
        path = self.checkpoints_dir / step_dir_name(self.progress.step)
        if not self.process.is_main:
            return path
        state = {
            "progress": vars(self.progress).copy(),
            "optimizer": optimizer_state,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "combiner": self.combiner.state_dict(),
            "rng": rng_ranks[0],
            "config": self.config.to_dict(),
            "distributed": self.strategy.describe(),
        }
        if len(rng_ranks) > 1:
            state["rng_ranks"] = rng_ranks
        save_checkpoint(path, model, state)
        prune_checkpoints(self.checkpoints_dir, self.config.keep_last)
        return path

    # ------------------------------------------------------------------ training
    def _train_batches(self) -> Iterator[TensorDict]:
        cfg = self.config
        sampler = InfiniteBatchSampler(
            len(self.train_dataset),
            cfg.micro_batch_size,
            cfg.seed,
            self.progress.position,
            rank=self.process.rank,
            world_size=self.process.world_size,
        )
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            num_workers=cfg.num_workers,
            collate_fn=collate_windows,
            # its own generator: creating the iterator must not draw from the global RNG, or resume would drift
            generator=torch.Generator().manual_seed(cfg.seed),
            persistent_workers=cfg.num_workers > 0,
        )
        return iter(loader)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
        if self.config.precision not in dtypes:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtypes[self.config.precision])

    def _train_step(self, batches: Iterator[TensorDict]) -> dict[str, float]:
        cfg = self.config
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for micro in range(cfg.grad_accum_steps):
            batch = to_task_shapes(next(batches), self.model.task).to(self.device, non_blocking=True)
            with self.strategy.no_sync(last_micro_batch=micro == cfg.grad_accum_steps - 1):
                with self._autocast():
                    losses, metrics = self._losses(batch)
                total = torch.stack([loss.float() for loss in losses]).sum()
                overall = self.strategy.all_mean(total.detach())  # every rank stops together on a bad loss
                if not torch.isfinite(overall):
                    self._diverged(float(overall))
                self.combiner.backward([self.scaler.scale(loss / cfg.grad_accum_steps) for loss in losses], self.params)
            metrics = {**metrics, "loss": float(total.detach())}
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + float(value) / cfg.grad_accum_steps
        self.strategy.sync_grads(self.params)
        self.scaler.unscale_(self.optimizer)
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        grad_norm = clip_grad_norm(self.params, max_norm)
        if hasattr(grad_norm, "full_tensor"):  # FSDP2: the norm over all shards
            grad_norm = grad_norm.full_tensor()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.strategy.sync_buffers(self.model)
        if self.ema is not None:
            self.ema.update(self.strategy.full_model(self.model))
        self.progress.step += 1
        self.progress.position += cfg.batch_size
        self.model.on_train_step_end(self.progress.step)
        return {**sums, "grad_norm": float(grad_norm), "lr": float(lr)}

    def _losses(self, batch: TensorDict) -> tuple[list[torch.Tensor], dict[str, float]]:
        if isinstance(self.combiner, SumCombiner):
            total, metrics = self.loss_module(batch)
            return [total], metrics
        groups, metrics = self.loss_module(batch, groups=True)
        return list(groups.values()), {**metrics, **{f"loss/{k}": float(v.detach()) for k, v in groups.items()}}

    def _diverged(self, value: float) -> None:
        last = latest_checkpoint(self.checkpoints_dir)
        raise TrainingDivergedError(f"training loss is {value} at step {self.progress.step + 1}", last)

    # ------------------------------------------------------------------ validation
    def _val_batches(self) -> Iterator[TensorDict]:
        """This rank's share of the validation batches (batch i goes to rank i mod world size)."""
        loader = DataLoader(
            validation_windows(self.val_dataset, self.config.val_batches, self.config.micro_batch_size),
            batch_size=self.config.micro_batch_size,
            shuffle=False,
            collate_fn=collate_windows,
        )
        for i, batch in enumerate(loader):
            if i % self.process.world_size == self.process.rank:
                yield to_task_shapes(batch, self.model.task).to(self.device, non_blocking=True)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float] | None:
        """Validation metrics of ``eval_model`` averaged over the validation windows (None without any);
        the ranks split the batches and add up their sums."""
        if self.val_dataset is None or len(self.val_dataset) == 0:
            return None
        model = self._full_eval_model()
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        count = 0
        for batch in self._val_batches():
            with self._autocast():
                loss, metrics = model.loss(batch)
            size = batch.batch_size[0]
            for key, value in {**metrics, "loss": float(loss)}.items():
                sums[key] = sums.get(key, 0.0) + float(value) * size
            count += size
        model.train(was_training)
        if self.process.world_size > 1:
            # every rank holds the same metric names once one batch ran; a rank without batches learns them here
            keys = sorted(set().union(*(set(names) for names in self.strategy.gather_objects(sorted(sums)))))
            totals = self.strategy.all_sum(
                torch.tensor([sums.get(k, 0.0) for k in keys] + [count], dtype=torch.float64)
            )
            sums, count = dict(zip(keys, totals[:-1].tolist())), int(totals[-1])
        return {k: v / count for k, v in sums.items()} if count else None

    def _validate(self, logger: MultiLogger) -> bool:
        """Run validation, track the best model; True when early stopping says stop."""
        metrics = self.evaluate()
        progress = self.progress
        progress.last_val_step = progress.step
        if metrics is None:
            return False
        self.model.on_validation_end(metrics)
        if self.ema is not None:
            self.ema.module.on_validation_end(metrics)
        logger.log(progress.step, "val", metrics)
        progress.last_val_loss = metrics["loss"]
        improved = math.isfinite(metrics["loss"]) and (
            progress.best_val_loss is None or metrics["loss"] < progress.best_val_loss
        )
        if improved:
            progress.best_val_loss, progress.best_step, progress.bad_evals = metrics["loss"], progress.step, 0
            self._save_eval_model("best")
        else:
            progress.bad_evals += 1
        patience = self.config.early_stopping_patience
        return patience is not None and progress.bad_evals >= patience
