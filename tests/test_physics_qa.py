"""Physics questions with exact answers: generation, balance, splits, exactness by re-simulation, reader, CLI."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import mujoco
import numpy as np
import pyarrow.parquet as pq
import pytest

from worldrl.cli import main
from worldrl.errors import ConfigError, DatasetError, OutputExistsError
from worldrl.evaluation.physics_qa.generate import QAConfig, generate, quotas, split_of
from worldrl.evaluation.physics_qa.questions import (
    BINARY_TYPES,
    CHOICE_TYPES,
    CONTEXT_FRAMES,
    QUESTION_TYPES,
)
from worldrl.evaluation.physics_qa.reader import read_items
from worldrl.evaluation.physics_qa.simulate import simulate
from worldrl.tasks.scenes.spec import SceneDescription


@pytest.fixture(scope="module")
def qa(tmp_path_factory) -> Path:
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    out = tmp_path_factory.mktemp("qa") / "set"
    summary = generate(QAConfig(out=out, items=42, scenes=("collide", "dominoes", "drop"), seed=3))
    assert summary.items == 42 and not summary.short
    return out


def test_every_type_fills_its_quota_with_balanced_answers(qa: Path) -> None:
    items = read_items(qa)
    assert Counter(i.type for i in items) == quotas(42) == {t: 6 for t in QUESTION_TYPES}
    for kind in BINARY_TYPES:
        assert Counter(i.answer for i in items if i.type == kind) == {"yes": 3, "no": 3}
        for split in ("train", "val", "test"):
            answers = Counter(i.answer for i in items if i.type == kind and i.split == split)
            assert answers["yes"] == answers["no"]  # balanced within every split
    for kind in CHOICE_TYPES:
        rows = [i for i in items if i.type == kind]
        assert all(i.choices[i.answer_index] == i.answer for i in rows)
        assert len({i.answer_index for i in rows}) >= 2  # answers placed at each position in turn
    pairs = Counter(i.pair_id for i in items if i.type == "plausibility")
    assert set(pairs.values()) == {2}


def test_splits_are_by_scene_seed(qa: Path) -> None:
    items = read_items(qa)
    for i in items:
        assert i.split == split_of(i.scene_seed)
    seeds = {s: {i.scene_seed for i in read_items(qa, s)} for s in ("train", "val", "test")}
    assert not (seeds["train"] & seeds["val"]) and not (seeds["train"] & seeds["test"])
    assert Counter(split_of(s) for s in range(2000))["train"] == pytest.approx(1600, abs=80)


def test_parquet_images_and_clips_are_there(qa: Path) -> None:
    table = pq.read_table(qa / "data" / "train.parquet")
    assert {"question", "choices", "answer", "evidence", "scene", "initial_state"} <= set(table.column_names)
    item = read_items(qa)[0]
    frames = item.context(qa)
    assert frames.shape == (CONTEXT_FRAMES, 64, 64, 3) and frames.std() > 0
    assert (qa / item.clip).stat().st_size > 0 and (qa / item.mjcf).exists()
    meta = json.loads((qa / "meta.json").read_text())
    assert set(meta["baselines"]) == set(QUESTION_TYPES)
    assert meta["baselines"]["predictive"]["chance"] == 0.5


def test_datasets_loads_the_parquet(qa: Path) -> None:
    datasets = pytest.importorskip("datasets")
    files = {s: str(qa / "data" / f"{s}.parquet") for s in ("train", "val", "test")}
    ds = datasets.load_dataset("parquet", data_files=files)
    assert sum(len(ds[s]) for s in ds) == 42


def test_quantitative_answers_match_a_plain_mujoco_re_simulation(qa: Path) -> None:
    for item in (i for i in read_items(qa) if i.type == "quantitative"):
        frames = int(re.search(r"be (\d+) frames after", item.question).group(1))
        name = re.search(r"centre of the (\w+) (\w+) be", item.question).groups()
        model = mujoco.MjModel.from_xml_path(str(qa / item.mjcf))
        data = mujoco.MjData(model)
        init = json.loads(item.initial_state)
        data.qpos[:], data.qvel[:] = init["qpos"], init["qvel"]
        mujoco.mj_step(model, data, 10 * (CONTEXT_FRAMES - 1 + frames))
        position = data.body("_".join(name)).xpos[:2]
        np.testing.assert_allclose(position, item.target, atol=2e-3)
        assert item.is_correct(f"{item.target[0] + 0.05}, {item.target[1]}")
        assert not item.is_correct(f"{item.target[0] + 0.5}, {item.target[1]}")


def test_counterfactual_and_predictive_answers_are_facts_of_the_simulation(qa: Path) -> None:
    for item in read_items(qa):
        scene = SceneDescription.from_dict(item.scene_description())
        if item.type == "counterfactual":
            pattern = r"If the (\w+ \w+) were removed.*would the (\w+ \w+) still"
            removed, asked = re.search(pattern, item.question).groups()
            alt = simulate(scene.without(removed.replace(" ", "_")), 100)
            assert item.answer == ("yes" if alt.moved(asked.replace(" ", "_")) else "no")
        if item.type == "predictive":
            pair = re.search(r"Will the (\w+ \w+) touch the (\w+ \w+)", item.question).groups()
            a, b = (s.replace(" ", "_") for s in pair)
            t = simulate(scene, 100).contact_time(a, b)
            assert item.answer == ("yes" if t is not None and t <= CONTEXT_FRAMES * 0.02 + 1.0 else "no")
            assert bool(item.evidence_events()) == (t is not None)


def test_corrupted_question_file_is_a_one_line_error(qa: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "data").mkdir(parents=True)
    (bad / "data" / "train.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="corrupted question file") as info:
        read_items(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(OutputExistsError):
        generate(QAConfig(out=qa, items=7))


def test_cli_generate_and_show(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MUJOCO_GL", "egl")
    out = tmp_path / "q"
    assert main(["qa", "generate", "--scenes", "drop", "collide", "--items", "7", "--out", str(out), "--quiet"]) == 0
    assert main(["qa", "show", str(out)]) == 0
    assert "items" in capsys.readouterr().out
    assert main(["qa", "generate", "--scenes", "volcano", "--items", "7", "--out", str(tmp_path / "x")]) == 2
    assert "unknown scene kind 'volcano'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="items must be >= 1"):
        QAConfig(out=tmp_path / "y", items=0)
