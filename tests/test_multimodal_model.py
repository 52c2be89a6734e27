"""The multimodal transformer (issue 15): its components, FSQ codes, the forward dict, causality, loss terms, errors."""

from __future__ import annotations

import pytest
import torch

from worldrl.errors import ModelConfigurationError
from worldrl.models.multimodal import (
    CrossModalAttention,
    MultiheadAttention,
    MultimodalConfig,
    MultimodalLoss,
    SpatioTemporalEncoding,
    TransformerWorldModel,
    fsq,
    sample_codes,
)
from worldrl.models.multimodal.physics import STATE_LAYOUTS, velocity_consistency

TINY = {k: v for k, v in MultimodalConfig.tiny().items() if k != "context_length"}
B, T = 2, 4


@pytest.fixture(scope="module")
def net() -> TransformerWorldModel:
    torch.manual_seed(0)
    return TransformerWorldModel(**TINY, action_dim=2, state_dim=6).eval()


def _inputs(steps: int = T) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(B, steps, 3, 32, 32, generator=g), torch.randn(B, steps, TINY["audio_dim"], generator=g)


def test_fsq_codes_cover_the_vocabulary_and_round_trip() -> None:
    levels = [8, 5, 3]
    book = fsq.codebook(levels)
    assert book.shape == (120, 3) and book.abs().max() <= 1
    assert torch.equal(fsq.codes_from_quantized(book, levels), torch.arange(120))
    q = fsq.quantize(torch.randn(500, 3) * 4, levels)
    codes = fsq.codes_from_quantized(q, levels)
    assert torch.allclose(fsq.quantized_from_codes(codes, levels), q)
    assert len(codes.unique()) > 60  # wide inputs reach most codes (no dead codes by construction)


def test_forward_returns_the_documented_dict(net: TransformerWorldModel) -> None:
    video, audio = _inputs()
    actions, state = torch.randn(B, T, 2), torch.randn(B, T, 6)
    with torch.no_grad():
        out = net(video, audio, future_steps=3, actions=actions, state=state, return_intermediates=True)
    n, v = net.tokens_per_frame, net.vocab_size
    assert out["reconstruction"]["video"].shape == video.shape
    assert out["reconstruction"]["audio"].shape == audio.shape
    assert out["future_video"].shape == (B, 3, 3, 32, 32) and out["future_audio"].shape == (B, 3, TINY["audio_dim"])
    assert out["physics"]["next_state"].shape == (B, T, 6)
    assert out["next"]["logits"].shape == (B, T, n, v) and out["codes"].max() < v
    assert out["intermediates"]["h"].shape == (B, T, TINY["num_latent_tokens"], TINY["embed_dim"])
    assert net.encode_vision(video).shape == (B, T * n, TINY["embed_dim"])
    assert net.encode_audio(audio).shape == (B, T, TINY["embed_dim"])
    assert "future_video" not in net(video, audio) and "intermediates" not in net(video, audio)


def test_no_physics_without_the_flag() -> None:
    model = TransformerWorldModel(**{**TINY, "use_physics_loss": False}, state_dim=6)
    video, audio = _inputs()
    assert "physics" not in model(video, audio, state=torch.zeros(B, T, 6))


def test_the_prediction_at_t_ignores_later_frames(net: TransformerWorldModel) -> None:
    video, audio = _inputs()
    changed = video.clone()
    changed[:, -1] = 1 - changed[:, -1]
    with torch.no_grad():
        a = net(video, audio)["next"]["logits"]
        b = net(changed, audio)["next"]["logits"]
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-5)
    assert not torch.allclose(a[:, -1], b[:, -1], atol=1e-3)


def test_next_token_logits_matches_the_forward_pass(net: TransformerWorldModel) -> None:
    video, audio = _inputs()
    actions = torch.randn(B, T, 2)
    with torch.no_grad():
        out = net(video, audio, actions=actions)
        nxt = net.next_token_logits(out["codes"], video, audio, actions)
    assert torch.allclose(nxt.logits, out["next"]["logits"][:, -1], atol=1e-4)
    assert nxt.state is not None and nxt.state.shape == (B, 6)
    frames = net.decode_codes(sample_codes(nxt.logits)[:, None])
    assert frames.shape == (B, 1, 3, 32, 32) and 0 <= frames.min() and frames.max() <= 1


def test_sampling_is_greedy_without_a_generator_and_seeded_with_one() -> None:
    logits = torch.randn(3, 5, 7)
    assert torch.equal(sample_codes(logits), logits.argmax(-1))
    one = sample_codes(logits, torch.Generator().manual_seed(0))
    assert torch.equal(one, sample_codes(logits, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize(
    ("video", "audio", "match"),
    [
        ((B, 3, 32, 32), (B, T, 8), "rank 5"),
        ((B, T, 3, 24, 24), (B, T, 8), "img_size=32"),
        ((B, T, 3, 32, 32), (B, T - 1, 8), "one audio feature vector per video frame"),
        ((B, T, 3, 32, 32), (B, T, 5), r"audio_dim"),
    ],
)
def test_bad_inputs_are_one_line_errors(net: TransformerWorldModel, video, audio, match: str) -> None:
    with pytest.raises(ModelConfigurationError, match=match) as err:
        net(torch.rand(video), torch.rand(audio))
    assert "\n" not in str(err.value)


def test_bad_constructor_arguments_name_the_field() -> None:
    with pytest.raises(ModelConfigurationError, match="patch_size"):
        TransformerWorldModel(img_size=60, patch_size=16)
    with pytest.raises(ModelConfigurationError, match="num_heads"):
        TransformerWorldModel(embed_dim=30, num_heads=4)


def test_attention_components() -> None:
    attn = MultiheadAttention(16, 4, kdim=6, vdim=10)
    q, k, v = torch.randn(2, 3, 16), torch.randn(2, 5, 6), torch.randn(2, 5, 10)
    assert attn(q, k, v).shape == (2, 3, 16)
    x, ctx = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    sharp, flat = CrossModalAttention(16, 4, temperature=0.5), CrossModalAttention(16, 4, temperature=1e6)
    flat.load_state_dict(sharp.state_dict())
    # at a huge temperature the attention is uniform: every query reads the mean of the values
    out = flat(x, ctx) - x
    kv = flat.norm_kv(ctx)
    mean_v = flat.attn.v_proj(kv).mean(1, keepdim=True)
    assert torch.allclose(out, flat.attn.out_proj(mean_v).expand_as(out), atol=1e-4)
    assert not torch.allclose(sharp(x, ctx), flat(x, ctx))
    with pytest.raises(ModelConfigurationError, match="temperature"):
        CrossModalAttention(16, 4, temperature=0)


def test_spatiotemporal_encoding_learnable_or_fixed() -> None:
    fixed = SpatioTemporalEncoding(8, max_seq_len=10, max_spatial_size=4, learnable=False)
    learned = SpatioTemporalEncoding(8, max_seq_len=10, max_spatial_size=4, learnable=True)
    assert not list(fixed.parameters()) and len(list(learned.parameters())) == 3
    x = torch.zeros(1, 3, 4, 8)
    y = fixed(x, grid=(2, 2))
    assert not torch.allclose(y[:, 0], y[:, 1]) and not torch.allclose(y[:, :, 0], y[:, :, 3])
    with pytest.raises(ModelConfigurationError, match="max_seq_len"):
        fixed(x, timesteps=torch.tensor([[0, 5, 10]]))
    with pytest.raises(ModelConfigurationError, match="max_spatial_size"):
        fixed(torch.zeros(1, 1, 25, 8), grid=(5, 5))


def test_velocity_consistency_is_zero_for_consistent_states() -> None:
    layout = STATE_LAYOUTS["worldrl/Playground-v0"]
    t = torch.arange(6, dtype=torch.float32) * layout.dt
    states = torch.zeros(1, 6, layout.objects, layout.per_object)
    states[..., 0] = (2.0 * t)[None, :, None]  # x = 2 t
    states[..., 7] = 2.0  # vx = 2
    flat = states.reshape(1, 6, -1)
    assert float(velocity_consistency(flat, layout)) < 1e-8
    flat_bad = flat.clone()
    flat_bad.view(1, 6, layout.objects, layout.per_object)[..., 7] = 0.0
    assert float(velocity_consistency(flat_bad, layout)) == pytest.approx(
        4.0 / 3, rel=1e-4
    )  # (2 m/s)^2 on x, averaged over xyz


def _loss_inputs(recon: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> tuple[dict, dict]:
    """MultimodalLoss outputs/targets for 2 sequences of 3 steps: the given frames, everything else zero."""
    outputs = {
        "recon_video": recon,
        "recon_audio": torch.zeros(2, 3, 4),
        "logits": torch.zeros(2, 2, 5, 7),
        "next_audio": torch.zeros(2, 2, 4),
    }
    targets = {
        "video": video,
        "audio": torch.zeros(2, 3, 4),
        "codes": torch.zeros(2, 2, 5, dtype=torch.long),
        "next_audio": torch.zeros(2, 2, 4),
        "mask": mask,
        "pair_mask": mask[:, 1:],
    }
    return outputs, targets


def test_loss_terms_are_logged_and_weighted() -> None:
    video = torch.rand(2, 3, 3, 8, 8)
    mask = torch.ones(2, 3, dtype=torch.bool)
    outputs, targets = _loss_inputs(video.clone(), video, mask)
    outputs["next_state"], targets["next_state"] = torch.ones(2, 2, 3), torch.zeros(2, 2, 3)
    targets["next_audio"] = torch.ones(2, 2, 4)
    net = torch.nn.Conv2d(3, 2, 3)
    loss = MultimodalLoss(physics_weight=0.5, spectral_weight=0.0, feature_net=net)
    total, terms = loss(outputs, targets)
    assert {"reconstruction", "perceptual", "temporal", "physics", "spectral", "prediction", "audio"} <= set(terms)
    assert float(terms["reconstruction"]) == 0 and float(terms["perceptual"]) == 0 and float(terms["temporal"]) == 0
    assert float(terms["prediction"]) == pytest.approx(torch.log(torch.tensor(7.0)).item(), rel=1e-5)
    assert float(terms["spectral"]) == pytest.approx(1.0) and float(terms["physics"]) == pytest.approx(1.0)
    assert float(total) == pytest.approx(float(terms["prediction"]) + 1.0 + 0.5, rel=1e-5)
    assert not any(p.requires_grad for p in net.parameters())  # the feature network stays frozen
    assert "feature_net" not in dict(loss.named_modules())  # and is never part of saved weights
    outputs["recon_video"] = video * 0.5
    assert float(loss.terms(outputs, targets)["perceptual"]) > 0


def test_ssim_term_scores_lost_structure_and_is_off_by_default() -> None:
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 3, 3, 16, 16, generator=g)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    blurred = video.mean((-2, -1), keepdim=True).expand_as(video).clone()  # same brightness, no structure
    outputs, targets = _loss_inputs(blurred, video, mask)
    off_total, off = MultimodalLoss()(outputs, targets)
    assert float(off["ssim"]) == 0
    total, terms = MultimodalLoss(ssim_weight=0.5)(outputs, targets)
    assert float(terms["ssim"]) > 0.5  # a flat frame keeps almost none of a noise image's structure
    assert float(total) == pytest.approx(float(off_total) + 0.5 * float(terms["ssim"]), rel=1e-5)
    outputs["recon_video"] = video.clone().requires_grad_(True)
    exact = MultimodalLoss(ssim_weight=0.5).terms(outputs, targets)["ssim"]
    assert float(exact) == pytest.approx(0.0, abs=1e-5)
    outputs["recon_video"] = (video * 0.9).requires_grad_(True)
    MultimodalLoss(ssim_weight=0.5).terms(outputs, targets)["ssim"].backward()
    assert outputs["recon_video"].grad.abs().sum() > 0  # it trains the decoder
