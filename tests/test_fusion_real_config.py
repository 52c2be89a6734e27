"""google/gemma-3-4b-it's sizes checked against the fusion code paths on the meta device (no weights, no memory)."""

from __future__ import annotations

import pytest
import torch

from worldrl.models.fusion.freezing import apply_freezing, trainable_summary
from worldrl.models.fusion.projection import WorldProjector, token_count
from worldrl.models.fusion.tiny import GEMMA3_4B, meta_gemma3_4b


@pytest.fixture(scope="module")
def gemma():
    return meta_gemma3_4b()


def test_config_facts(gemma):
    cfg = gemma.config
    assert cfg.text_config.hidden_size == 2560 and cfg.vision_config.image_size == 896
    patches = cfg.vision_config.image_size // cfg.vision_config.patch_size  # 64 x 64 patches ...
    pooled = int(cfg.mm_tokens_per_image**0.5)
    assert cfg.mm_tokens_per_image == 256 and patches % pooled == 0  # ... pooled to 16 x 16 = 256 image tokens
    total = sum(p.numel() for p in gemma.parameters())
    assert total == pytest.approx(4.30e9, rel=0.01)
    embedding = gemma.get_input_embeddings()  # scales rows by sqrt(2560); the world hook reuses its embed_scale
    assert type(embedding).__name__ == "Gemma3TextScaledWordEmbedding" and embedding.embed_scale.shape == ()


def test_world_branch_sizes_for_the_real_model(gemma):
    hidden = gemma.config.text_config.hidden_size
    with torch.device("meta"):  # Cosmos / Wan VAE: 16 channels, 8x spatial; world frames at 224 px -> 28 x 28
        projector = WorldProjector(16, (28, 28), hidden, "spatial", max_frames=16)
        rows = projector(torch.empty(1, 16, 1, 28, 28))
    assert token_count(16, 1, (28, 28), "spatial") == 784 and rows.shape == (1, 784 + 2, 2560)
    assert token_count(16, 1, (28, 28), "channel") == 16
    # the three added world tokens fit in the spare embedding rows (tokenizer: 262,145 entries incl. the image token)
    assert GEMMA3_4B["image_token_index"] + 1 + 3 <= gemma.get_input_embeddings().num_embeddings
    apply_freezing(gemma, None, [], {"freeze_gemma_vision": True, "freeze_gemma_language": True, "freeze_world": True})
    assert trainable_summary(gemma)[0] == 0
    share = sum(p.numel() for p in projector.parameters()) / (sum(p.numel() for p in gemma.parameters()))
    assert share < 0.002  # projection-only training: ~0.15% of Gemma 3 4B (6.6M parameters)
