"""VLM evaluations: BLINK's local layout, question-file errors, Wilson intervals, and train-vlm -> evaluate-vlm."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from worldrl.cli import main
from worldrl.errors import DatasetError
from worldrl.evaluation.vlm.items import read_vlm_items
from worldrl.evaluation.vlm.metrics import wilson_interval

torch.set_num_threads(1)
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _png(seed: int, side: int = 32) -> dict:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": f"{seed}.png"}


def write_blink(root, task: str, split: str, n: int, drop: tuple[str, ...] = ()) -> None:
    """A BLINK task file: <Task>/<split>-00000-of-00001.parquet with BLINK's columns."""
    rows = {
        "idx": [f"{split}_{task}_{i}" for i in range(n)],
        "question": ["Which point is closer to the camera?"] * n,
        "sub_task": [task] * n,
        "image_1": [_png(i) for i in range(n)],
        "image_2": [_png(100 + i) if i % 2 else None for i in range(n)],
        "image_3": [None] * n,
        "image_4": [None] * n,
        "choices": [["A is closer", "B is closer"]] * n,
        "answer": ["(A)" if i % 3 else "(B)" for i in range(n)],
        "prompt": [""] * n,
        "explanation": [""] * n,
    }
    types = {k: IMAGE for k in rows if k.startswith("image_")}
    types["choices"] = pa.list_(pa.string())
    table = pa.table({k: pa.array(v, type=types.get(k)) for k, v in rows.items() if k not in drop})
    (root / task).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / task / f"{split}-00000-of-00001.parquet")


def test_blink_layout_is_read_with_letters_mapped_to_choices(tmp_path):
    write_blink(tmp_path, "Relative_Depth", "val", 6)
    write_blink(tmp_path, "Counting", "val", 3)
    items = read_vlm_items(tmp_path, "val")
    assert len(items) == 9 and {i.type for i in items} == {"Relative_Depth", "Counting"}
    first = next(i for i in items if i.id == "val_Counting_0")
    assert first.answer == "B is closer" and len(first.images) == 1 and first.frames.shape == (1, 32, 32, 3)
    assert len(next(i for i in items if i.id == "val_Counting_1").images) == 2


def test_question_files_with_missing_fields_fail_with_one_line(tmp_path):
    write_blink(tmp_path, "Counting", "val", 2, drop=("answer",))
    with pytest.raises(DatasetError, match=r"missing columns \['answer'\]"):
        read_vlm_items(tmp_path, "val")
    qa = tmp_path / "qa"
    (qa / "data").mkdir(parents=True)
    (qa / "meta.json").write_text("{}")
    pq.write_table(pa.table({"id": ["x"], "question": ["?"]}), qa / "data" / "test.parquet")
    with pytest.raises(DatasetError, match="not a physics question file: missing columns"):
        read_vlm_items(qa, "test")


def test_wilson_interval():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == pytest.approx(0.0, abs=1e-12) and wilson_interval(5, 5)[1] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_train_vlm_resume_and_evaluate_vlm(tmp_path, capsys):
    questions = tmp_path / "blink"
    write_blink(questions, "Relative_Depth", "val", 8)
    write_blink(questions, "Relative_Depth", "test", 4)
    out = tmp_path / "run"
    args = ["train-vlm", "--config", "fusion_tiny", f"questions={questions}", f"out={out}", "split=val"]
    args += ["batch_size=4", "save_every=2", "log_every=1", "device=cpu", "ema_decay=0.9"]
    assert main([*args, "steps=2", "precision=bf16", "--quiet"]) == 0  # bf16 autocast, then fp32 after resuming
    assert main([*args, "steps=4", "--quiet", "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the resumed run continued at step 3
    assert (out / "model" / "fusion.safetensors").exists() and (out / "base" / "gemma").is_dir()
    capsys.readouterr()
    assert main(["evaluate-vlm", "--model", str(out / "model"), "--questions", str(questions), "--split", "test"]) == 0
    printed = capsys.readouterr().out
    assert "| Relative_Depth | 4 |" in printed and "| all | 4 |" in printed
    results = json.loads((out / "model" / "eval-test" / "results.json").read_text())
    row = results["per_type"]["Relative_Depth"]
    assert row["chance"] == 0.5 and 0 <= row["ci_low"] <= row["accuracy"] <= row["ci_high"] <= 1
    assert row["answer_prior"] == 0.5  # the most common val answer ("A is closer": 5 of 8) is right on 2 of 4
    lines = (out / "model" / "eval-test" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["prediction"] in ("A is closer", "B is closer")
    assert (out / "model" / "eval-test" / "accuracy.png").stat().st_size > 1000


def test_free_form_numeric_answers_are_right_within_tolerance():
    from worldrl.evaluation.vlm.items import VLMItem

    item = VLMItem("q", "test", "quantitative", "Where?", [], "0.100, 0.200", [], np.zeros((1, 2, 2, 3), np.uint8))
    item.target, item.tolerance = [0.1, 0.2], 0.1
    assert item.is_correct("0.15, 0.25") and item.is_correct("(0.1, 0.2)")
    assert not item.is_correct("0.3, 0.2") and not item.is_correct("near the wall") and not item.is_correct("0.1")
