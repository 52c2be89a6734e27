"""Read a generated physics question set back: ``read_items(root, split)`` -> ``QAItem`` objects, and scoring.

A missing directory or a corrupted / foreign parquet file gives a one-line error naming the file and the problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from worldrl.errors import DatasetError, InputNotFoundError
from worldrl.evaluation.physics_qa.generate import SCHEMA, SPLITS


@dataclass(frozen=True)
class QAItem:
    id: str
    split: str
    type: str
    question: str
    choices: tuple[str, ...]
    answer: str
    answer_index: int
    tolerance: float
    target: tuple[float, ...]
    baseline: tuple[float, ...]
    context_frames: tuple[str, ...]
    clip: str
    pair_id: str
    scene_kind: str
    scene_seed: int
    scene: str
    initial_state: str
    mjcf: str
    evidence: str

    def scene_description(self) -> dict[str, Any]:
        return json.loads(self.scene)

    def evidence_events(self) -> list[dict[str, Any]]:
        return json.loads(self.evidence)

    def context(self, root: str | Path) -> np.ndarray:
        """The context frames, ``[K, H, W, 3]`` uint8 (paths are relative to the question set root)."""
        from PIL import Image

        return np.stack([np.asarray(Image.open(Path(root) / p).convert("RGB")) for p in self.context_frames])

    def is_correct(self, response: str) -> bool:
        """Exact match (case and surrounding spaces ignored), or within ``tolerance`` for quantitative items."""
        if self.type == "quantitative":
            try:
                x, y = (float(v) for v in response.replace("(", "").replace(")", "").split(","))
            except ValueError:
                return False
            return math.dist((x, y), self.target) <= self.tolerance
        return response.strip().lower() == self.answer.lower()


def _read_split(path: Path) -> list[QAItem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"corrupted question file {path}: {' '.join(str(err).split())}") from err
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    if missing:
        raise DatasetError(f"{path} is not a physics question file: missing columns {missing}")
    names = {f.name for f in fields(QAItem)}
    items = []
    for row in table.to_pylist():
        row = {k: tuple(v) if isinstance(v, list) else v for k, v in row.items() if k in names}
        items.append(QAItem(**row))
    return items


def iter_items(root: str | Path, split: str | None = None) -> Iterator[QAItem]:
    """Items of one split (or all, train then val then test)."""
    root = Path(root)
    if not (root / "data").is_dir():
        raise InputNotFoundError(f"no question set at {root} (expected {root / 'data'}/<split>.parquet)")
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    for name in [split] if split else SPLITS:
        path = root / "data" / f"{name}.parquet"
        if path.exists():
            yield from _read_split(path)


def read_items(root: str | Path, split: str | None = None) -> list[QAItem]:
    return list(iter_items(root, split))


__all__ = ["QAItem", "iter_items", "read_items"]
