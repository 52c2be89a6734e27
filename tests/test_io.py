"""worldrl.io: atomic file and directory writes leave the old content or the new one, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from worldrl.io import atomic_directory, atomic_path, atomic_write_bytes, read_json, write_json


def test_atomic_write_replaces_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["a.bin"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        assert tmp.suffix == ".txt"  # formats chosen by extension still work
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_json_round_trip_with_numpy(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"b": np.arange(3), "a": np.float32(1.5)})
    assert read_json(path) == {"a": 1.5, "b": [0, 1, 2]}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')  # sorted by default


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (None, FileNotFoundError, "x.json is missing"),
        ("{", ValueError, "x.json is corrupted: not valid JSON"),
        ("[1]", ValueError, "x.json is corrupted: expected a JSON object, found list"),
    ],
)
def test_read_json_names_the_file(tmp_path, content, error, match):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=match):
        read_json(path)


def test_read_json_raises_the_callers_error_type(tmp_path):
    class MyError(ValueError):
        pass

    with pytest.raises(MyError, match="missing"):
        read_json(tmp_path / "x.json", MyError)


def test_atomic_directory_swaps_whole_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as tmp:
        (tmp / "f").write_text("1")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "f").write_text("2")
        raise RuntimeError("crash")
    assert (target / "f").read_text() == "1"
    with atomic_directory(target) as tmp:
        (tmp / "g").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["g"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
