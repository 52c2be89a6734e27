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
