"""Datasets with values no recording has: refused when read, in one line naming the field, episode and frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worldrl.data import LeRobotDatasetReader
from worldrl.data.lerobot_format import DatasetFormatError
from worldrl.data.sequences import WindowDataset

DATA = "data/chunk-000/file-000.parquet"


def _poison(root: Path, column: str, row: int, value: float) -> None:
    """Write ``value`` into global row ``row`` of ``column`` of the fixture's data file."""
    table = pq.read_table(root / DATA)
    values = table.column(column).to_pylist()
    if isinstance(values[row], list):
        values[row] = [value, *values[row][1:]]
    else:
        values[row] = value
    index = table.column_names.index(column)
    table = table.set_column(index, table.field(index), pa.array(values, type=table.field(index).type))
    pq.write_table(table, root / DATA)


@pytest.mark.parametrize(
    ("column", "row", "value", "episode", "frame"),
    [
        ("observation.state", 9, float("nan"), 1, 2),
        ("action", 20, float("inf"), 2, 1),
        ("next.reward", 0, -np.inf, 0, 0),
    ],
)
def test_non_finite_values_are_refused_up_front_naming_column_and_episode(
    lerobot_fixture, column, row, value, episode, frame
):
    _poison(lerobot_fixture, column, row, value)
    reader = LeRobotDatasetReader(lerobot_fixture)
    message = rf"column '{column}' holds NaN or inf in 1 frame\(s\), first in episode {episode} at frame {frame}"
    with pytest.raises(DatasetFormatError, match=message):
        reader.column(column)
    # the training windows load every column when built, before any batch is sampled
    keys = {"obs": "observation.state", "action": "action", "reward": "next.reward"}
    with pytest.raises(DatasetFormatError, match=message):
        WindowDataset(LeRobotDatasetReader(lerobot_fixture), keys=keys, window=2)


def _rewrite_info(root: Path, **fields) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    for key, value in fields.items():
        if key.startswith("feature:"):
            info["features"]["observation.state"][key.split(":")[1]] = value
        else:
            info[key] = value
    path.write_text(json.dumps(info))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fps": 0}, r"'fps' is 0; it must be a positive number"),
        ({"fps": -30}, r"'fps' is -30"),
        ({"fps": "ten"}, r"'fps' is 'ten'"),
        ({"total_episodes": -1}, r"'total_episodes' is -1; it must be an integer >= 0"),
        ({"chunks_size": 0}, r"'chunks_size' is 0; it must be a positive integer"),
        ({"data_path": ""}, r"'data_path' is ''"),
        ({"features": []}, r"'features' must be a non-empty object"),
        ({"feature:shape": [0]}, r"feature 'observation.state' has shape \[0\]"),
        ({"feature:shape": "4"}, r"feature 'observation.state' has shape '4'"),
        ({"feature:dtype": "float128"}, r"feature 'observation.state' has dtype 'float128'"),
    ],
)
def test_info_fields_out_of_range_are_refused(lerobot_fixture, fields, message):
    _rewrite_info(lerobot_fixture, **fields)
    with pytest.raises(DatasetFormatError, match=message):
        LeRobotDatasetReader(lerobot_fixture)


def test_info_cli_exits_2_with_one_line_on_fps_zero(lerobot_fixture, capsys):
    from worldrl.cli import main

    _rewrite_info(lerobot_fixture, fps=0)
    assert main(["info", str(lerobot_fixture)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "'fps' is 0" in lines[0] and not captured.out, captured
