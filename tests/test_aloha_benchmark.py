"""scripts/benchmark_aloha.py on a tiny recording: gym-aloha's TransferCube in LeRobot's layout at a CPU-sized top
camera, a vrnn trained a step, PSNR/SSIM beside the trivial baselines in the doc section (``worldrl[robot]``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("gym_aloha")


def load_benchmark():
    from _scripts import load_script

    return load_script("benchmark_aloha")


def test_cpu_sized_env_renders_only_the_top_camera_at_its_size():
    import gymnasium as gym

    bench = load_benchmark()
    env = gym.make(bench.register_env(24, 32), obs_type="pixels_agent_pos")
    obs, _ = env.reset(seed=0)
    assert obs["pixels"]["top"].shape == (24, 32, 3) and obs["agent_pos"].shape == (14,)
    assert env.observation_space["pixels"]["top"].shape == (24, 32, 3)
    raw = env.unwrapped._env.task.get_observation(env.unwrapped._env.physics)
    assert set(raw["images"]) == {"top"}  # the two views the layout does not record are not rendered
    moved = env.step(np.full(14, 0.5, np.float32))[0]["pixels"]["top"]
    assert np.abs(moved.astype(int) - obs["pixels"]["top"]).mean() > 0  # the arms move in the frame
    env.close()


def test_all_records_trains_and_reports_psnr_ssim_beside_the_baselines(tmp_path, monkeypatch):
    bench = load_benchmark()
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    doc.write_text(
        "# B\n\n<!-- robot:start -->\nR\n<!-- robot:end -->\n\n<!-- later:start -->\nL\n<!-- later:end -->\n"
    )
    argv = ["benchmark_aloha.py", "all", "--out", str(tmp_path / "out"), "--doc", str(doc), "--train-episodes", "2"]
    argv += ["--heldout-episodes", "1", "--steps", "12", "--model-steps", "1", "--starts", "4", "--set"]
    argv += ["data.window=4", "trainer.batch_size=2", "trainer.eval_every=0", "trainer.log_every=1"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    info = json.loads((tmp_path / "out" / "data_train" / "meta" / "info.json").read_text())
    assert info["fps"] == 50 and info["total_episodes"] == 2 and info["total_frames"] == 24
    assert info["features"]["observation.images.top"]["shape"] == [48, 64, 3]
    assert info["features"]["observation.state"]["shape"] == [14]
    assert {"action", "next.reward", "next.success"} <= set(info["features"])
    text = doc.read_text()
    section = text[text.index("<!-- aloha:start -->") : text.index("<!-- aloha:end -->")]
    assert text.index("<!-- robot:end -->") < text.index("<!-- aloha:start -->") < text.index("<!-- later:start -->")
    assert "repeat last frame: PSNR (dB) | repeat last frame: SSIM | mean frame: PSNR (dB)" in section
    rows = [line for line in section.splitlines() if line.startswith(("| 1 |", "| 10 |")) and line.count("|") == 9]
    assert len(rows) == 2
    assert "| 1 | repeat the last observation | 4 | " in section  # the paired differences, start by start
    values = [float(c.strip("* ")) for c in rows[0].strip("|").split("|")[2:]]
    assert len(values) == 6 and all(np.isfinite(values)) and all(0 < v <= 1 for v in values[1::2])
    assert (doc.parent / "aloha_imagined_vs_real.png").stat().st_size > 1000
    # the one-step ceiling on the same held-out recording: a keep-everything mask is repeat-last, keep-nothing the paint
    out = str(tmp_path / "out")
    keep_all = _ceiling(bench, monkeypatch, out, change=2.0)
    keep_none = _ceiling(bench, monkeypatch, out, change=0.0)
    assert keep_all["oracle blend"] == pytest.approx(keep_all["repeat last frame"])
    assert keep_none["oracle blend"] == pytest.approx(keep_none["paint"])
    assert keep_all["pairs"] == 11 and 0 < keep_all["changed"] < 1  # one held-out episode of 12 frames
    assert json.loads((tmp_path / "out" / "one_step_ceiling.json").read_text())["change_threshold"] == 0.0
    # fine-tuning from the preset's final weights under another loss weight; evaluate then scores that run
    more = ["--finetune-steps", "2", "--finetune-set", "model.open_loop_ssim=10"]
    for command in ("train", "evaluate"):
        monkeypatch.setattr(sys, "argv", [*argv[:1], command, *argv[2:], *more])
        bench.main()
    tuned = tmp_path / "out" / "model_run_finetuned"
    config = yaml.safe_load((tuned / "config.yaml").read_text())
    assert config["init_from"] == str(tmp_path / "out" / "model_run" / "model")
    assert config["model"]["open_loop_ssim"] == 10 and config["data"]["window"] == 4  # --set applies to both runs
    records = [json.loads(line) for line in (tuned / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2]  # its own steps, from 1
    assert "--finetune-steps 2 --finetune-set model.open_loop_ssim=10" in doc.read_text()


def _ceiling(bench, monkeypatch, out: str, change: float) -> dict:
    monkeypatch.setattr(sys, "argv", ["benchmark_aloha.py", "ceiling", "--out", out, "--change", str(change)])
    bench.main()
    return json.loads((Path(out) / "one_step_ceiling.json").read_text())
