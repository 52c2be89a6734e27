"""``encoder.pretrained``: a transformers ``VJEPA2Model`` checkpoint (a tiny random one saved locally: no weights
can be downloaded here) as the frozen encoder, with features equal to transformers' own forward, referenced by
checkpoints instead of copied, and a clear error for a Hub id that is not available offline."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tensordict import TensorDict

pytest.importorskip("transformers")
from transformers import VJEPA2Config as HFConfig  # noqa: E402
from transformers import VJEPA2Model  # noqa: E402

from worldrl.errors import InputNotFoundError  # noqa: E402
from worldrl.models import CheckpointError, TaskSpec, build_model, load_pretrained  # noqa: E402
from worldrl.models.vjepa2 import VJEPA2Config  # noqa: E402
from worldrl.models.vjepa2.model import target_norm  # noqa: E402
from worldrl.models.vjepa2.preprocess import IMAGENET_MEAN, IMAGENET_STD, frames_to_input  # noqa: E402

CROP = 32


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf") / "tiny-vjepa2"
    torch.manual_seed(0)
    config = HFConfig(
        crop_size=CROP,
        patch_size=16,
        frames_per_clip=4,
        tubelet_size=2,
        hidden_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        pred_hidden_size=32,
        pred_num_attention_heads=4,
        pred_num_hidden_layers=2,
        num_pooler_layers=1,
    )
    VJEPA2Model(config).eval().save_pretrained(root)
    return root


def make_model(source: str, frame: int = 40):
    task = TaskSpec.keyed(
        {
            "observation.images.front": gym.spaces.Box(0, 255, (frame, frame + 8, 3), np.uint8),
            "observation.state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
        },
        gym.spaces.Box(-1, 1, (2,), np.float32),
    )
    return build_model("vjepa2", {**VJEPA2Config.tiny(), "encoder": {"pretrained": source}}, task)


def test_features_equal_transformers_forward(checkpoint: Path) -> None:
    model = make_model(str(checkpoint), frame=CROP)
    reference = VJEPA2Model.from_pretrained(checkpoint).eval()
    frames = torch.randint(0, 256, (2, 4, CROP, CROP + 8, 3), dtype=torch.uint8)
    x = frames_to_input(frames, CROP)
    # an exact crop_size square: the centre crop of the wider frame, scaled to [0, 1] and ImageNet-normalised
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    manual = (frames[..., :, 4 : 4 + CROP, :].float().div(255).permute(0, 1, 4, 2, 3) - mean) / std
    assert x.shape == (2, 4, 3, CROP, CROP) and torch.allclose(x, manual, atol=1e-6)
    with torch.no_grad():
        ours = model.encoder(x)
        theirs = reference(pixel_values_videos=x, skip_predictor=True).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert model.tokens_per_frame == (CROP // 16) ** 2 and model.dim == 64
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert {g["name"] for g in model.parameter_groups(1e-3)} == {"action_predictor"}


def test_frames_of_other_sizes_are_resized_and_cropped_in_torch(checkpoint: Path) -> None:
    model = make_model(str(checkpoint), frame=40)
    frame = torch.randint(0, 256, (1, 40, 48, 3), dtype=torch.uint8)
    obs = TensorDict({"observation.images.front": frame, "observation.state": torch.zeros(1, 3)}, batch_size=[1])
    with torch.no_grad():
        embedded = model.embed(obs)
        clip = frames_to_input(frame, CROP)[:, None].expand(-1, 2, -1, -1, -1)
        direct = target_norm(
            VJEPA2Model.from_pretrained(checkpoint)(pixel_values_videos=clip, skip_predictor=True).last_hidden_state
        )
    assert torch.allclose(embedded[:, :-3], direct.flatten(1), atol=1e-5)
    with pytest.raises(ValueError, match="crop_size"):
        model.encoder(torch.zeros(1, 2, 3, 24, 24))


def test_checkpoints_reference_the_pretrained_encoder(checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    checkpoint = Path(shutil.copytree(checkpoint, tmp_path / "encoder"))  # this test swaps its weights
    model = make_model(str(checkpoint))
    model.start_states = TensorDict(
        {
            "observation.images.front": torch.zeros(2, 40, 48, 3, dtype=torch.uint8),
            "observation.state": torch.zeros(2, 3),
        },
        batch_size=[2],
    )
    model.save_pretrained(str(tmp_path / "ckpt"))
    stored = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert not any(k.startswith("encoder.") for k in stored) and any(k.startswith("action_predictor.") for k in stored)
    reference = json.loads((tmp_path / "ckpt" / "external.json").read_text())["encoder"]
    assert reference["source"] == str(checkpoint) and len(reference["sha256"]) == 64
    loaded = load_pretrained(tmp_path / "ckpt")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # different weights under the same path are refused
    VJEPA2Model(VJEPA2Model.from_pretrained(checkpoint).config).save_pretrained(tmp_path / "swapped")
    for f in (tmp_path / "swapped").glob("*.safetensors"):
        f.replace(checkpoint / f.name)
    with pytest.raises(CheckpointError, match="not the weights"):
        load_pretrained(tmp_path / "ckpt")


def test_a_missing_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(InputNotFoundError, match="nobody/no-such-vjepa2.*could not be downloaded"):
        make_model("nobody/no-such-vjepa2")
    with pytest.raises(InputNotFoundError, match="no such directory"):
        make_model(str(tmp_path / "absent"))
