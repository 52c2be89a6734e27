"""``BenchmarkSuite`` on a tiny recorded Playground dataset and a tiny random multimodal model: every number beside
its trivial baseline, contact onsets against the event log, metric names checked, LPIPS/FVD only from local weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_generation import SIZE, tiny_model

from worldrl.cli import main
from worldrl.data import LeRobotDatasetReader
from worldrl.errors import ConfigError, ModelConfigurationError
from worldrl.evaluation.audio_onsets import detect_onsets, match_onsets
from worldrl.evaluation.benchmark_suite import VALID_METRICS, BenchmarkSuite, as_window, scene_windows

HORIZONS = (1, 3)
CONTEXT = 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    out = tmp_path_factory.mktemp("bench") / "drop"
    args = ["collect", "--env", "worldrl/Playground-v0", "--scene", "drop", "--episodes", "2", "--pixels", "--audio"]
    args += [
        "--out",
        str(out),
        "--max-episode-steps",
        "30",
        "--image-size",
        str(SIZE),
        "--quiet",
        "--vcodec",
        "libx264",
    ]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def model():
    return tiny_model(context_length=CONTEXT)


def test_unknown_metrics_and_pretrained_only_metrics_are_one_line_errors(model):
    with pytest.raises(ConfigError) as err:
        BenchmarkSuite(model, metrics=["psnr", "inception_score"])
    message = str(err.value)
    assert "inception_score" in message and all(m in message for m in VALID_METRICS) and "\n" not in message
    with pytest.raises(ConfigError, match="fvd needs pretrained weights .* fvd_weights="):
        BenchmarkSuite(model, metrics=["fvd"])
    with pytest.raises(ConfigError, match="lpips needs pretrained weights"):
        BenchmarkSuite(model, metrics=["psnr", "lpips"])


def test_every_number_comes_with_its_baselines_and_the_files_are_written(dataset, model, tmp_path):
    suite = BenchmarkSuite(
        model, save_predictions=True, output_dir=tmp_path / "results", horizons=HORIZONS, context=CONTEXT
    )
    windows = scene_windows(dataset, None, suite.window_length, stride=4, batch_size=4)
    results = suite.run_all_benchmarks(windows)
    for metric in ("psnr", "ssim", "audio_mel_mae", "position_error"):
        for h in HORIZONS:
            assert np.isfinite(results[metric]["model"][str(h)])
    assert set(results["psnr"]) == {"model", "repeat_last"}
    assert set(results["audio_mel_mae"]) == {"model", "repeat_last", "silence"}
    assert set(results["position_error"]) == {"model", "constant_position", "constant_velocity"}
    assert set(results["frechet[multimodal-tokenizer]"]) == {"model", "repeat_last"}
    assert "feature_distance[multimodal-tokenizer]" in results
    assert not any("fvd" in k or "lpips" in k for k in results)  # never labelled so without their weights
    # repeat-last PSNR at h=1, recomputed by hand over the same windows
    psnrs = []
    for w in windows:
        last = w.frames[:, CONTEXT - 1].double() / 255
        true = w.frames[:, CONTEXT].double() / 255
        mse = (last - true).pow(2).flatten(1).mean(1)
        psnrs += [float(-10 * torch.log10(m)) for m in mse if m > 0]
    assert results["psnr"]["repeat_last"]["1"] == pytest.approx(np.mean(psnrs), rel=1e-4)
    # the detector on the true audio, scored by hand against the event log's contacts
    onsets = results["contact_onsets"]
    manual = None
    for w in windows:
        for b in range(len(w.frames)):
            audio = w.audio[b, CONTEXT : CONTEXT + 3].numpy()
            found = detect_onsets(audio, previous=w.audio[b, CONTEXT - 1].numpy())
            truth = np.flatnonzero(w.contact[b, CONTEXT : CONTEXT + 3].numpy())
            scores = match_onsets(found, truth)
            manual = scores if manual is None else manual + scores
    assert onsets["true_audio"] == manual.to_dict()
    assert onsets["repeat_last"]["predicted"] == 0 and onsets["model"]["true"] == manual.true
    assert onsets["chance"]["true"] == manual.true and onsets["chance"]["matched"] <= onsets["chance"]["predicted"]
    assert results["setup"]["generation_frames_per_second"] > 0
    written = json.loads((tmp_path / "results" / "benchmarks.json").read_text())
    assert written["psnr"] == results["psnr"]
    assert "| psnr | repeat_last |" in (tmp_path / "results" / "benchmarks.md").read_text()
    assert {p.name for p in (tmp_path / "results").iterdir()} >= {"example.mp4", "example.wav", "example.png"}


def test_contact_flags_follow_the_event_log(dataset):
    reader = LeRobotDatasetReader(dataset)
    windows = scene_windows(dataset, [0], 30, stride=30)
    flags = np.flatnonzero(windows[0].contact[0].numpy())
    events = json.loads((dataset / "meta/worldrl/episode_000000/events.json").read_text())["events"]
    times = [e["time"] for e in events if e["kind"] == "contact"]
    frames = {int(np.ceil(t * reader.fps - 1e-6)) for t in times}
    assert sorted(f for f in frames if f < 30) == flags.tolist() and len(flags) >= 1


def test_fvd_and_lpips_come_only_from_local_torchscript_weights(dataset, model, tmp_path):
    """Stand-ins for I3D / LPIPS weights (they cannot be downloaded here): any TorchScript module with their
    signatures; the suite loads the files, labels the numbers fvd / lpips and scores both predictors."""

    class ClipFeatures(torch.nn.Module):
        def forward(self, videos: torch.Tensor) -> torch.Tensor:  # [N, 3, T, H, W] -> [N, 6]
            return torch.cat([videos.mean(dim=(2, 3, 4)), videos.std(dim=(2, 3, 4))], dim=1)

    class PatchDistance(torch.nn.Module):
        def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return (pred - target).abs().mean(dim=(1, 2, 3))

    torch.jit.save(torch.jit.script(ClipFeatures()), str(tmp_path / "i3d.pt"))
    torch.jit.save(torch.jit.script(PatchDistance()), str(tmp_path / "lpips.pt"))
    suite = BenchmarkSuite(
        model,
        metrics=["psnr", "fvd", "lpips"],
        horizons=HORIZONS,
        context=CONTEXT,
        fvd_weights=tmp_path / "i3d.pt",
        lpips_weights=tmp_path / "lpips.pt",
    )
    results = suite.benchmark_video_quality(scene_windows(dataset, None, suite.window_length, stride=6))
    assert set(results["fvd"]) == {"model", "repeat_last"} and results["fvd"]["model"]["all"] >= 0
    assert set(results["lpips"]) == {"model", "repeat_last"}
    (tmp_path / "bad.pt").write_text("not torchscript")
    with pytest.raises(ConfigError, match="fvd_weights .* is not a TorchScript module"):
        BenchmarkSuite(model, metrics=["fvd"], fvd_weights=tmp_path / "bad.pt")


def test_batches_of_create_dataloaders_are_accepted(dataset, model):
    from worldrl.data.multimodal_loaders import create_dataloaders

    loaders = create_dataloaders(
        str(dataset),
        batch_size=4,
        num_workers=0,
        pin_memory=False,
        video_size=SIZE,
        sequence_length=5,
        audio_features=32,
        augmentation=False,
    )
    batch = next(iter(loaders["train"]))
    assert as_window(batch).frames.shape[:2] == (4, 5)
    suite = BenchmarkSuite(model, metrics=["psnr", "contact_onsets"], horizons=HORIZONS, context=CONTEXT)
    results = suite.benchmark_physics_consistency([batch])
    assert any("no contact flags" in note for note in results["notes"])


def test_a_local_checkpoint_is_a_named_feature_encoder(dataset, model, tmp_path):
    """Fréchet and feature distances on another local worldrl model (a tiny vrnn observing one 16x16 camera),
    reported under that model's name; a checkpoint that does not observe one camera is refused in one line."""
    import gymnasium as gym
    from _models import VRNN_TINY
    from _models import tiny_model as tiny_ensemble

    from worldrl.evaluation.benchmark_suite import checkpoint_encoder
    from worldrl.models import TaskSpec, build_model, save_pretrained

    camera = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
    task = TaskSpec(camera, gym.spaces.Box(-1, 1, (2,), np.float32), obs_key="observation.images.front")
    encoder = checkpoint_encoder(save_pretrained(build_model("vrnn", VRNN_TINY, task), tmp_path / "enc"))
    assert encoder.name == "vrnn:enc"
    suite = BenchmarkSuite(
        model, metrics=["frechet", "feature_distance"], horizons=HORIZONS, context=CONTEXT, feature_encoder=encoder
    )
    results = suite.benchmark_video_quality(scene_windows(dataset, None, suite.window_length, stride=6))
    assert set(results["frechet[vrnn:enc]"]) == {"model", "repeat_last"}
    assert "feature_distance[vrnn:enc]" in results and not any("tokenizer" in k for k in results)
    with pytest.raises(ConfigError, match="must observe one camera"):
        checkpoint_encoder(save_pretrained(tiny_ensemble(), tmp_path / "ensemble"))


def test_sampled_onsets_can_sample_the_full_distribution(model):
    """A contact is a rare outcome of one step: the default nucleus (top-p 0.95) never draws a 3% component, the
    untruncated sampling the onset benchmark uses does, at about its probability; the suite passes both settings on."""
    from worldrl.models.multimodal.sampling import sample_codes

    logits = torch.log(torch.tensor([0.97, 0.03])).expand(4000, 2)
    g = torch.Generator().manual_seed(0)
    assert sample_codes(logits, 1.0, 50, 0.95, g).sum() == 0
    share = sample_codes(logits, 1.0, 0, 1.0, g).float().mean()
    assert 0.02 < share < 0.04
    suite = BenchmarkSuite(model, metrics=["contact_onsets"], temperature=1.0, top_k=0, top_p=1.0)
    assert (suite.generator.settings.top_k, suite.generator.settings.top_p) == (0, 1.0)
    with pytest.raises(ModelConfigurationError, match="top_p"):
        BenchmarkSuite(model, metrics=["contact_onsets"], temperature=1.0, top_p=0.0)
