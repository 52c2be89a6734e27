"""Read LeRobot datasets (v3.0, and v2.0/v2.1) written by lerobot itself or by worldrl's writer.

Every frame has a global index; the episodes table maps episodes to global ranges
``[dataset_from_index, dataset_to_index)``, to the data parquet holding their rows (many episodes per
file) and, per video key, to an mp4 and the span ``[from_timestamp, to_timestamp)`` inside it.
Non-visual columns are loaded whole (they are small) and cached; frames are decoded on demand.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from worldrl.data.hub import resolve_dataset_root
from worldrl.data.lerobot_format import (
    CODEBASE_VERSION,
    INFO_PATH,
    LEGACY_VERSIONS,
    STATS_PATH,
    SUPPORTED_DTYPES,
    TASKS_PATH,
    DatasetFormatError,
    keys_of_dtype,
    read_parquet,
)
from worldrl.data.stats import aggregate_stats
from worldrl.data.video import FrameCache
from worldrl.errors import DatasetError
from worldrl.io import read_json

EPISODE_COLUMNS = ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index")


@dataclass
class DatasetMeta:
    """Everything the metadata says about where frames live (one loader per format version)."""

    episodes: list[dict[str, Any]]
    tasks: list[str]
    stats: dict[str, Any]
    data_paths: list[Path]
    """Per episode (same order as ``episodes``): the parquet file holding its rows."""
    videos: dict[str, list[tuple[Path, float]]] = field(default_factory=dict)
    """Per video key, per episode: (mp4 path, from_timestamp of the episode inside it)."""


# ----------------------------------------------------------------------------------------------- v3.0


def load_v3_meta(root: Path, info: dict[str, Any]) -> DatasetMeta:
    episodes = read_episodes_table(root)
    if not episodes and info.get("total_episodes", 0):
        raise DatasetFormatError(
            f"{root / 'meta/episodes'} holds no episodes parquet but info.json says {info['total_episodes']}"
        )
    data_paths = [
        root / info["data_path"].format(chunk_index=e["data/chunk_index"], file_index=e["data/file_index"])
        for e in episodes
    ]
    videos = {}
    for key in keys_of_dtype(info["features"], "video"):
        videos[key] = [(root / _video_file(info, key, e), float(e[f"videos/{key}/from_timestamp"])) for e in episodes]
    return DatasetMeta(episodes, read_tasks(root), read_stats(root), data_paths, videos)


def _video_file(info: dict[str, Any], key: str, episode: dict[str, Any]) -> str:
    try:
        chunk, file = episode[f"videos/{key}/chunk_index"], episode[f"videos/{key}/file_index"]
    except KeyError as err:
        raise DatasetFormatError(f"meta/episodes has no column {err} for video feature {key!r}") from None
    if not info.get("video_path"):
        raise DatasetFormatError(f"meta/info.json: video feature {key!r} but 'video_path' is null")
    return info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)


def read_episodes_table(root: Path) -> list[dict[str, Any]]:
    """All rows of ``meta/episodes/chunk-*/file-*.parquet`` (stats columns left out), by episode_index."""
    rows: list[dict[str, Any]] = []
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        table = read_parquet(path)
        missing = [c for c in EPISODE_COLUMNS if c not in table.column_names]
        if missing:
            raise DatasetFormatError(f"{path} lacks the episode columns {missing}")
        keep = [c for c in table.column_names if not c.startswith("stats/")]
        rows += table.select(keep).to_pylist()
    rows.sort(key=lambda r: r["episode_index"])
    return rows


def read_episode_stats_rows(path: Path) -> list[dict[str, Any]]:
    """Full rows (stats columns included) of one episodes parquet; the writer rewrites them on resume."""
    return read_parquet(path).to_pylist()


def read_tasks(root: Path) -> list[str]:
    path = root / TASKS_PATH
    if not path.exists():
        return []
    table = read_parquet(path)
    names = table.column_names
    # pandas stores the task strings as the frame's index ("task" or "__index_level_0__").
    text_col = next((c for c in ("task", "__index_level_0__") if c in names), None)
    if text_col is None or "task_index" not in names:
        raise DatasetFormatError(f"{path} needs a 'task_index' column and the task strings (columns: {names})")
    pairs = sorted(zip(table.column("task_index").to_pylist(), table.column(text_col).to_pylist()))
    tasks = [t for _, t in pairs]
    if [i for i, _ in pairs] != list(range(len(tasks))):
        raise DatasetFormatError(f"{path}: task_index values are not 0..{len(tasks) - 1}")
    return tasks


def read_stats(root: Path) -> dict[str, Any]:
    return read_json(root / STATS_PATH, DatasetFormatError) if (root / STATS_PATH).exists() else {}


# ----------------------------------------------------------------------------------------------- v2.x


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise DatasetFormatError(f"{path} is missing (a v2.x dataset needs it)")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{path} is corrupted (bad JSON line: {err})") from None


def load_v2_meta(root: Path, info: dict[str, Any]) -> DatasetMeta:
    """v2.0/v2.1 (lerobot <= 0.3): one parquet and one mp4 per episode, JSON-lines metadata."""
    rows = sorted(_read_jsonl(root / "meta/episodes.jsonl"), key=lambda r: r["episode_index"])
    chunks = int(info.get("chunks_size", 1000))
    episodes, start = [], 0
    for r in rows:
        length = int(r["length"])
        episodes.append({**r, "dataset_from_index": start, "dataset_to_index": start + length})
        start += length
    tasks = [t["task"] for t in sorted(_read_jsonl(root / "meta/tasks.jsonl"), key=lambda t: t["task_index"])]

    def fmt(template: str, e: dict[str, Any], **kw: Any) -> Path:
        return root / template.format(
            episode_chunk=e["episode_index"] // chunks, episode_index=e["episode_index"], **kw
        )

    data_paths = [fmt(info["data_path"], e) for e in episodes]
    videos = {
        k: [(fmt(info["video_path"], e, video_key=k), 0.0) for e in episodes]
        for k in keys_of_dtype(info["features"], "video")
    }
    stats = read_stats(root)
    if not stats and (root / "meta/episodes_stats.jsonl").exists():
        stats = aggregate_stats([r["stats"] for r in _read_jsonl(root / "meta/episodes_stats.jsonl")])
    return DatasetMeta(episodes, tasks, stats, data_paths, videos)


META_LOADERS: dict[str, Callable[[Path, dict[str, Any]], DatasetMeta]] = {
    CODEBASE_VERSION: load_v3_meta,
    **{v: load_v2_meta for v in LEGACY_VERSIONS},
}


def read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json`` checked for the fields every reader needs."""
    path = root / INFO_PATH
    if not path.exists():
        raise DatasetFormatError(f"{path} is missing: not a LeRobot dataset (expected meta/info.json)")
    info = read_json(path, DatasetFormatError)
    if not isinstance(info, dict):
        raise DatasetFormatError(f"{path} must hold a JSON object, got {type(info).__name__}")
    missing = [k for k in ("codebase_version", "fps", "features", "data_path") if k not in info]
    if missing:
        raise DatasetFormatError(f"{path} lacks {missing}")
    version = info["codebase_version"]
    if not isinstance(version, str) or version not in META_LOADERS:
        raise DatasetFormatError(
            f"{path}: codebase_version {version!r} is not supported (supported: {sorted(META_LOADERS)}). "
            "Convert older datasets with lerobot's converter "
            "(`python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=...`) on a machine with lerobot."
        )
    if not isinstance(info["features"], dict) or not info["features"]:
        raise DatasetFormatError(f"{path}: 'features' must be a non-empty object {{name: {{dtype, shape}}}}")
    for key, ft in info["features"].items():
        if not isinstance(ft, dict) or "dtype" not in ft or "shape" not in ft:
            raise DatasetFormatError(f"{path}: feature {key!r} needs 'dtype' and 'shape'")
        if ft["dtype"] not in SUPPORTED_DTYPES:
            raise DatasetFormatError(
                f"{path}: feature {key!r} has dtype {ft['dtype']!r}, not one of {SUPPORTED_DTYPES}"
            )
        shape = ft["shape"]
        if not isinstance(shape, list) or not shape or not all(_is_int(d) and d > 0 for d in shape):
            raise DatasetFormatError(f"{path}: feature {key!r} has shape {shape!r}; a non-empty list of positive ints")
    for field_name, rule in INFO_FIELD_RULES.items():
        if field_name in info and (problem := rule(info[field_name])):
            raise DatasetFormatError(f"{path}: {field_name!r} is {info[field_name]!r}; {problem}")
    return info


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_number(value: Any) -> str | None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return None if number and math.isfinite(value) and value > 0 else "it must be a positive number"


def _count(value: Any) -> str | None:
    return None if _is_int(value) and value >= 0 else "it must be an integer >= 0"


def _template(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and value) else "it must be a path template string"


INFO_FIELD_RULES: dict[str, Callable[[Any], str | None]] = {
    "fps": _positive_number,
    "total_episodes": _count,
    "total_frames": _count,
    "total_tasks": _count,
    "chunks_size": lambda v: None if _is_int(v) and v > 0 else "it must be a positive integer",
    "data_path": lambda v: None if isinstance(v, str) and v else "it must be a path template string",
    "video_path": _template,
}
"""Checks of ``meta/info.json``'s scalar fields (each returns what is wrong, or None)."""


# ----------------------------------------------------------------------------------------------- reader


class LeRobotDatasetReader:
    """Random access to a LeRobot dataset's frames by global index (see the module docstring)."""

    def __init__(self, root_or_repo_id: Any, revision: str | None = None, video_cache_mb: int = 256) -> None:
        root = None if isinstance(root_or_repo_id, (str, os.PathLike)) else getattr(root_or_repo_id, "root", None)
        self.root = Path(root) if root is not None else resolve_dataset_root(root_or_repo_id, revision)
        self.info = read_info(self.root)
        self._meta = META_LOADERS[self.info["codebase_version"]](self.root, self.info)
        self._columns: dict[str, np.ndarray] = {}
        self._images: dict[str, list[tuple[int, pa.Array, Path]]] = {}
        self._frame_cache = FrameCache(video_cache_mb * 1024 * 1024)
        self._ep_pos = {int(e["episode_index"]): i for i, e in enumerate(self.episodes)}
        bounds = np.array([[e["dataset_from_index"], e["dataset_to_index"]] for e in self.episodes], dtype=np.int64)
        bounds = bounds.reshape(-1, 2)
        self._order = np.argsort(bounds[:, 0], kind="stable")
        self._starts, self._ends = bounds[self._order, 0], bounds[self._order, 1]
        self._files = self._data_file_layout()

    def episode_starts(self, key: str, episodes: Sequence[int] | None = None) -> np.ndarray:
        """The first ``key`` value (state vector or uint8 frame) of each episode (all episodes by default)."""
        if key not in self.features:
            raise KeyError(f"{self.root} has no feature {key!r}; features: {sorted(self.features)}")
        eps = range(self.num_episodes) if episodes is None else episodes
        firsts = np.array([self.episode_range(int(ep))[0] for ep in eps], dtype=np.int64)
        if len(firsts) == 0:
            raise DatasetError(f"{self.root}: no episodes to take start states from")
        return self.frames(key, firsts) if key in self.camera_keys else self.column(key)[firsts]

    # ---- metadata
    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def episodes(self) -> list[dict[str, Any]]:
        return self._meta.episodes

    @property
    def tasks(self) -> list[str]:
        return self._meta.tasks

    @property
    def stats(self) -> dict[str, Any]:
        return self._meta.stats

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(sum(int(e["length"]) for e in self.episodes))

    @property
    def camera_keys(self) -> list[str]:
        return keys_of_dtype(self.features, "image", "video")

    @property
    def video_keys(self) -> list[str]:
        return keys_of_dtype(self.features, "video")

    @property
    def image_keys(self) -> list[str]:
        return keys_of_dtype(self.features, "image")

    def episode_range(self, ep: int) -> tuple[int, int]:
        """Global frame indices ``[from, to)`` of episode ``ep`` (its ``episode_index``)."""
        if int(ep) not in self._ep_pos:
            raise IndexError(f"episode {ep} is not in {self.root} (episodes: {self.num_episodes})")
        e = self.episodes[self._ep_pos[int(ep)]]
        return int(e["dataset_from_index"]), int(e["dataset_to_index"])

    def episode_of(self, indices: np.ndarray) -> np.ndarray:
        """Positions in ``episodes`` of the episodes holding global frame ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        k = np.searchsorted(self._starts, indices, side="right") - 1
        bad = (
            (k < 0) | (indices >= self._ends[np.clip(k, 0, None)]) if len(self._starts) else np.ones_like(indices, bool)
        )
        if np.any(bad):
            raise IndexError(f"frame indices {indices[bad][:5].tolist()} are outside every episode of {self.root}")
        return self._order[k]

    # ---- data files
    def _data_file_layout(self) -> list[tuple[Path, int, int]]:
        """(path, first global index, rows needed) per data file, in global order."""
        spans: dict[Path, list[int]] = {}
        for path, e in zip(self._meta.data_paths, self.episodes):
            lo, hi = spans.get(path, [e["dataset_from_index"], e["dataset_to_index"]])
            spans[path] = [min(lo, e["dataset_from_index"]), max(hi, e["dataset_to_index"])]
        return sorted(((p, lo, hi - lo) for p, (lo, hi) in spans.items()), key=lambda t: t[1])

    def _read_column(self, key: str) -> list[tuple[int, pa.ChunkedArray, Path]]:
        out = []
        for path, start, rows in self._files:
            table = read_parquet(path, columns=[key]) if key in _schema_names(path) else None
            if table is None:
                raise DatasetFormatError(f"{path} has no column {key!r}")
            if table.num_rows < rows:
                raise DatasetFormatError(
                    f"{path} has {table.num_rows} rows; the episodes table expects at least {rows}"
                )
            out.append((start, table.column(0).slice(0, rows), path))
        return out

    def _feature(self, key: str) -> dict[str, Any]:
        if key not in self.features:
            raise KeyError(f"{key!r} is not a feature of {self.root} (features: {list(self.features)})")
        return self.features[key]

    def column(self, key: str) -> np.ndarray:
        """A non-visual feature for every frame: ``[num_frames, *shape]`` (cached)."""
        if key in self._columns:
            return self._columns[key]
        ft = self._feature(key)
        if ft["dtype"] in ("image", "video"):
            raise DatasetFormatError(f"{key!r} is a {ft['dtype']} feature: use frames({key!r}, indices)")
        size = int(self._ends.max()) if len(self._ends) else 0
        shape = tuple(ft["shape"])
        dtype = object if ft["dtype"] == "string" else np.dtype(ft["dtype"])
        # each file's values are checked against the declared shape before the whole column is allocated
        parts = [
            (start, _to_numpy(arr, shape, dtype, f"{path} column {key!r}"))
            for start, arr, path in self._read_column(key)
        ]
        out = np.zeros((size, *shape), dtype=dtype)
        for start, values in parts:
            out[start : start + len(values)] = values
        self._check_finite(key, out)
        self._columns[key] = out
        return out

    def _check_finite(self, key: str, values: np.ndarray) -> None:
        """NaN or inf in a float column is refused when the column is loaded, naming the episode and frame."""
        if values.dtype.kind != "f":
            return
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        covered = np.zeros(len(values), bool)  # rows no episode covers (gaps between episodes) are never read
        for lo, hi in zip(self._starts, self._ends):
            covered[lo:hi] = True
        bad &= covered
        if bad.any():
            first = int(np.argmax(bad))
            episode = self.episodes[int(self.episode_of(np.array([first]))[0])]["episode_index"]
            lo = self.episode_range(episode)[0]
            raise DatasetFormatError(
                f"{self.root}: column {key!r} holds NaN or inf in {int(bad.sum())} frame(s), first in episode "
                f"{episode} at frame {first - lo} (global index {first}); clean or drop those episodes"
            )

    def frames(self, key: str, indices: np.ndarray | list[int]) -> np.ndarray:
        """Frames of an image or video feature at global ``indices``: ``[n, H, W, C]`` uint8."""
        ft = self._feature(key)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) == 0:
            return np.zeros((0, *ft["shape"]), dtype=np.uint8)
        reader = _FRAME_READERS.get(ft["dtype"])
        if reader is None:
            raise DatasetFormatError(f"{key!r} is a {ft['dtype']} feature, not an image or video: use column({key!r})")
        return reader(self, key, indices)

    def _image_frames(self, key: str, indices: np.ndarray) -> np.ndarray:
        self.episode_of(indices)  # range check
        if key not in self._images:  # the PNG bytes stay in arrow buffers: no per-frame Python objects
            self._images[key] = [(start, arr.combine_chunks(), path) for start, arr, path in self._read_column(key)]
        parts = self._images[key]
        starts = np.array([p[0] for p in parts])
        shape = tuple(self.features[key]["shape"])
        out = []
        for i in indices:
            start, arr, path = parts[int(np.searchsorted(starts, i, side="right")) - 1]
            out.append(_decode_image(arr[int(i - start)].as_py(), path, root=self.root, shape=shape, key=key))
        return np.stack(out)

    def _video_frames(self, key: str, indices: np.ndarray) -> np.ndarray:
        eps = self.episode_of(indices)
        ts = self.column("timestamp").reshape(-1).astype(np.float64)
        shape = tuple(self.features[key]["shape"])
        out = np.zeros((len(indices), *shape), dtype=np.uint8)
        tol = 0.25 / self.fps
        for ep in np.unique(eps):
            sel = eps == ep
            path, from_ts = self._meta.videos[key][ep]
            lo, hi = self.episodes[ep]["dataset_from_index"], self.episodes[ep]["dataset_to_index"]
            seg = from_ts + ts[lo:hi]
            got = self._frame_cache.frames(path, seg, from_ts + ts[indices[sel]], tol, int(np.prod(shape)))
            if got.shape[1:] != shape:
                raise DatasetFormatError(f"{path}: frames are {got.shape[1:]}, info.json says {key!r} is {shape}")
            out[sel] = got
        return out

    # ---- torch access
    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, idx: int) -> dict[str, Any]:
        """One frame: tensors (shape-(1,) features as 0-d), images float CHW in [0, 1] as lerobot gives them."""
        idx = int(idx)
        item: dict[str, Any] = {}
        for key, ft in self.features.items():
            if ft["dtype"] in ("image", "video"):
                img = self.frames(key, [idx])[0]
                item[key] = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
            elif ft["dtype"] == "string":
                item[key] = self.column(key)[idx].reshape(-1)[0]
            else:
                value = torch.as_tensor(self.column(key)[idx])
                item[key] = value.reshape(()) if tuple(ft["shape"]) == (1,) else value
        return item

    def __repr__(self) -> str:
        return (
            f"LeRobotDatasetReader({str(self.root)!r}, v={self.info['codebase_version']}, fps={self.fps}, "
            f"episodes={self.num_episodes}, frames={self.num_frames})"
        )


_FRAME_READERS: dict[str, Callable[[LeRobotDatasetReader, str, np.ndarray], np.ndarray]] = {
    "image": LeRobotDatasetReader._image_frames,
    "video": LeRobotDatasetReader._video_frames,
}


def _schema_names(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    if not path.exists():
        raise DatasetFormatError(f"{path} is missing (referenced by the episodes table)")
    try:
        return pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as err:
        raise DatasetFormatError(f"{path} is corrupted or not a parquet file ({err})") from None


def _to_numpy(arr: pa.ChunkedArray, shape: tuple[int, ...], dtype: Any, where: str) -> np.ndarray:
    """An arrow column (scalars, fixed or variable lists, nested lists) as ``[n, *shape]``."""
    n = len(arr)
    if arr.null_count:
        raise DatasetFormatError(f"{where} has {arr.null_count} null values")
    flat = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    while pa.types.is_list(flat.type) or pa.types.is_fixed_size_list(flat.type) or pa.types.is_large_list(flat.type):
        flat = pc.list_flatten(flat)
    values = np.asarray(flat.to_numpy(zero_copy_only=False))
    if values.size != n * int(np.prod(shape)):
        raise DatasetFormatError(f"{where}: {values.size} values for {n} rows of shape {list(shape)}")
    return values.reshape(n, *shape).astype(dtype, copy=False)


def _decode_image(
    struct: dict[str, Any] | None, path: Path, root: Path, shape: tuple[int, ...], key: str
) -> np.ndarray:
    from PIL import Image

    if struct is None or (struct.get("bytes") is None and not struct.get("path")):
        raise DatasetFormatError(f"{path}: image {key!r} has neither bytes nor a path")
    data = struct.get("bytes")
    try:
        with Image.open(io.BytesIO(data) if data is not None else root / struct["path"]) as im:
            img = np.asarray(im.convert("RGB") if shape[-1] == 3 else im.convert("L"))
    except (OSError, ValueError) as err:
        raise DatasetFormatError(f"{path}: image {key!r} could not be decoded ({err})") from None
    img = img[..., None] if img.ndim == 2 else img
    if img.shape != shape:
        raise DatasetFormatError(f"{path}: image {key!r} is {img.shape}, info.json says {shape}")
    return img
