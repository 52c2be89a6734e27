"""The multimodal tokenizer's motion compensation (``tokenizer_flow``): a code can move what its patch holds."""

from __future__ import annotations

import math

import torch

from worldrl.models.multimodal import MultimodalConfig, TransformerWorldModel
from worldrl.models.multimodal.tokenizer import FLOW_MAX, FrameTokenizer, warp

TINY = {k: v for k, v in MultimodalConfig.tiny().items() if k != "context_length"}


def test_warp_is_the_identity_at_zero_flow_and_shifts_by_whole_pixels() -> None:
    frames = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(2, 2, 16, 16)
    assert torch.allclose(warp(frames, flow), frames, atol=1e-6)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # each pixel reads 2 to the right, 1 up
    assert torch.allclose(warp(frames, flow)[:, :, 1:, :-2], frames[:, :, :-1, 2:], atol=1e-5)


def test_a_flow_tokenizer_starts_as_the_plain_one() -> None:
    torch.manual_seed(0)
    plain = FrameTokenizer(3, 8, [5, 5, 5], channels=8, refine_channels=8)
    torch.manual_seed(0)
    moving = FrameTokenizer(3, 8, [5, 5, 5], channels=8, refine_channels=8, flow=True)
    frame, ref = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():  # motion channels start at zero; the refiner's last conv is zero: the same blend
        q = plain.encode(frame, ref)[1]
        out = moving.decoder(moving.decoder_in(q.permute(0, 3, 1, 2)) + moving.reference_in(ref * 2 - 1))
        assert out.shape[1] == 6 and out[:, 4:].abs().max() == 0
        alpha = torch.sigmoid(out[:, 3:4])
        assert torch.allclose(moving.decode(q, ref), alpha * torch.sigmoid(out[:, :3]) + (1 - alpha) * ref, atol=1e-6)


def test_decode_keeps_the_reference_moved_by_the_motion_channels() -> None:
    torch.manual_seed(0)
    tok = FrameTokenizer(3, 8, [5, 5, 5], channels=8, refine_channels=8, flow=True)
    last = tok.decoder[-1]
    with torch.no_grad():  # a decoder that keeps everything (keep logit -30) and moves it one pixel along x
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -30.0, math.atanh(1 / FLOW_MAX), 0.0]))
        ref = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
        frame = tok.decode(tok.encode(ref, ref)[1], ref)
    assert torch.allclose(frame[..., :-1], ref[..., 1:], atol=1e-5)  # each pixel now holds its right neighbour
    assert torch.allclose(frame[..., -1], ref[..., -1], atol=1e-5)  # edges repeated


def test_the_model_builds_its_tokenizer_with_motion_compensation_when_asked() -> None:
    assert TransformerWorldModel(**TINY, tokenizer_flow=True).tokenizer.flow
    assert not TransformerWorldModel(**TINY).tokenizer.flow
    assert MultimodalConfig(**MultimodalConfig.tiny()).tokenizer_flow is False
