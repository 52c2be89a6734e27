"""Property-based checks (hypothesis) of the file readers: a checkpoint with any field mutated or any file
truncated, and a dataset with mutated metadata or truncated files, either loads or is refused with a
``WorldRLError`` (one line, exit code 2 from the CLI); never another exception, never a hang (issue 19)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _models import tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worldrl.data import LeRobotDatasetReader
from worldrl.errors import WorldRLError
from worldrl.models import load_pretrained

torch.set_num_threads(1)
FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
"""Any JSON value (NaN and infinities included: Python's json writes them)."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    model = tiny_model()
    model.start_states = torch.randn(4, 3)
    path = tmp_path_factory.mktemp("ckpt") / "model"
    model.save_pretrained(path)
    return path


def _copy(src: Path, tmp: Path, name: str) -> Path:
    dst = tmp / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def _truncate(path: Path, fraction: float) -> None:
    """Cut ``path`` at ``fraction`` of its length, always losing at least one byte that is not whitespace."""
    data = path.read_bytes()
    path.write_bytes(data[: min(int(len(data) * fraction), len(data.rstrip()) - 1)])


def _loads_or_refuses(load) -> None:
    try:
        load()
    except WorldRLError as err:
        assert str(err).strip(), "an error must say what is wrong"


def _mutate(path: Path, key: int | None, value, delete: bool) -> None:
    """Replace (or delete) the ``key``-th field of a JSON object file; ``key=None`` replaces the whole document."""
    data = json.loads(path.read_text())
    keys = sorted(data)
    target = keys[key % len(keys)] if key is not None else None
    if target is None:
        data = value
    elif delete:
        del data[target]
    else:
        data[target] = value
    path.write_text(json.dumps(data))


@FAST
@given(
    file=st.sampled_from(["config.json", "task.json"]),
    key=st.none() | st.integers(0, 50),
    value=JSON,
    delete=st.booleans(),
)
def test_checkpoint_with_a_mutated_field_loads_or_is_refused(checkpoint, tmp_path, file, key, value, delete):
    ckpt = _copy(checkpoint, tmp_path, "mutated")
    _mutate(ckpt / file, key, value, delete)
    _loads_or_refuses(lambda: load_pretrained(ckpt))


@FAST
@given(
    file=st.sampled_from(["config.json", "task.json", "model.safetensors", "start_states.safetensors"]),
    fraction=st.floats(0.0, 0.999),
)
def test_checkpoint_with_a_truncated_file_is_refused(checkpoint, tmp_path, file, fraction):
    ckpt = _copy(checkpoint, tmp_path, "truncated")
    _truncate(ckpt / file, fraction)
    with pytest.raises(WorldRLError):
        load_pretrained(ckpt)


def _read_everything(root: Path) -> None:
    reader = LeRobotDatasetReader(root)
    for key, feature in reader.features.items():
        if feature["dtype"] in ("image", "video"):
            reader.frames(key, [0, len(reader) - 1]) if len(reader) else None
        else:
            reader.column(key)
    if len(reader):
        reader[len(reader) - 1]


@FAST
@given(key=st.none() | st.integers(0, 50), value=JSON, delete=st.booleans())
def test_dataset_with_mutated_metadata_reads_or_is_refused(lerobot_fixture, tmp_path, key, value, delete):
    root = _copy(lerobot_fixture, tmp_path, "mutated")
    _mutate(root / "meta/info.json", key, value, delete)
    _loads_or_refuses(lambda: _read_everything(root))


@FAST
@given(
    feature=st.sampled_from(["observation.state", "action", "next.reward", "observation.images.cam", "timestamp"]),
    field=st.sampled_from(["dtype", "shape", "names"]),
    value=JSON,
)
def test_dataset_with_a_mutated_feature_reads_or_is_refused(lerobot_fixture, tmp_path, feature, field, value):
    root = _copy(lerobot_fixture, tmp_path, "feature")
    info = json.loads((root / "meta/info.json").read_text())
    info["features"][feature][field] = value
    (root / "meta/info.json").write_text(json.dumps(info))
    _loads_or_refuses(lambda: _read_everything(root))


@FAST
@given(
    file=st.sampled_from(
        [
            "data/chunk-000/file-000.parquet",
            "meta/episodes/chunk-000/file-000.parquet",
            "meta/tasks.parquet",
            "meta/stats.json",
            "meta/info.json",
        ]
    ),
    fraction=st.floats(0.0, 0.999),
)
def test_dataset_with_a_truncated_file_is_refused(lerobot_fixture, tmp_path, file, fraction):
    root = _copy(lerobot_fixture, tmp_path, "truncated")
    _truncate(root / file, fraction)
    with pytest.raises(WorldRLError):
        _read_everything(root)
