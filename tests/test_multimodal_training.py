"""Training the multimodal family (issue 15): ``NeuralWorldTrainer`` on the shared trainer, checkpoints, resume,
``worldrl train`` with the CPU preset, and the trained model served by ``WorldModel-v0`` (frames, audio, state)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from worldrl.cli import main as worldrl_main
from worldrl.data.collect import CollectConfig, collect
from worldrl.data.multimodal_loaders import create_dataloaders
from worldrl.errors import TrainingError
from worldrl.models import load_pretrained
from worldrl.models.multimodal import MultimodalConfig
from worldrl.training.neural_world_trainer import NeuralWorldTrainer, multimodal_model_for

TINY = {**MultimodalConfig.tiny(), "audio_dim": 32}
PRESET = Path(__file__).resolve().parents[1] / "configs" / "multimodal_playground_cpu.yaml"


def train_tiny_preset(scenes: Path, tmp_path: Path, steps: int, **model) -> None:
    """``worldrl train`` with the CPU preset at the tiny size (plus ``model`` options) on ``scenes``, into
    ``tmp_path / "run"``."""
    config = yaml.safe_load(PRESET.read_text())
    config["model"].update({**TINY, **model})
    config["data"].update({"root": str(scenes), "window": 4})
    config["data"].pop("collect")
    config["output_dir"] = str(tmp_path / "run")
    config["trainer"].update({"max_steps": steps, "batch_size": 4, "eval_every": steps, "progress": False})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert worldrl_main(["train", "--config", str(path)]) == 0


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mm_train") / "collide"
    collect(
        CollectConfig(
            env_id="worldrl/Playground-v0", out=root, episodes=5, pixels=True, audio=True, scene="collide",
            image_size=32, max_episode_steps=12, vcodec="libx264", seed=1,
        )
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def loaders(scenes: Path) -> dict:
    torch.manual_seed(0)
    return create_dataloaders(
        str(scenes), batch_size=4, num_workers=0, video_size=32, sequence_length=4, audio_features=32,
        augmentation=False, val_fraction=0.2, test_fraction=0.0,
    )  # fmt: skip


def test_neural_world_trainer_learns_and_checkpoints_resume(loaders: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = multimodal_model_for(loaders["train"], **TINY)
    common = {"device": "cpu", "progress": False, "lr": 3e-3, "eval_every": 15, "log_every": 5}
    trainer = NeuralWorldTrainer(
        model, loaders["train"], loaders["val"], num_epochs=1, max_steps=30, mixed_precision="no",
        checkpoint_dir=str(tmp_path / "run"), use_ema=False, early_stopping_patience=None, **common,
    )  # fmt: skip
    before = trainer.evaluate(loaders["train"])
    result = trainer.train()
    after = trainer.evaluate(loaders["train"])
    assert result.steps == 30
    for term in ("reconstruction", "prediction", "audio", "audio_rollout", "physics"):
        assert after[term] < before[term], (term, before[term], after[term])
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"prediction", "spectral", "temporal", "perceptual", "physics", "audio_rollout"} <= set(logged[0]["metrics"])

    saved = trainer.save_checkpoint(epoch=1, metrics={"val": 1.0})
    assert {p.suffix for p in saved.rglob("*") if p.is_file()} == {".safetensors", ".json"}  # nothing pickled
    assert json.loads((saved / "checkpoint_info.json").read_text())["epoch"] == 1
    again = NeuralWorldTrainer(
        multimodal_model_for(loaders["train"], **TINY), loaders["train"], loaders["val"], num_epochs=1,
        max_steps=32, mixed_precision="no", checkpoint_dir=str(tmp_path / "run"), use_ema=False, **common,
    )  # fmt: skip
    again.load_checkpoint(saved)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert again.train().steps == 32


def test_trainer_refuses_loaders_that_do_not_yield_windows(loaders: dict) -> None:
    model = multimodal_model_for(loaders["train"], **TINY)
    plain = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 3)), batch_size=2)
    with pytest.raises(TrainingError, match="worldrl windows"):
        NeuralWorldTrainer(model, plain)
    with pytest.raises(TrainingError, match="mixed_precision"):
        NeuralWorldTrainer(model, loaders["train"], mixed_precision="fp8")


def test_worldrl_train_with_the_preset_serves_frames_audio_and_state(scenes: Path, tmp_path: Path) -> None:
    train_tiny_preset(scenes, tmp_path, steps=3)
    model = load_pretrained(tmp_path / "run" / "model")
    assert model.config.family == "multimodal" and model.layout is not None  # Playground: positions known
    # every setting of the preset reaches the network (a subset of the fields once dropped greedy_audio)
    fields = [f.name for f in dataclasses.fields(MultimodalConfig)]
    assert {k: getattr(model.net.config, k) for k in fields} == {k: getattr(model.config, k) for k in fields}
    env = gym.make("WorldModel-v0", model=model)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"observation.images.front", "observation.audio", "observation.state"}
    assert obs["observation.images.front"].shape == (32, 32, 3) and obs["observation.images.front"].dtype == np.uint8
    for _ in range(3):
        obs, reward, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward)


def _script(name: str):
    from _scripts import load_script

    return load_script(name)


def test_teacher_forced_pass_is_what_the_loss_and_the_code_benchmark_read(scenes: Path, tmp_path: Path) -> None:
    from worldrl.data import LeRobotDatasetReader, WindowDataset
    from worldrl.training.trainer import collate_windows, to_task_shapes

    config = yaml.safe_load(PRESET.read_text())
    config["model"].update(TINY)
    config["data"].update({"root": str(scenes), "window": 4})
    config["data"].pop("collect")
    config["output_dir"] = str(tmp_path / "run")
    config["trainer"].update({"max_steps": 1, "batch_size": 4, "eval_every": 1, "progress": False})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert worldrl_main(["train", "--config", str(tmp_path / "config.yaml")]) == 0
    model = load_pretrained(tmp_path / "run" / "model").eval()
    reader = LeRobotDatasetReader(scenes)
    keys = {f"obs/{k}": k for k in model.task.obs_keys}
    keys.update({"action": "action", "reward": "next.reward", "terminated": "next.terminated"})
    ds = WindowDataset(reader, keys=keys, window=4)
    batch = to_task_shapes(collate_windows([ds[i] for i in range(3)]), model.task)
    with torch.no_grad():
        out, frames, _, phys = model.teacher_forced(batch["obs"], batch["action"], batch["mask"], batch["is_first"])
        stats = _script("benchmark_multimodal").code_probabilities(
            model, {**{k: batch["obs"][k] for k in model.task.obs_keys}, "action": batch["action"]}
        )
    n, steps, tokens = out["codes"].shape
    assert (n, steps) == (3, 4) and frames.shape[:2] == (3, 4) and phys.shape[:2] == (3, 4)
    # "does a code move the frame": one step over the true frame before, from true codes, random codes, or a copy
    video = model.frames_to_model(batch["obs"][model.image_key])
    first, truths = video[:, 0], video[:, 1:]
    with torch.no_grad():
        codes, _ = model.net.encode_frames(truths, reference=first)
        moved = _script("benchmark_multimodal").code_transmission(model, truths[:, :1], first, codes[:, :1])
        alone = model.net.decode_codes(codes[:, :1], first)[:, 0]  # one step over the true frame: a one-frame chain

    def psnr(x: torch.Tensor) -> float:
        return float(-10 * torch.log10((x - truths[:, 0]).pow(2).mean()))

    assert moved["one_step_true_codes_psnr"] == pytest.approx(psnr(alone), rel=1e-5)
    assert moved["one_step_copy_psnr"] == pytest.approx(psnr(first), rel=1e-5)
    assert np.isfinite(moved["one_step_random_codes_psnr"])
    assert stats["tf_patch_steps"] == n * (steps - 1) * tokens
    changed = stats["tf_true_change_rate"]
    undefined = {k for k, v in stats.items() if math.isnan(v)}  # averages over no patch-step whose code changed
    assert undefined <= ({"tf_p_true_where_change", "tf_p_change_where_change"} if changed == 0 else set()), stats
    assert all(0.0 <= v <= 1.0 for k, v in stats.items() if k != "tf_patch_steps" and k not in undefined), stats
    # the probabilities it reports come from one distribution per patch-step: the change mass splits into the
    # true changes' share and the kept patches' share, and a kept patch's true code is the code it keeps
    p_change_where_kept = 1.0 - stats["tf_p_true_where_kept"]
    where_change = stats["tf_p_change_where_change"] if changed else 0.0
    expected = changed * where_change + (1 - changed) * p_change_where_kept
    assert stats["tf_mean_change_probability"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_audio_state_cue_reads_the_physics_head_in_the_logits_only(scenes: Path, tmp_path: Path) -> None:
    """``audio_state_cue``: trained through ``worldrl train``, the cue head changes which component is likely when
    the state changes, never the components' spectra; the simulator steps on it; without physics it is refused."""
    train_tiny_preset(scenes, tmp_path, steps=4, audio_state_cue=True)
    model = load_pretrained(tmp_path / "run" / "model")
    net = model.net.eval()
    assert net.audio_cue is not None and net.audio_cue[-1].weight.abs().sum() > 0  # trained from its zero start
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 1, *net.latent_queries.shape, generator=g)
    audio = torch.randn(2, 1, net.config.audio_dim, generator=g)
    state = torch.randn(2, 1, net.state_dim, generator=g)
    with torch.no_grad():
        a = net.predict_next(h, torch.zeros(2, 1, net.action_dim), state, audio)
        b = net.predict_next(h, torch.zeros(2, 1, net.action_dim), state + 1.0, audio)
    torch.testing.assert_close(a["audio_components"], b["audio_components"])
    torch.testing.assert_close(a["audio_log_scales"], b["audio_log_scales"])
    assert not torch.allclose(a["audio_logits"], b["audio_logits"])
    env = gym.make("WorldModel-v0", model=model)
    env.reset(seed=0)
    for _ in range(2):
        obs, reward, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward)
    from worldrl.errors import ModelConfigurationError
    from worldrl.models.multimodal import TransformerWorldModel

    with pytest.raises(ModelConfigurationError, match="audio_state_cue"):
        TransformerWorldModel(**{**MultimodalConfig.tiny(), "audio_state_cue": True}, state_dim=0)


def test_the_physics_benchmark_counts_held_out_velocity_events_once_and_scores_what_the_gate_applies(
    scenes: Path, tmp_path: Path
) -> None:
    from worldrl.data import LeRobotDatasetReader
    from worldrl.models.multimodal.physics import present

    train_tiny_preset(scenes, tmp_path, steps=2, physics_contact_radius=0.0)  # every gate may open
    bench = _script("benchmark_multimodal_physics")
    model = load_pretrained(tmp_path / "run" / "model").eval()
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    data = bench.frozen_features(model, LeRobotDatasetReader(scenes), cfg, stride=3, split="val")
    gate_bias = model.net.physics.dynamics.node[-1].bias
    tables = {}
    for bias in (-100.0, 100.0):  # every gate shut, then every gate open
        with torch.no_grad():
            gate_bias[-1] = bias
        tables[bias] = {row["kind"]: row for row in bench.contact_table(model, data)}
    shut, opened = tables[-100.0], tables[100.0]
    real = model.net.physics.real(data["state"][:, :-1])[data["pair"]]
    assert sum(row["events"] for row in shut.values()) == int(present(real, model.layout).sum())
    kinds = [kind for kind, row in shut.items() if kind != "no event" and row["events"]]
    assert kinds  # the collide scenes have contacts
    for kind in kinds:  # a shut gate applies no change; an open one applies the predicted change
        assert shut[kind]["gate_recall"] == 0 and shut[kind]["applied_error"] == pytest.approx(shut[kind]["dv"])
        assert opened[kind]["gate_recall"] == 1
        assert opened[kind]["applied_error"] == pytest.approx(opened[kind]["error"])
    assert shut["no event"]["gate_recall"] == 0 and opened["no event"]["gate_recall"] == 1


def test_the_multimodal_benchmark_scores_a_vrnn_on_the_same_starts_paired(scenes: Path, tmp_path: Path) -> None:
    from _models import VRNN_TINY

    from worldrl.data import LeRobotDatasetReader
    from worldrl.models import TaskSpec, build_model, save_pretrained

    train_tiny_preset(scenes, tmp_path, steps=2)
    bench = _script("benchmark_multimodal")
    model = load_pretrained(tmp_path / "run" / "model").eval()
    camera = model.image_key
    frames = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
    task = TaskSpec(frames, model.task.action_space, task_id="worldrl/Playground-v0", obs_key=camera)
    torch.manual_seed(0)
    save_pretrained(build_model("vrnn", VRNN_TINY, task), tmp_path / "vrnn" / "model")
    vrnn = bench.load_vrnn(tmp_path / "vrnn", camera)
    with pytest.raises(SystemExit, match="not the camera"):
        bench.load_vrnn(tmp_path / "vrnn", "observation.images.top")
    reader = LeRobotDatasetReader(scenes)
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    _, starts = bench.held_out_starts(reader, cfg, context=2, horizon=3, per_episode=2)
    rows, _ = bench.score(model, reader, starts, 2, [1, 3], out=str(tmp_path / "bm"), samples=1, vrnn=vrnn)
    for row in rows:
        for name in ("model", "repeat", "tokenizer", "mc_mean", "vrnn"):  # each pooled PSNR against its own truths
            assert row[f"psnr_{name}"] == pytest.approx(-10 * math.log10(row[f"mse_{name}"]), abs=1e-3)
        # paired per start on the same starts: the mean difference is the difference of the means
        assert row["vrnn_mse_diff_repeat"][0] == pytest.approx(row["mse_vrnn"] - row["mse_repeat"], abs=1e-9)
        assert row["vrnn_ssim_diff_model"][0] == pytest.approx(row["ssim_vrnn"] - row["ssim_model"], abs=1e-9)
    table = bench.vrnn_table(rows, "runs/vrnn")
    assert [line.split(" | ")[0] for line in table[-2:]] == ["| 1", "| 3"]


def test_the_physics_benchmark_fine_tunes_on_another_collections_states_as_training_feeds_them(
    scenes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import sys

    from worldrl.data import LeRobotDatasetReader
    from worldrl.errors import ConfigError

    train_tiny_preset(scenes, tmp_path, steps=2)  # the preset's head reads the state and the action
    bench = _script("benchmark_multimodal_physics")
    model = load_pretrained(tmp_path / "run" / "model").eval()
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    reader = LeRobotDatasetReader(scenes)
    windows = bench.state_windows(model, reader, window=4, stride=1)
    assert windows["state"].shape[:2] == (5 * (12 - 4 + 1), 4) and bool(windows["pair"].all())
    fed = bench.frozen_features(model, reader, cfg, stride=1)  # what the teacher-forced training pass feeds the head
    full = fed["pair"].all(1)  # windows that end inside their episode (the others are padded)
    flat = lambda d: torch.cat([d["state"].flatten(1), d["feature"].flatten(1)], 1)  # noqa: E731
    gaps = torch.cdist(flat(fed)[full], flat(windows)).min(1).values
    assert bool(full.any()) and float(gaps.max()) < 1e-2  # each is one of the state windows, features included
    with pytest.raises(ConfigError, match="physics_context"):
        model.config = dataclasses.replace(model.config, physics_context="feature")
        bench.state_windows(model, reader, window=4, stride=1)
    assert len(bench.scene_seeds(reader)) == 5
    argv = ["x", "--run", str(tmp_path / "run"), "--dataset", str(scenes), "--finetune-steps", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--finetune-dataset", str(scenes)])
    with pytest.raises(ConfigError, match="repeats 5 scenes"):  # its own scenes include the held-out ones
        bench.main()
