"""``VideoGenerator`` on a tiny random multimodal model of Playground scenes: greedy = temperature 0 = the model's own
rollout, beam search never below greedy, seeded sampling, the three starts, and the mp4/wav/png it writes."""

from __future__ import annotations

import os

import av
import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from worldrl.data.collect_scenes import read_wav
from worldrl.errors import DataLoadingError, ModelConfigurationError
from worldrl.evaluation.audio_onsets import detect_onsets
from worldrl.models import TaskSpec, build_model
from worldrl.models.multimodal.generator import VideoGenerator, log_mel_to_waveform, simulate_scene
from worldrl.models.multimodal.sampling import greedy_decode, sequence_log_prob
from worldrl.tasks.scenes.audio import SAMPLE_RATE
from worldrl.tasks.scenes.mel import frame_log_mel

os.environ.setdefault("MUJOCO_GL", "egl")
SIZE = 16
IMAGE_KEY = "observation.images.front"


def tiny_model(seed: int = 0, context_length: int = 12):
    torch.manual_seed(seed)
    space = gym.spaces.Dict(
        {
            IMAGE_KEY: gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8),
            "observation.audio": gym.spaces.Box(-np.inf, np.inf, (32,), np.float32),
            "observation.state": gym.spaces.Box(-np.inf, np.inf, (78,), np.float32),
        }
    )
    task = TaskSpec(space, gym.spaces.Box(-1, 1, (2,), np.float32), task_id="worldrl/Playground-v0", fps=50)
    config = {
        "img_size": SIZE,
        "patch_size": 8,
        "audio_dim": 32,
        "audio_seq_len": 16,
        "embed_dim": 32,
        "depth": 1,
        "num_heads": 2,
        "mlp_ratio": 2.0,
        "latent_dim": 32,
        "num_latent_tokens": 2,
        "decode_depth": 1,
        "physics_embed_dim": 16,
        "fsq_levels": [3, 3],
        "tokenizer_channels": 8,
        "context_length": context_length,
    }
    return build_model("multimodal", config, task).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def prompt(batch: int = 1, frames: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, frames, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_temperature_zero_is_greedy_and_matches_the_models_own_rollout(model):
    video = prompt(batch=2)
    out = VideoGenerator(model, temperature=0.0, max_length=8).generate_from_prompt(video, 5)
    assert out.frames.shape == (2, 7, SIZE, SIZE, 3) and out.context_frames == 2
    assert out.audio.shape == (2, 7, 32) and out.state.shape == (2, 7, 78)
    # The generator's greedy decoding is the same sequence as the model's own greedy rollout (forward future_steps).
    silence = model.audio_norm(torch.full((2, 2, 32), -10.0))
    with torch.no_grad():
        reference = model.net(video, silence, future_steps=5, state=torch.zeros(2, 2, 78), actions=torch.zeros(2, 2, 2))
    assert np.array_equal(out.generated, model.model_to_frames(reference["future_video"]).to(torch.uint8).numpy())
    # and the sampler at temperature 0 with top-k/top-p filters is still greedy
    same = VideoGenerator(model, temperature=0.0, top_k=3, top_p=0.5, max_length=8).generate_from_prompt(video, 5)
    assert np.array_equal(same.frames, out.frames) and np.allclose(same.log_prob, out.log_prob)


def test_beam_search_is_never_less_likely_than_greedy(model):
    for seed in range(3):
        video = prompt(seed=seed)
        greedy = VideoGenerator(model, temperature=0.0, max_length=8).generate_from_prompt(video, 4)
        beam = VideoGenerator(model, beam_size=3, max_length=8).generate_from_prompt(video, 4)
        assert beam.log_prob[0] >= greedy.log_prob[0] - 1e-6
    # the reported likelihood is the model's: rescoring the beam's codes gives the same number
    gen = VideoGenerator(model, beam_size=2, max_length=8)
    codes, _ = model.net.encode_frames(video)
    frames = gen.model_io.prompt_frames(video, torch.device("cpu"))
    side = gen.model_io.side_values(frames, None, None, torch.device("cpu"))
    step = gen.model_io.step_function(gen.model_io.actions(None, 1, 2, 4, torch.device("cpu")), prompt=frames)
    with torch.no_grad():
        greedy_codes, _ = greedy_decode(step, codes, side, 4)
        rescored = float(sequence_log_prob(step, greedy_codes, side, start=2))
    assert greedy.log_prob[0] == pytest.approx(rescored, abs=1e-4)


def test_sampling_is_seeded(model):
    def draw(seed: int) -> np.ndarray:
        g = torch.Generator().manual_seed(seed)
        gen = VideoGenerator(model, temperature=1.0, top_k=0, top_p=1.0, max_length=8, generator=g)
        return gen.generate_from_prompt(prompt(), 6).frames

    assert np.array_equal(draw(1), draw(1))
    assert not np.array_equal(draw(1), draw(2))


@pytest.mark.parametrize("top_p", [0.0, -0.5, 1.01])
def test_top_p_outside_the_unit_interval_is_a_one_line_error(model, top_p):
    with pytest.raises(ModelConfigurationError) as err:
        VideoGenerator(model, top_p=top_p)
    assert "top_p must lie in (0, 1]" in str(err.value) and "\n" not in str(err.value)


def test_bad_inputs_are_one_line_errors(model, tmp_path):
    gen = VideoGenerator(model, max_length=4)
    with pytest.raises(ModelConfigurationError, match="num_frames"):
        gen.generate_from_prompt(prompt(), 5)
    with pytest.raises(ModelConfigurationError, match=r"prompt_video must be \[B, T, C, H, W\]"):
        VideoGenerator(model.net).generate_from_prompt(torch.rand(3, SIZE, SIZE), 2)
    with pytest.raises(ModelConfigurationError, match="16, 16"):
        VideoGenerator(model.net).generate_from_prompt(torch.rand(1, 2, 3, 24, 24), 2)
    not_video = tmp_path / "clip.mp4"
    not_video.write_text("these are not frames\n")
    with pytest.raises(DataLoadingError, match="not a readable video") as err:
        gen.generate_from_prompt(not_video, 2)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelConfigurationError, match="start_states"):
        gen.generate_unconditional(2)


def test_unconditional_generation_starts_from_the_models_start_states():
    model = tiny_model()
    frames = torch.randint(0, 256, (3, SIZE, SIZE, 3), dtype=torch.uint8)
    model.start_states = TensorDict(
        {
            IMAGE_KEY: frames,
            "observation.audio": torch.full((3, 32), -10.0),
            "observation.state": torch.zeros(3, 78),
        },
        batch_size=[3],
    )
    out = VideoGenerator(model, max_length=8, generator=torch.Generator().manual_seed(0)).generate_unconditional(
        4, batch_size=2
    )
    assert out.frames.shape == (2, 5, SIZE, SIZE, 3) and out.context_frames == 1
    for first in out.frames[:, 0]:
        assert any(np.array_equal(first, f) for f in frames.numpy())


def test_physics_start_is_rendered_by_mujoco_and_saved_as_mp4_wav_png(model, tmp_path):
    gen = VideoGenerator(model, temperature=0.7, top_k=5, top_p=0.9, max_length=10)
    out = gen.generate_with_physics({"scene": "drop", "scene_seed": 3}, 8, context_steps=2)
    real = simulate_scene({"scene": "drop", "scene_seed": 3}, 10, SIZE, SIZE)
    assert np.array_equal(out.reference_frames[0], real["frames"])
    assert np.array_equal(out.frames[0, :2], real["frames"][:2])  # the prompt is MuJoCo's render
    files = out.save(tmp_path / "gen.mp4")
    assert [f.name for f in files] == ["gen.mp4", "gen.wav", "gen.png"]
    with av.open(str(files[0])) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 10 and decoded[0].shape == (SIZE, SIZE, 3)
    wave, rate = read_wav(files[1])
    assert rate == SAMPLE_RATE and len(wave) == 10 * SAMPLE_RATE // 50
    # the mp4 and its WAV read back as a prompt
    again = VideoGenerator(model, temperature=0.0, max_length=4).generate_from_prompt(files[0], 2)
    assert again.frames.shape == (1, 12, SIZE, SIZE, 3) and again.context_frames == 10
    with pytest.raises(ModelConfigurationError, match="unknown key"):
        gen.generate_with_physics({"scene": "drop", "colour": "red"}, 2)


def test_the_wav_keeps_the_onsets_of_the_log_mel_it_renders():
    """Griffin-Lim from the per-frame log-mel of true scene audio: the re-analysed features keep the onsets."""
    real = simulate_scene({"scene": "drop", "scene_seed": 1}, 40, SIZE, SIZE)
    mel = real["audio"]
    wave = log_mel_to_waveform(mel, SAMPLE_RATE, SAMPLE_RATE // 50)
    again = frame_log_mel(wave, SAMPLE_RATE // 50, SAMPLE_RATE)
    onsets = detect_onsets(mel)
    assert len(onsets) >= 2
    assert np.array_equal(detect_onsets(again), onsets)
    loud = mel.max(1) > -3
    assert np.corrcoef(mel[loud].ravel(), again[loud].ravel())[0, 1] > 0.85
