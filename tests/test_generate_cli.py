"""`worldrl generate` and `worldrl evaluate --metrics` end to end on a tiny saved multimodal checkpoint."""

from __future__ import annotations

import json
import os

import av
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from test_evaluate_cli import _save_ensemble
from test_generation import IMAGE_KEY, SIZE, tiny_model

from worldrl.cli import main
from worldrl.data.video import VideoSettings, encode_video
from worldrl.models import save_pretrained


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = tiny_model(context_length=3)
    model.start_states = TensorDict(
        {
            IMAGE_KEY: torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8),
            "observation.audio": torch.full((2, 32), -10.0),
            "observation.state": torch.zeros(2, 78),
        },
        batch_size=[2],
    )
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    return encode_video(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", 50, VideoSettings(vcodec="libx264"))


def frame_count(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_generate_from_a_prompt_clip(checkpoint, clip, tmp_path, capsys):
    out = tmp_path / "gen.mp4"
    args = ["generate", "--checkpoint", str(checkpoint), "--prompt", str(clip), "--output", str(out)]
    assert main([*args, "--frames", "5", "--temperature", "0.8"]) == 0
    assert "generated 5 frames from prompt" in capsys.readouterr().out
    assert frame_count(out) == 3 + 5  # the prompt, then the generated frames
    assert out.with_suffix(".wav").stat().st_size > 44 and out.with_suffix(".png").stat().st_size > 0


def test_generate_from_a_scene_and_from_a_start(checkpoint, tmp_path, capsys):
    os.environ.setdefault("MUJOCO_GL", "egl")
    out = tmp_path / "scene.mp4"
    args = ["generate", "--checkpoint", str(checkpoint), "--scene", "drop", "--scene-seed", "2", "--frames", "4"]
    assert main([*args, "--context-steps", "2", "--output", str(out), "--temperature", "0"]) == 0
    assert frame_count(out) == 2 + 4
    from PIL import Image

    assert Image.open(out.with_suffix(".png")).size[1] == 2 * (SIZE + 4)  # generated above, the true simulation below
    start = tmp_path / "start.mp4"
    assert main(["generate", "--checkpoint", str(checkpoint), "--output", str(start), "--frames", "3"]) == 0
    assert frame_count(start) == 1 + 3
    assert "training-episode start" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("not_a_video", "is not a readable video"),
        ("top_p", r"top_p must lie in \(0, 1\], got 1.5"),
        ("not_multimodal", "needs a multimodal checkpoint"),
        ("not_mp4", "--output must name an .mp4 file"),
    ],
)
def test_generate_bad_input_is_one_line(case, pattern, checkpoint, clip, tmp_path, capsys):
    ckpt, prompt, output = str(checkpoint), str(clip), str(tmp_path / "o.mp4")
    extra = []
    if case == "not_a_video":
        (tmp_path / "notes.mp4").write_text("not a video\n")
        prompt = str(tmp_path / "notes.mp4")
    if case == "top_p":
        extra = ["--top-p", "1.5"]
    if case == "not_multimodal":
        ckpt = str(_save_ensemble(tmp_path / "ensemble"))
    if case == "not_mp4":
        output = str(tmp_path / "o.gif")
    args = ["generate", "--checkpoint", ckpt, "--prompt", prompt, "--output", output, "--frames", "2", *extra]
    assert main(args) == 2
    err = one_line_error(capsys)
    assert err.startswith("worldrl generate: error:") and __import__("re").search(pattern, err), err


def test_evaluate_runs_the_benchmark_suite_for_multimodal_checkpoints(checkpoint, tmp_path, capsys):

    os.environ.setdefault("MUJOCO_GL", "egl")
    data = tmp_path / "drop"
    collect = ["collect", "--env", "worldrl/Playground-v0", "--scene", "drop", "--episodes", "2", "--pixels"]
    collect += ["--audio", "--out", str(data), "--max-episode-steps", "20", "--image-size", str(SIZE), "--quiet"]
    assert main([*collect, "--vcodec", "libx264"]) == 0
    out = tmp_path / "results"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--dataset", str(data), "--episodes", "all"]
    args += ["--horizons", "1", "4", "--output-dir", str(out), "--metrics", "psnr", "ssim", "contact_onsets"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| psnr | model |" in printed and "| psnr | repeat_last |" in printed
    results = json.loads((out / "benchmarks.json").read_text())
    assert set(results["ssim"]) == {"model", "repeat_last"} and results["setup"]["context"] == 3
    assert "true_audio" in results["contact_onsets"]
    assert main([*args[:-3], "psnr", "inception_score"]) == 2
    err = one_line_error(capsys)
    assert "unknown metric(s) ['inception_score']" in err and "valid metrics: psnr, ssim" in err
    ensemble = str(_save_ensemble(tmp_path / "ensemble"))
    assert main(["evaluate", "--checkpoint", ensemble, "--dataset", str(data), "--metrics", "psnr"]) == 2
    assert "--metrics selects the benchmark suite" in one_line_error(capsys)
