"""Fusion family: Gemma 3 with world tokens (tiny offline Gemma 3 and Cosmos-Predict2 VAE built here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from worldrl.errors import CheckpointError, ModelConfigurationError
from worldrl.models.fusion import WorldGemma
from worldrl.models.fusion.tiny import build_tiny_gemma, build_tiny_wan_vae

torch.set_num_threads(1)
QUESTION = "Will the red ball touch the blue box?"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    gemma = build_tiny_gemma(root / "gemma", [QUESTION, "yes no"])
    vae = build_tiny_wan_vae(root / "vae")
    return str(gemma), str(vae)


def _inputs(model, side: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": QUESTION}]}]
    return model.processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True
    )


def _world(sources, **kwargs):
    return WorldGemma.from_pretrained(sources[0], world={"source": sources[1]}, verbose=False, **kwargs)


def _frames(t: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, t, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_world_off_is_plain_gemma3_bit_for_bit(sources):
    from transformers import Gemma3ForConditionalGeneration

    model = WorldGemma.from_pretrained(sources[0], enable_world=False, verbose=False)
    plain = Gemma3ForConditionalGeneration.from_pretrained(sources[0]).eval()
    inputs = _inputs(model)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, plain(**inputs).logits)
    ours = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    theirs = plain.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert torch.equal(ours, theirs)


def test_world_tokens_follow_bos_and_generation_keeps_the_prompt_layout(sources):
    model = _world(sources)
    inputs = _inputs(model)
    length = inputs["input_ids"].shape[1]
    with torch.no_grad():
        logits = model(**inputs, world_frames=_frames(5)).logits  # Wan: 5 frames -> 2 latent frames of 4x4
    assert logits.shape[1] == length + 2 * 16 + 2
    tokens = model.processor.tokenizer.convert_tokens_to_ids(["<start_of_world>", "<end_of_world>"])
    assert all(isinstance(t, int) and t > 0 for t in tokens)
    out = model.generate(**inputs, world_frames=_frames(5), max_new_tokens=4, do_sample=False)
    assert out.shape[1] == length + 4 and torch.equal(out[:, :length], inputs["input_ids"])
    with torch.no_grad():  # the world tokens are read: other frames give other logits after them
        other = model(**inputs, world_frames=_frames(5, seed=1)).logits
    assert not torch.allclose(logits[:, -1], other[:, -1])


def test_world_rows_are_scaled_like_text_rows(sources):
    model = _world(sources)
    embedding = model.gemma.get_input_embeddings()
    rows = model.world_rows(world_frames=_frames(1))
    ids = torch.tensor([[2] + [int(model.world_ids[0])] + [int(model.world_ids[1])] * 16 + [int(model.world_ids[2])]])
    with model._pending(rows):
        out = embedding(ids)
    assert embedding.embed_scale == pytest.approx(64**0.5)
    torch.testing.assert_close(out[0, 1:], rows[0] * embedding.embed_scale)


def test_channel_mode_has_one_token_per_channel_and_latent_frame(sources):
    model = _world(sources, projection_mode="channel")
    rows = model.world_rows(world_frames=_frames(5))
    assert rows.shape == (1, 2 * 16 + 2, 64)


def test_bad_inputs_fail_with_one_line(sources):
    model = _world(sources)
    inputs = _inputs(model)
    with pytest.raises(ModelConfigurationError, match=r"1 \+ k\*4"):  # 4 frames: the VAE would drop 3
        model(**inputs, world_frames=_frames(4))
    with pytest.raises(ModelConfigurationError, match="world latents must be"):
        model(**inputs, world_latents=torch.zeros(1, 8, 1, 4, 4))
    bad = dict(inputs, pixel_values=torch.zeros(1, 3, 40, 40))
    with pytest.raises(ModelConfigurationError, match=r"pixel_values must be \[N, 3, 32, 32\]"):
        model(**bad)
    with pytest.raises(ModelConfigurationError, match="world_steps=2 needs a world model that can predict"):
        _world(sources, world_steps=2)
    for err in (ModelConfigurationError,):
        assert issubclass(err, ValueError)


def test_projection_only_by_default_and_stages_unfreeze(sources, capsys):
    model = WorldGemma.from_pretrained(sources[0], world={"source": sources[1]})
    printed = capsys.readouterr().out
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projector.") for n in trainable)
    share = sum(p.numel() for p in model.projector.parameters()) / sum(p.numel() for p in model.parameters())
    assert f"({100 * share:.3f}%)" in printed and "trainable parameters:" in printed
    language = _world(sources, stage="language")
    names = {n for n, p in language.named_parameters() if p.requires_grad}
    assert any(n.startswith("gemma.model.language_model.") for n in names)
    assert not any(n.startswith(("gemma.model.vision_tower.", "world.")) for n in names)


def test_checkpoint_references_frozen_sources_and_round_trips(sources, tmp_path):
    model = _world(sources)
    with torch.no_grad():
        model.projector.net[0].weight.add_(0.5)  # "trained"
    model.save_pretrained(tmp_path / "ck")
    stored = load_file(str(tmp_path / "ck" / "fusion.safetensors"))
    assert all(k.startswith("projector.") or k == "world_token_rows" for k in stored)  # backbones not copied
    inputs = _inputs(model)
    again = WorldGemma.from_pretrained(str(tmp_path / "ck"), verbose=False)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, again(**inputs).logits)
    # the frozen Gemma source changed since: refused, naming it
    weights = tmp_path / "gemma"
    import shutil

    shutil.copytree(sources[0], weights)
    tensors = load_file(str(weights / "model.safetensors"))
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1
    save_file(tensors, str(weights / "model.safetensors"), metadata={"format": "pt"})
    import json

    config_path = tmp_path / "ck" / "fusion_config.json"
    meta = json.loads(config_path.read_text())
    meta["config"]["gemma"] = str(weights)
    config_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not those this checkpoint was trained with"):
        WorldGemma.from_pretrained(str(tmp_path / "ck"), verbose=False)
