"""A worldrl world model as the fusion world branch: observed states plus K imagined ones become world tokens."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tests._models import VRNN_TINY
from worldrl.errors import ModelConfigurationError
from worldrl.models import TaskSpec, build_model
from worldrl.models.fusion import WorldGemma
from worldrl.models.fusion.tiny import build_tiny_cosmos_vae, build_tiny_gemma

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion_worldrl")
    gemma = build_tiny_gemma(root / "gemma", ["Will the red ball touch the blue box?"])
    task = TaskSpec(gym.spaces.Box(0, 255, (16, 16, 3), np.uint8), gym.spaces.Box(-1, 1, (2,), np.float32))
    torch.manual_seed(0)
    build_model("vrnn", VRNN_TINY, task).save_pretrained(str(root / "vrnn"))
    build_tiny_cosmos_vae(root / "cosmos")
    return str(gemma), str(root / "vrnn"), str(root / "cosmos")


def _world(sources, steps: int):
    spec = {"kind": "worldrl", "source": sources[1]}
    return WorldGemma.from_pretrained(sources[0], world=spec, world_steps=steps, verbose=False)


def test_imagined_latents_are_fed_as_world_tokens(sources):
    frames = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    observed = _world(sources, 0)
    rolled = _world(sources, 2)
    assert observed.world.temporal_ratio == 1 and rolled.world.can_predict
    assert observed.world_rows(world_frames=frames).shape == (2, 3 + 2, 64)  # one token per observed frame
    rows = rolled.world_rows(world_frames=frames)
    assert rows.shape == (2, 3 + 2 + 2, 64)  # ... and one per imagined step
    latents = rolled.world.predict(frames, 2)
    assert torch.equal(latents[:, :, :3], rolled.world.encode(frames))  # the first three are the observed ones
    assert not torch.equal(latents[:, :, 3], latents[:, :, 2])


def test_generate_with_a_rollout(sources):
    model = _world(sources, 2)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Will the red ball touch?"}]}]
    inputs = model.processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True
    )
    out = model.generate(**inputs, world_frames=torch.zeros(1, 2, 3, 32, 32), max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3


def test_cosmos_tokenizer_as_world_branch(sources):
    spec = {"kind": "diffusers", "source": sources[2], "model_class": "AutoencoderKLCosmos"}
    model = WorldGemma.from_pretrained(sources[0], world=spec, verbose=False)
    assert model.world.temporal_ratio == 8
    assert model.world_rows(world_frames=torch.zeros(1, 9, 3, 32, 32)).shape == (1, 2 * 16 + 2, 64)
    with pytest.raises(ModelConfigurationError, match=r"1 \+ k\*8"):  # 5 frames: Cosmos would keep one
        model.world_rows(world_frames=torch.zeros(1, 5, 3, 32, 32))


def _vjepa2_source(root, cameras: int) -> str:
    from worldrl.models.vjepa2 import VJEPA2Config

    spaces = {f"observation.images.cam{i}": gym.spaces.Box(0, 255, (16, 16, 3), np.uint8) for i in range(cameras)}
    spaces["observation.state"] = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    task = TaskSpec.keyed(spaces, gym.spaces.Box(-1, 1, (2,), np.float32))
    torch.manual_seed(0)
    model = build_model("vjepa2", VJEPA2Config.tiny(), task)
    with torch.no_grad():  # its residual predictor starts as "repeat the last frame": give it dynamics to roll out
        torch.nn.init.normal_(model.action_predictor.out.weight, std=0.5)
    model.save_pretrained(str(root / f"vjepa2_{cameras}cam"))
    return str(root / f"vjepa2_{cameras}cam")


def test_keyed_vjepa2_as_world_branch(sources, tmp_path):
    """A camera + state model (V-JEPA 2 on the Playground): frames feed the camera, the state key gets zeros."""
    spec = {"kind": "worldrl", "source": _vjepa2_source(tmp_path, 1), "image_size": 32}
    model = WorldGemma.from_pretrained(sources[0], world=spec, world_steps=2, verbose=False)
    frames = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    assert model.world.latent_channels == 16 * 16 // 8**2 * model.world.model.dim + 4  # patch tokens + state
    assert model.world_rows(world_frames=frames).shape == (2, 3 + 2 + 2, 64)
    latents = model.world.predict(frames, 2)
    assert torch.equal(latents[:, :, :3], model.world.encode(frames))
    assert not torch.equal(latents[:, :, 0], latents[:, :, 1])  # the frames reach the encoder
    assert not torch.equal(latents[:, :, 4], latents[:, :, 3])  # imagined steps move


def test_world_model_with_two_cameras_is_refused(sources, tmp_path):
    spec = {"kind": "worldrl", "source": _vjepa2_source(tmp_path, 2)}
    with pytest.raises(ModelConfigurationError, match="one camera"):
        WorldGemma.from_pretrained(sources[0], world=spec, verbose=False)
