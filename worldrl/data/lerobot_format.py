"""The LeRobot dataset format v3.0: constants, feature schemas, errors and parquet reads and writes.

Layout of a dataset root (as lerobot >= 0.4 writes it)::

    meta/info.json                                   codebase_version, fps, features, totals, path templates
    meta/stats.json                                  per feature: min, max, mean, std, count, q01..q99
    meta/tasks.parquet                               task strings (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode (bounds, tasks, files, stats)
    data/chunk-000/file-000.parquet                  many episodes per file; images as PNG {bytes, path}
    videos/<key>/chunk-000/file-000.mp4              many episodes per file, located by from/to_timestamp
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from worldrl.errors import DatasetError, InputNotFoundError, OutputExistsError
from worldrl.io import atomic_path

CODEBASE_VERSION = "v3.0"
LEGACY_VERSIONS = ("v2.0", "v2.1")
DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_MB = 100
DEFAULT_VIDEO_FILE_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"

# Added to every frame by the writer (lerobot's DEFAULT_FEATURES), in this order.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
VISUAL_DTYPES = ("image", "video")
NUMERIC_DTYPES = (
    "bool",
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
)
SUPPORTED_DTYPES = (*VISUAL_DTYPES, "string", *NUMERIC_DTYPES)
STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")


class DatasetFormatError(DatasetError):
    """A dataset (or a frame given to the writer) that does not follow the format; names the file or key."""


class DatasetExistsError(DatasetFormatError, OutputExistsError):
    """The output directory already holds a dataset and neither ``overwrite`` nor ``resume`` was asked."""


class DatasetNotFoundError(DatasetFormatError, InputNotFoundError):
    """Neither a local dataset nor a reachable Hub repository; says what to download and where."""


# ----------------------------------------------------------------------------------------------- features


def validate_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Check user features and return them (deep-copied) followed by the default per-frame features."""
    if not isinstance(features, Mapping) or not features:
        raise DatasetFormatError("features must be a non-empty dict {name: {dtype, shape, names}}")
    out: dict[str, dict[str, Any]] = {}
    for key, ft in features.items():
        if key in DEFAULT_FEATURES:
            continue  # the writer owns these; accepting them lets callers pass a reader's features back in
        out[key] = _validate_feature(key, ft)
    if not out:
        raise DatasetFormatError("features holds only the default keys; add at least one recorded feature")
    for key, ft in DEFAULT_FEATURES.items():
        out[key] = json.loads(json.dumps(ft))
    return out


def _validate_feature(key: str, ft: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(key, str) or not key or "/" in key:
        raise DatasetFormatError(f"feature name {key!r} is invalid: a non-empty string without '/'")
    if not isinstance(ft, Mapping) or "dtype" not in ft or "shape" not in ft:
        raise DatasetFormatError(f"feature {key!r} needs 'dtype' and 'shape' (got {ft!r})")
    dtype, shape = ft["dtype"], ft["shape"]
    if dtype not in SUPPORTED_DTYPES:
        raise DatasetFormatError(f"feature {key!r}: dtype {dtype!r} is not one of {list(SUPPORTED_DTYPES)}")
    positive_ints = isinstance(shape, (list, tuple)) and all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)
    if not shape or not positive_ints:
        raise DatasetFormatError(f"feature {key!r}: shape {shape!r} must be a non-empty list of positive ints")
    shape = [int(s) for s in shape]
    if dtype in VISUAL_DTYPES and (len(shape) != 3 or shape[2] not in (1, 3)):
        raise DatasetFormatError(
            f"feature {key!r}: {dtype} shape must be [height, width, channels] with 1 or 3 channels, got {shape}"
        )
    if dtype == "video" and (shape[2] != 3 or shape[0] % 2 or shape[1] % 2):
        raise DatasetFormatError(
            f"feature {key!r}: video frames must be RGB with even height and width (yuv420p), got {shape}"
        )
    if dtype not in VISUAL_DTYPES and len(shape) != 1:
        raise DatasetFormatError(f"feature {key!r}: non-visual features must be 1-D (flatten shape {shape})")
    out = json.loads(json.dumps(dict(ft)))  # a JSON-clean deep copy (tuples become lists)
    out["shape"] = shape
    out.setdefault("names", ["height", "width", "channels"] if dtype in VISUAL_DTYPES else None)
    return out


def comparable_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple]:
    """The part of each feature that must match when appending to a dataset (dtype, shape, names)."""
    return {
        k: (ft["dtype"], tuple(ft["shape"]), json.dumps(ft.get("names")))
        for k, ft in features.items()
        if k not in DEFAULT_FEATURES
    }


def feature_differences(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Human-readable differences between two feature dicts (empty when they agree)."""
    a, b = comparable_features(old), comparable_features(new)
    diffs = [f"feature {k!r} only in the existing dataset" for k in a.keys() - b.keys()]
    diffs += [f"feature {k!r} not in the existing dataset" for k in b.keys() - a.keys()]
    diffs += [f"feature {k!r}: existing {a[k]} vs new {b[k]}" for k in a.keys() & b.keys() if a[k] != b[k]]
    return sorted(diffs)


def keys_of_dtype(features: Mapping[str, Mapping[str, Any]], *dtypes: str) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] in dtypes]


def termination_key(dataset: Any) -> str | None:
    """``"next.terminated"`` if the dataset has it, else ``"next.done"``, else ``None``.

    ``next.done`` also covers time-limit truncations, so it is only the fallback.
    """
    features = getattr(dataset, "features", dataset)
    for key in ("next.terminated", "next.done"):
        if key in features:
            return key
    return None


# ----------------------------------------------------------------------------------------------- frame values


def _kind(dtype: str) -> str:
    return dtype if dtype in ("image", "video", "string", "bool") else ("float" if dtype.startswith("float") else "int")


def _as_array(key: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensors, on any device
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as err:
        raise DatasetFormatError(f"frame[{key!r}] is not array-like ({err})") from None


def _check_shape(key: str, ft: Mapping[str, Any], arr: np.ndarray) -> np.ndarray:
    shape = tuple(ft["shape"])
    if arr.shape == shape or (shape == (1,) and arr.shape == ()):
        return arr.reshape(shape)
    raise DatasetFormatError(f"frame[{key!r}] has shape {arr.shape}, the feature is {ft['dtype']} {list(shape)}")


def _numeric(accepted: str) -> Any:
    def coerce(key: str, ft: Mapping[str, Any], value: Any) -> np.ndarray:
        arr = _as_array(key, value)
        if arr.dtype.kind not in accepted:
            raise DatasetFormatError(
                f"frame[{key!r}] has dtype {arr.dtype}, which does not fit the feature's {ft['dtype']}"
            )
        arr = _check_shape(key, ft, arr)
        if ft["dtype"] == "bool" and arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
            raise DatasetFormatError(f"frame[{key!r}] must be boolean (0/1), got {arr.tolist()}")
        return arr.astype(ft["dtype"])

    return coerce


def _coerce_visual(key: str, ft: Mapping[str, Any], value: Any) -> np.ndarray:
    arr = _as_array(key, value)
    h, w, c = ft["shape"]
    if arr.ndim == 2 and c == 1:
        arr = arr[..., None]
    if arr.shape == (c, h, w) and arr.shape != (h, w, c):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC, as lerobot accepts both
    if arr.shape != (h, w, c):
        raise DatasetFormatError(
            f"frame[{key!r}] has shape {arr.shape}, the {ft['dtype']} feature is [H, W, C] = {[h, w, c]}"
        )
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "f" and arr.size and 0.0 <= arr.min() and arr.max() <= 1.0:
        return np.rint(arr * 255.0).astype(np.uint8)
    raise DatasetFormatError(f"frame[{key!r}] must be uint8 (or float in [0, 1]), got {arr.dtype}")


def _coerce_string(key: str, ft: Mapping[str, Any], value: Any) -> np.ndarray:
    if not isinstance(value, str):
        raise DatasetFormatError(f"frame[{key!r}] must be a str, got {type(value).__name__}")
    return np.asarray(value, dtype=object)


def coerce_frame_value(key: str, ft: Mapping[str, Any], value: Any) -> np.ndarray:
    """One value given to ``add_frame`` checked against its feature and converted to the feature's dtype.

    Floats accept any real number; ints accept ints and bools; bools accept bools and 0/1. Images
    accept uint8 HWC or CHW, or floats in [0, 1]. Anything else is a DatasetFormatError naming the key.
    """
    return _COERCE[_kind(ft["dtype"])](key, ft, value)


_COERCE = {
    "float": _numeric("fiu"),
    "int": _numeric("iub"),
    "bool": _numeric("biu"),
    "image": _coerce_visual,
    "video": _coerce_visual,
    "string": _coerce_string,
}


# ----------------------------------------------------------------------------------------------- arrow schema

_ARROW_SCALARS = {
    "bool": pa.bool_(),
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "string": pa.string(),
}
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def parquet_columns(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Columns of the data parquet: every feature but videos (they live in mp4 files)."""
    return [k for k, ft in features.items() if ft["dtype"] != "video"]


def arrow_type(ft: Mapping[str, Any]) -> pa.DataType:
    """Arrow type of one feature column, as `datasets` stores it (shape (1,) is a scalar, (n,) a fixed list)."""
    if ft["dtype"] == "image":
        return IMAGE_STRUCT
    scalar = _ARROW_SCALARS[ft["dtype"]]
    return scalar if list(ft["shape"]) == [1] else pa.list_(scalar, int(ft["shape"][0]))


def _hf_feature(ft: Mapping[str, Any]) -> dict[str, Any]:
    if ft["dtype"] == "image":
        return {"_type": "Image"}
    value = {"dtype": ft["dtype"], "_type": "Value"}
    return value if list(ft["shape"]) == [1] else {"feature": value, "length": int(ft["shape"][0]), "_type": "List"}


def data_schema(features: Mapping[str, Mapping[str, Any]]) -> pa.Schema:
    """Schema of the data parquet, with the `huggingface` metadata `datasets` uses to decode images."""
    cols = parquet_columns(features)
    hf = {"info": {"features": {k: _hf_feature(features[k]) for k in cols}}}
    return pa.schema([(k, arrow_type(features[k])) for k in cols], metadata={"huggingface": json.dumps(hf)})


# ----------------------------------------------------------------------------------------------- paths


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) after this one: ``chunks_size`` files per chunk directory."""
    return (chunk_index + 1, 0) if file_index + 1 >= chunks_size else (chunk_index, file_index + 1)


def file_size_mb(path: Path) -> float:
    return path.stat().st_size / (1024 * 1024) if path.exists() else 0.0


def has_dataset(root: Path) -> bool:
    return (root / INFO_PATH).exists()


# ----------------------------------------------------------------------------------------------- file I/O


def write_parquet(path: Path, tables: list[pa.Table] | pa.Table, schema: pa.Schema | None = None) -> None:
    """Write tables (one row group each, as lerobot's ParquetWriter does) atomically."""
    tables = [tables] if isinstance(tables, pa.Table) else tables
    schema = schema or tables[0].schema
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema=schema, compression="snappy", use_dictionary=True) as w:
            for t in tables:
                w.write_table(t.cast(schema) if t.schema != schema else t)


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.exists():
        raise DatasetFormatError(f"{path} is missing (referenced by the dataset metadata)")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as err:
        raise DatasetFormatError(f"{path} is corrupted or not a parquet file ({err})") from None
    except KeyError as err:
        raise DatasetFormatError(f"{path} has no column {err}") from None
