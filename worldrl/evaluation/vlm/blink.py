"""BLINK (Fu et al., ECCV 2024) from its local parquet layout, so users with the data run the same evaluation.

The Hub dataset ``BLINK-Benchmark/BLINK`` downloads as one folder per task, ``<Task>/{val,test}-00000-of-00001
.parquet``, with columns ``idx``, ``question``, ``sub_task``, ``image_1`` .. ``image_4`` (image structs ``{bytes,
path}``, null when the item has fewer images), ``choices`` (list of strings), ``answer`` (``"(A)"``: the choice
letter; the test split's answers are withheld), ``prompt`` and ``explanation``.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from worldrl.errors import DatasetError
from worldrl.evaluation.vlm.items import VLMItem

REQUIRED = ("idx", "question", "choices", "answer", "image_1")
IMAGE_COLUMNS = ("image_1", "image_2", "image_3", "image_4")
_LETTER = re.compile(r"^\(?([A-Z])\)?$")


def _image(cell: dict | None) -> np.ndarray | None:
    if not cell or not cell.get("bytes"):
        return None
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB"))


def _answer(letter: str, choices: list[str], where: str) -> str:
    match = _LETTER.match(letter.strip())
    if not match or ord(match.group(1)) - ord("A") >= len(choices):
        raise DatasetError(f"{where}: answer {letter!r} is not a choice letter among {len(choices)} choices")
    return choices[ord(match.group(1)) - ord("A")]


def read_blink_file(path: Path, split: str) -> list[VLMItem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"corrupted BLINK file {path}: {' '.join(str(err).split())}") from err
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise DatasetError(f"{path} is not a BLINK task file: missing columns {missing}")
    task = path.parent.name
    items = []
    for row in table.to_pylist():
        images = [im for im in (_image(row.get(c)) for c in IMAGE_COLUMNS) if im is not None]
        if not images:
            raise DatasetError(f"{path}: item {row['idx']} has no image")
        choices = list(row["choices"])
        items.append(
            VLMItem(
                id=str(row["idx"]),
                split=split,
                type=str(row.get("sub_task") or task),
                question=row["question"],
                choices=choices,
                answer=_answer(row["answer"], choices, f"{path} item {row['idx']}"),
                images=images,
                frames=images[0][None],
            )
        )
    return items


def read_blink(root: Path, split: str) -> list[VLMItem]:
    """Items of every task folder under ``root`` for ``split`` (``val``; ``test`` has no public answers)."""
    files = sorted(Path(root).glob(f"*/{split}-*.parquet"))
    if not files:
        raise DatasetError(f"{root} holds no BLINK files for split {split!r} (<Task>/{split}-*.parquet)")
    return [item for path in files for item in read_blink_file(path, split)]


__all__ = ["read_blink", "read_blink_file"]
