"""One item type for every VLM question set, and the readers that produce it (a registry by format name).

``physics_qa``: the Playground's ``worldrl qa generate`` output (``data/<split>.parquet`` + context frames); Gemma
sees the last context frame, the world branch the context clip. ``blink``: BLINK's local parquet layout
(``blink.py``). ``read_vlm_items(root, split)`` finds the format from the directory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worldrl.errors import DatasetError, InputNotFoundError


@dataclass
class VLMItem:
    """A question with its images and the exact answer."""

    id: str
    split: str
    type: str
    """Question type (physics QA) or task (BLINK): accuracy is reported per type."""
    question: str
    choices: list[str]
    """Options; empty for free-form answers (physics QA's quantitative items)."""
    answer: str
    images: list[np.ndarray]
    """What Gemma sees, ``[H, W, 3]`` uint8 each."""
    frames: np.ndarray
    """What the world branch sees, ``[T, H, W, 3]`` uint8 (a context clip, or the first image)."""
    tolerance: float = float("nan")
    target: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    """Free-form numeric items: the exact answer, and the trivial (stay-put) guess."""

    def is_correct(self, response: str) -> bool:
        """Exact match (case and surrounding spaces ignored), or within ``tolerance`` of ``target``."""
        if self.target:
            try:
                values = [float(v) for v in response.replace("(", "").replace(")", "").split(",")]
            except ValueError:
                return False
            return len(values) == len(self.target) and math.dist(values, self.target) <= self.tolerance
        return response.strip().lower() == self.answer.strip().lower()


def _physics_qa(root: Path, split: str) -> list[VLMItem]:
    from worldrl.evaluation.physics_qa.reader import read_items

    out = []
    for item in read_items(root, split):
        frames = item.context(root)
        out.append(
            VLMItem(
                id=item.id,
                split=item.split,
                type=item.type,
                question=item.question,
                choices=list(item.choices),
                answer=item.answer,
                images=[frames[-1]],
                frames=frames,
                tolerance=item.tolerance,
                target=list(item.target),
                baseline=list(item.baseline),
            )
        )
    return out


def _blink(root: Path, split: str) -> list[VLMItem]:
    from worldrl.evaluation.vlm.blink import read_blink

    return read_blink(root, split)


READERS: dict[str, Callable[[Path, str], list[VLMItem]]] = {"physics_qa": _physics_qa, "blink": _blink}


def detect_format(root: Path) -> str:
    if (root / "data").is_dir() and (root / "meta.json").exists():
        return "physics_qa"
    if any(root.glob("*/*.parquet")):
        return "blink"
    raise InputNotFoundError(
        f"no question set at {root}: expected a `worldrl qa generate` directory (data/<split>.parquet, meta.json) "
        "or BLINK's layout (<Task>/<split>-*.parquet)"
    )


def read_vlm_items(root: str | Path | list, split: str, format: str = "auto") -> list[VLMItem]:
    """Items of ``split`` from a question set directory (or several, pooled); one-line errors for a missing or
    malformed set."""
    if isinstance(root, (list, tuple)):
        return [item for one in root for item in read_vlm_items(one, split, format)]
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"no question set at {root}")
    name = detect_format(root) if format == "auto" else format
    if name not in READERS:
        raise DatasetError(f"unknown question set format {name!r}; one of {sorted(READERS)}")
    items = READERS[name](root, split)
    if not items:
        raise DatasetError(f"{root} has no items in split {split!r}")
    return items


__all__ = ["READERS", "VLMItem", "detect_format", "read_vlm_items"]
