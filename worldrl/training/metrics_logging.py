"""Metric sinks behind one interface: JSONL (always on), Weights & Biases and TensorBoard (when asked).

``metrics.jsonl`` holds one JSON object per log event: ``{"step": int, "split": "train"|"val", "metrics": {...}}``.
Non-finite values are written as strings (``"nan"``) so every line stays strict JSON.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from worldrl.errors import ConfigError, MissingDependencyError
from worldrl.io import atomic_write_bytes

METRICS_FILE = "metrics.jsonl"


class MetricLogger(Protocol):
    def log(self, step: int, split: str, metrics: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def _json_safe(value: Any) -> Any:
    value = float(value) if not isinstance(value, (str, bool)) else value
    return value if not isinstance(value, float) or math.isfinite(value) else repr(value)


class JsonlLogger:
    """Appends one line per event to ``output_dir/metrics.jsonl`` (flushed, so a crash loses nothing logged)."""

    def __init__(self, output_dir: Path, **_: Any) -> None:
        self.path = Path(output_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        record = {"step": int(step), "split": split, "metrics": {k: _json_safe(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class WandbLogger:
    """Weights & Biases run in ``output_dir``; offline unless ``WANDB_MODE`` or ``WANDB_API_KEY`` say otherwise."""

    def __init__(
        self, output_dir: Path, config: dict[str, Any] | None = None, project: str = "worldrl", **_: Any
    ) -> None:
        try:
            import wandb
        except ImportError as err:
            raise MissingDependencyError("the 'wandb' logger needs `pip install wandb`") from err
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self._run = wandb.init(project=project, dir=str(output_dir), config=config or {}, mode=mode, reinit=True)

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        self._run.log({f"{split}/{k}": v for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self._run.finish()


class TensorBoardLogger:
    """Scalars under ``output_dir/tensorboard``."""

    def __init__(self, output_dir: Path, **_: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise MissingDependencyError("the 'tensorboard' logger needs `pip install tensorboard`") from err
        self._writer = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(f"{split}/{key}", value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


LOGGERS: dict[str, Callable[..., MetricLogger]] = {
    "jsonl": JsonlLogger,
    "wandb": WandbLogger,
    "tensorboard": TensorBoardLogger,
}


class MultiLogger:
    """Fans every event out to the configured sinks; JSONL is always among them."""

    def __init__(
        self, names: list[str], output_dir: Path, config: dict[str, Any] | None = None, project: str = "worldrl"
    ):
        unknown = sorted(set(names) - set(LOGGERS))
        if unknown:
            raise ConfigError(f"unknown logger(s) {unknown}; known: {sorted(LOGGERS)}")
        ordered = ["jsonl"] + [n for n in dict.fromkeys(names) if n != "jsonl"]
        self.sinks = [LOGGERS[n](output_dir, config=config, project=project) for n in ordered]

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.log(step, split, metrics)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a torn last line from a crash is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(path: str | os.PathLike, last_step: int) -> None:
    """Drop records after ``last_step`` (logged by a run that died before its next checkpoint), atomically."""
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
    atomic_write_bytes(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept).encode())
