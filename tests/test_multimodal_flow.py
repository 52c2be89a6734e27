"""The multimodal tokenizer's motion compensation (``tokenizer_flow``): a code can move what its patch holds."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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


def _shifted(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(frame, the frame before): smooth random 32x32 images, the whole view moved by -1..1 pixels on each axis."""
    base = F.interpolate(torch.rand(n, 3, 10, 10, generator=g), size=(40, 40), mode="bilinear", align_corners=False)
    d = torch.randint(-1, 2, (n, 2), generator=g).tolist()
    after = torch.stack([base[i, :, 4 + dy : 36 + dy, 4 + dx : 36 + dx] for i, (dx, dy) in enumerate(d)])
    return after, base[:, :, 4:36, 4:36]


def test_motion_compensation_learns_a_moved_view_that_the_plain_decoder_only_copies() -> None:
    def trained(flow: bool) -> float:
        torch.manual_seed(0)
        tok = FrameTokenizer(3, 8, [8, 5, 5, 5], channels=8, refine_channels=8, flow=flow)
        opt = torch.optim.Adam(tok.parameters(), 3e-3)
        g = torch.Generator().manual_seed(1)
        for _ in range(800):
            frame, before = _shifted(8, g)
            loss = (tok.decode(tok.encode(frame, before)[1], before) - frame).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        frame, before = _shifted(32, torch.Generator().manual_seed(2))
        with torch.no_grad():
            return float((tok.decode(tok.encode(frame, before)[1], before) - frame).pow(2).mean())

    frame, before = _shifted(32, torch.Generator().manual_seed(2))
    copy = float((before - frame).pow(2).mean())
    moved, painted = trained(True), trained(False)
    assert moved < 0.97 * copy and moved < 0.97 * painted, (moved, painted, copy)


def test_the_model_builds_its_tokenizer_with_motion_compensation_when_asked() -> None:
    assert TransformerWorldModel(**TINY, tokenizer_flow=True).tokenizer.flow
    assert not TransformerWorldModel(**TINY).tokenizer.flow
    assert MultimodalConfig(**MultimodalConfig.tiny()).tokenizer_flow is False
