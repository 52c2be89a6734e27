"""Training strategies over ``torch.distributed``: ``none`` (one process), ``ddp`` and ``fsdp`` (FSDP2).

The trainer is written once; a strategy supplies what differs between them:

* ``wrap``: the module the trainer calls for its losses. Both DDP and FSDP2 hook a module's ``forward``
  (DDP readies its gradient buckets, FSDP2 gathers the sharded parameters), while the trainer calls
  ``model.loss``; :class:`LossModule` turns that call into a ``forward`` so any ``nn.Module`` works.
* ``full_model``: the model with its whole, plain parameters (FSDP2 gathers them into an unsharded copy;
  the others already hold them) for validation, EMA updates and ``save_pretrained``.
* collectives over ranks: means of metrics, sums, gathered Python objects, barriers.
* optimizer and model state in a form one checkpoint holds (FSDP2: full, unsharded state dicts keyed by
  parameter name, so rank 0 writes one file set like a single process would).

The process group comes from the launcher's environment (``torchrun`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); started without one, ``ddp``/``fsdp`` run as a group of one
(a local store), so a config behaves the same with and without ``torchrun``. Backend: nccl on CUDA, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from worldrl.errors import CheckpointError, ConfigError

_OWNED_GROUP = False
"""True when this module created the default process group (so it may destroy it)."""


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process sits among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True inside a process started by ``torchrun`` (or any launcher setting the env:// variables)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def process_info() -> ProcessInfo:
    """This process's rank and world size (rank 0 of 1 without a process group)."""
    if not dist.is_available() or not dist.is_initialized():
        return ProcessInfo()
    return ProcessInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def init_distributed(device: torch.device) -> ProcessInfo:
    """Join (or create) the default process group for ``device``; a no-op when one exists already."""
    global _OWNED_GROUP
    if not dist.is_available():
        raise ConfigError("trainer.strategy needs torch.distributed, which this torch build lacks")
    if not dist.is_initialized():
        if launched_by_torchrun():
            dist.init_process_group(backend_for(device))
        else:  # a group of one, without ports or env variables
            dist.init_process_group(backend_for(device), store=dist.HashStore(), rank=0, world_size=1)
        _OWNED_GROUP = True
    return process_info()


def destroy_distributed() -> None:
    """Destroy the process group ``init_distributed`` created (launchers warn about a group left behind)."""
    global _OWNED_GROUP
    if _OWNED_GROUP and dist.is_initialized():
        dist.destroy_process_group()
    _OWNED_GROUP = False


def rank_device(device: torch.device, info: ProcessInfo) -> torch.device:
    """One GPU per process: ``cuda`` means ``cuda:LOCAL_RANK`` under a launcher."""
    if device.type == "cuda" and device.index is None and info.world_size > 1:
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return device


@contextlib.contextmanager
def main_process_first(strategy: str, device: torch.device) -> Iterator[ProcessInfo]:
    """Rank 0 runs the body first (writing a dataset, say) while the others wait, then they run it (finding the
    files there). A plain body for ``strategy="none"``."""
    if strategy == "none":
        yield ProcessInfo()
        return
    info = init_distributed(device)
    rank_device(device, info)
    if not info.is_main:
        dist.barrier()
    yield info
    if info.is_main:
        dist.barrier()


class LossModule(nn.Module):
    """``forward(batch, groups)`` -> ``loss_fn(batch)`` or ``groups_fn(batch)`` of the wrapped world model.

    ``loss_fn``/``groups_fn`` are the model's ``loss``/``loss_groups`` (possibly ``torch.compile``d)."""

    def __init__(self, model: nn.Module, loss_fn: Callable, groups_fn: Callable) -> None:
        super().__init__()
        self.model = model
        self._fns = (loss_fn, groups_fn)

    def forward(self, batch: Any, groups: bool = False) -> Any:
        return self._fns[int(groups)](batch)


# --------------------------------------------------------------------------- strategies
class SingleProcess:
    """``none``: one process, no collectives; every method is the identity of the distributed ones."""

    name = "none"

    def __init__(self, device: torch.device, info: ProcessInfo | None = None) -> None:
        self.info = info or ProcessInfo()
        self.device = device
        self.module: nn.Module | None = None

    # ------------------------------------------------------------- model
    def wrap(self, module: LossModule, manual_grad_sync: bool = False) -> nn.Module:
        """The module to call for losses. ``manual_grad_sync``: backward passes that bypass ``.backward()``
        hooks (gradient balancing calls ``autograd.grad``) are synchronised by ``sync_grads`` instead."""
        self.module = module
        return module

    def no_sync(self, last_micro_batch: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient exchange on all but the last micro-batch of an accumulated step."""
        return contextlib.nullcontext()

    def sync_grads(self, params: list[torch.Tensor]) -> None:
        """Average gradients that the wrapped module did not exchange itself (see ``wrap``)."""

    def sync_buffers(self, model: nn.Module) -> None:
        """After a step: make every rank's buffers rank 0's (a normaliser fitted on a rank's first batch)."""

    def full_model(self, model: nn.Module) -> nn.Module:
        """``model`` with whole, plain parameters; every rank must call it (FSDP2 gathers)."""
        return model

    # ------------------------------------------------------------- collectives
    def all_mean(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def mean_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each metric averaged over ranks (every rank must pass the same keys)."""
        if self.info.world_size == 1 or not metrics:
            return metrics
        keys = sorted(metrics)
        values = self.all_mean(torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64))
        return {k: float(v) for k, v in zip(keys, values.tolist())}

    def gather_objects(self, obj: Any) -> list[Any]:
        return [obj]

    def barrier(self) -> None:
        pass

    # ------------------------------------------------------------- checkpoints
    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return optimizer.state_dict()

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state)

    def load_model_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(state)

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records, so a resume can check it runs the same way."""
        return {"strategy": self.name, "world_size": self.info.world_size}

    def check_resumable(self, saved: dict[str, Any] | None, where: str) -> None:
        """A checkpoint resumes only under the strategy and world size that wrote it."""
        saved = saved or {"strategy": "none", "world_size": 1}
        if saved.get("world_size", 1) != self.info.world_size:
            raise CheckpointError(
                f"{where} was written by {saved.get('world_size', 1)} process(es) and this run has "
                f"{self.info.world_size}; resume with the same --nproc_per_node"
            )
        if saved.get("strategy", "none") != self.name:
            raise CheckpointError(
                f"{where} was written with trainer.strategy={saved.get('strategy', 'none')}, this run uses {self.name}"
            )


class _Collective(SingleProcess):
    """Shared collectives of the multi-process strategies."""

    def __init__(self, device: torch.device) -> None:
        info = init_distributed(device)
        super().__init__(rank_device(device, info), info)

    def all_mean(self, value: torch.Tensor) -> torch.Tensor:
        return self.all_sum(value) / self.info.world_size

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.info.world_size == 1:
            return value
        out = value.detach().clone().to(self.device)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(value.device)

    def gather_objects(self, obj: Any) -> list[Any]:
        if self.info.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.info.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.info.world_size > 1:
            dist.barrier()


class DataParallel(_Collective):
    """``ddp``: a full replica per process; ``DistributedDataParallel`` averages gradients during backward."""

    name = "ddp"

    def wrap(self, module: LossModule, manual_grad_sync: bool = False) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        self.manual = manual_grad_sync
        ids = [self.device.index] if self.device.type == "cuda" else None
        # find_unused_parameters: a family's loss may leave a head out of some batches (no reward column)
        self.module = DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)
        return self.module

    def no_sync(self, last_micro_batch: bool) -> contextlib.AbstractContextManager:
        if self.manual or not last_micro_batch:
            return self.module.no_sync()
        return contextlib.nullcontext()

    def sync_grads(self, params: list[torch.Tensor]) -> None:
        if not self.manual or self.info.world_size == 1:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.info.world_size)


class FullyShardedDataParallel(_Collective):
    """``fsdp``: FSDP2 (``fully_shard``) shards parameters, gradients and optimizer state over the ranks.

    The whole model is one FSDP unit (the trainer cannot know which submodules a family calls through
    ``forward``): parameters are gathered for each forward/backward and stay sharded in between, so the
    optimizer state, the largest part of training memory, is split ``world_size`` ways.
    """

    name = "fsdp"

    def wrap(self, module: LossModule, manual_grad_sync: bool = False) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        name = type(module.model).__name__
        if manual_grad_sync:
            raise ConfigError(
                "trainer.strategy=fsdp cannot balance gradients (gradient_balancing=rgb needs whole per-task "
                "gradients); use trainer.strategy=ddp or gradient_balancing=sum"
            )
        if not any(p.requires_grad for p in module.parameters()):
            raise ConfigError(f"trainer.strategy=fsdp: {name} has no trainable parameters to shard; use ddp or none")
        mesh = init_device_mesh(self.device.type, (self.info.world_size,))
        self.mirror = copy.deepcopy(module.model)
        self.mirror.requires_grad_(False)
        self.module = fully_shard(module, mesh=mesh)
        return self.module

    def full_model(self, model: nn.Module) -> nn.Module:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        # an all-gather into the unsharded copy made at wrap time (FSDP2's own unshard() leaves parameters
        # on storage that safetensors cannot read)
        state = get_model_state_dict(self.module, options=self._options())
        self.mirror.load_state_dict({key.removeprefix("model."): value for key, value in state.items()})
        self.mirror.train(model.training)
        return self.mirror

    def sync_buffers(self, model: nn.Module) -> None:
        # DDP broadcasts buffers before each forward; FSDP2 shards parameters only, so do it here
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)

    def _options(self, **kwargs: Any) -> Any:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=True, **kwargs)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        # every rank takes part in the gather; rank 0 receives the full state (the others an empty dict)
        return get_optimizer_state_dict(self.module, optimizer, options=self._options(cpu_offload=True))

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(self.module, optimizer, optim_state_dict=state, options=self._options())

    def load_model_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        # names as the wrapped LossModule sees them; every rank read the full state from disk
        full = {f"model.{key}": value for key, value in state.items()}
        set_model_state_dict(self.module, full, options=self._options())


STRATEGIES: dict[str, type[SingleProcess]] = {
    "none": SingleProcess,
    "ddp": DataParallel,
    "fsdp": FullyShardedDataParallel,
}
"""``trainer.strategy`` names -> strategy classes."""


def build_strategy(name: str, device: torch.device) -> SingleProcess:
    """The strategy ``name`` for ``device`` (joins the process group for ``ddp``/``fsdp``)."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown trainer.strategy {name!r}; known: {sorted(STRATEGIES)}")
    return STRATEGIES[name](device)


def check_batch_divides(micro_batch_size: int, info: ProcessInfo, batch_size: int, grad_accum_steps: int) -> None:
    """Every rank takes an equal slice of each micro-batch, so the world size must divide it."""
    if micro_batch_size % info.world_size:
        raise ConfigError(
            f"trainer.batch_size={batch_size} (micro-batches of {micro_batch_size} with grad_accum_steps="
            f"{grad_accum_steps}) cannot be split evenly over {info.world_size} processes; use a multiple of "
            f"{info.world_size * grad_accum_steps}"
        )
