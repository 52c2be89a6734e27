"""Fine-tune a fusion Gemma 3 on a question set's train split (``worldrl train-vlm``).

Causal-LM loss on the answer tokens (``prompting.build_batch``), AdamW on the trainable parameters (the freezing
stage decides which), with the shared trainer's pieces: the seeded endless batch sampler, bf16 autocast, gradient
accumulation, EMA, JSONL/wandb logging, and step checkpoints (``save_checkpoint``: the fusion checkpoint + the
optimiser state in safetensors/JSON) that ``resume`` continues from. Data parallel over processes started by
``torchrun`` or ``accelerate launch`` (``WORLD_SIZE`` > 1): each rank takes its slice of the global batch and
gradients are averaged with ``all_reduce`` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from worldrl.config_loading import check_fields
from worldrl.errors import TrainingError
from worldrl.evaluation.vlm.items import VLMItem, read_vlm_items
from worldrl.evaluation.vlm.prompting import build_batch
from worldrl.evaluation.vlm.scoring import world_frame_count
from worldrl.io import read_json, write_json
from worldrl.training.checkpointing import (
    STATE_JSON,
    STATE_TENSORS,
    decode_tree,
    latest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    step_dir_name,
)
from worldrl.training.distributed import destroy_distributed, init_distributed, launched_by_torchrun
from worldrl.training.ema import EMA
from worldrl.training.metrics_logging import MultiLogger
from worldrl.training.trainer import InfiniteBatchSampler, resolve_device, rng_state, seed_everything, set_rng_state

PRECISIONS = ("fp32", "bf16")
TINY = "tiny"
"""``gemma: tiny`` builds a random tiny Gemma 3 (tokenizer trained on the question texts); ``world.source: tiny``
a random tiny Cosmos-Predict2 VAE; both under ``<out>/base`` (offline stand-ins for the real weights)."""


@dataclass
class VLMTrainConfig:
    """A ``configs/fusion_*.yaml`` file."""

    questions: str | list[str]
    """Question set directory (``worldrl qa generate`` output, or the same layout), or several to pool."""
    out: str
    """Run directory: ``model/`` (the final checkpoint), ``checkpoints/``, ``metrics.jsonl``, ``base/``."""
    gemma: str = TINY
    """Gemma 3 source (``google/gemma-3-4b-it``, a directory) or ``tiny``."""
    enable_world: bool = True
    world: dict[str, Any] = field(default_factory=lambda: {"source": TINY})
    """``WorldSpec`` fields (kind, source, model_class, subfolder, image_size)."""
    projection_mode: str = "spatial"
    world_steps: int = 0
    stage: str = "projection"
    """Which parts train: projection, vision, language, world, all (``worldrl.models.fusion.STAGES``)."""
    steps: int = 200
    batch_size: int = 8
    """Global batch (split over data-parallel ranks)."""
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    precision: str = "fp32"
    """``bf16``: autocast to bfloat16 (weights stay in their dtype)."""
    ema_decay: float | None = None
    """Save the EMA of the weights as the final model."""
    seed: int = 0
    log_every: int = 20
    save_every: int = 100
    keep_last: int = 2
    loggers: list[str] = field(default_factory=lambda: ["jsonl"])
    device: str = "auto"
    split: str = "train"

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "steps": (self.steps >= 1, ">= 1"),
                "batch_size": (self.batch_size >= 1, ">= 1"),
                "grad_accum": (self.grad_accum >= 1, ">= 1"),
                "lr": (self.lr > 0, "> 0"),
                "precision": (self.precision in PRECISIONS, f"one of {PRECISIONS}"),
                "ema_decay": (self.ema_decay is None or 0 < self.ema_decay < 1, "in (0, 1) or null"),
                "save_every": (self.save_every >= 1, ">= 1"),
            },
        )


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        """Join the launcher's process group (``torchrun``, ``accelerate launch``); one process otherwise."""
        if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
            return cls()
        info = init_distributed(device)
        return cls(info.rank, info.world_size)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if self.world_size == 1:
            return
        for p in params:
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world_size

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()


def _device(name: str) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def prepare_sources(config: VLMTrainConfig, items: list[VLMItem], dist: Distributed) -> tuple[str, dict | None]:
    """The Gemma 3 and world sources, building the tiny stand-ins under ``<out>/base`` when asked (rank 0)."""
    from worldrl.models.fusion.tiny import build_tiny_gemma, build_tiny_wan_vae

    base = Path(config.out) / "base"
    gemma, world = config.gemma, dict(config.world) if config.enable_world else None
    if gemma == TINY:
        gemma = str(base / "gemma")
        if dist.main and not Path(gemma).is_dir():
            texts = [f"{i.question} {' '.join(i.choices)} {i.answer}" for i in items]
            build_tiny_gemma(gemma, texts, seed=config.seed)
    if world is not None and world.get("source") == TINY:
        world["source"] = str(base / "world")
        if dist.main and not Path(world["source"]).is_dir():
            build_tiny_wan_vae(world["source"], seed=config.seed)
    dist.barrier()
    return gemma, world


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _restore(directory: Path, model: Any, optimizer: torch.optim.Optimizer, ema: EMA | None) -> int:
    from safetensors.torch import load_file

    from worldrl.models.fusion.checkpoint import WEIGHTS_NAME, _load

    _load(model, load_file(str(directory / "model" / WEIGHTS_NAME)), directory / "model" / WEIGHTS_NAME)
    state = decode_tree(read_json(directory / STATE_JSON), load_file(str(directory / STATE_TENSORS)))
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and "ema" in state:
        ema.load_state_dict(state["ema"])
    set_rng_state(state["rng"])
    return int(state["step"])


def train_vlm(config: VLMTrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train and save ``<out>/model``; returns a summary (steps, seconds, first/last loss, trainable share)."""
    from worldrl.models.fusion import WorldGemma, trainable_summary

    device = _device(config.device)
    dist = Distributed.from_env(device)
    seed_everything(config.seed)
    items = read_vlm_items(config.questions, config.split)
    gemma, world = prepare_sources(config, items, dist)
    model = WorldGemma.from_pretrained(
        gemma,
        enable_world=config.enable_world,
        world=world,
        projection_mode=config.projection_mode,
        world_steps=config.world_steps,
        stage=config.stage,
        verbose=dist.main and progress,
    )
    model.config.extra = {"questions": str(config.questions), "train": asdict(config)}
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(model, config.ema_decay) if config.ema_decay else None
    out = Path(config.out)
    checkpoints = out / "checkpoints"
    step = 0
    if resume and (latest := latest_checkpoint(checkpoints)) is not None:
        step = _restore(latest, model, optimizer, ema)
        if dist.main and progress:
            print(f"resumed from {latest} at step {step}")
    frames = world_frame_count(model, items)
    pad = model.processor.tokenizer.pad_token_id
    per_step = config.batch_size * config.grad_accum
    sampler = iter(
        InfiniteBatchSampler(len(items), config.batch_size, config.seed, step * per_step, dist.rank, dist.world_size)
    )
    logger = MultiLogger(config.loggers, out, config=asdict(config), project="worldrl-vlm") if dist.main else None
    losses: list[float] = []
    prompts: dict[str, dict[str, torch.Tensor]] = {}
    start = time.perf_counter()
    while step < config.steps:
        total = 0.0
        for _ in range(config.grad_accum):
            batch = build_batch(
                model.processor, [(items[i], items[i].answer) for i in next(sampler)], frames, pad, prompts
            )
            with _autocast(config.precision, device):
                loss = model(**{k: v.to(device) for k, v in batch.items()}).loss / config.grad_accum
            if not torch.isfinite(loss):
                raise TrainingError(f"train-vlm: the loss became {float(loss)} at step {step}")
            loss.backward()
            total += loss.item()
        dist.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model)
        step += 1
        losses.append(total)
        if logger is not None and (step % config.log_every == 0 or step == config.steps):
            recent = sum(losses[-config.log_every :]) / len(losses[-config.log_every :])
            logger.log(step, "train", {"loss": recent})
            if progress:
                print(f"step {step}/{config.steps}  loss {recent:.4f}  {time.perf_counter() - start:.0f}s", flush=True)
        if dist.main and (step % config.save_every == 0 or step == config.steps):
            state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng_state()}
            if ema is not None:
                state["ema"] = ema.state_dict()
            save_checkpoint(checkpoints / step_dir_name(step), model, state)
            prune_checkpoints(checkpoints, config.keep_last)
    final = ema.module if ema is not None else model
    summary: dict[str, Any] = {"steps": step, "seconds": time.perf_counter() - start, "processes": dist.world_size}
    if dist.main:
        final.save_pretrained(out / "model")
        trainable, total_params, share = trainable_summary(model)
        summary.update(
            first_loss=losses[0] if losses else None,
            last_loss=sum(losses[-10:]) / max(len(losses[-10:]), 1),
            trainable=trainable,
            parameters=total_params,
            trainable_share=share,
            model=str(out / "model"),
        )
        write_json(out / "train_summary.json", summary)
    if logger is not None:
        logger.close()
    dist.barrier()
    destroy_distributed()
    return summary


__all__ = ["Distributed", "VLMTrainConfig", "prepare_sources", "train_vlm"]
