"""The multimodal tokenizer's anchor (``tokenizer_anchor``): a chained decode may keep the last real frame's pixels."""

from __future__ import annotations

import pytest
import torch

from worldrl.models.multimodal import MultimodalConfig, TransformerWorldModel
from worldrl.models.multimodal.model import MultimodalWorldModel
from worldrl.models.multimodal.tokenizer import FrameTokenizer

TINY = {k: v for k, v in MultimodalConfig.tiny().items() if k != "context_length"}
B = 2


def _blocks(n: int, g: torch.Generator) -> torch.Tensor:
    """``[n, 3, 32, 32]`` frames of random 4x4-pixel colour blocks (detail an 8x8-patch code cannot carry)."""
    return torch.rand(n, 3, 8, 8, generator=g).repeat_interleave(4, -2).repeat_interleave(4, -1)


def test_without_an_anchor_the_reference_is_the_anchor() -> None:
    torch.manual_seed(0)
    tok = FrameTokenizer(3, 8, [5, 5, 5], channels=8, refine_channels=8, anchor=True)
    g = torch.Generator().manual_seed(1)
    frame, ref = _blocks(B, g), _blocks(B, g)
    _, q = tok.encode(frame, ref)
    with torch.no_grad():
        assert torch.equal(tok.decode(q, ref), tok.decode(q, ref, ref, torch.zeros(B)))
        assert not torch.equal(tok.decode(q, ref, frame, torch.full((B,), 3.0)), tok.decode(q, ref))


def test_the_anchor_decoder_recovers_the_real_pixels_a_drifted_reference_lost() -> None:
    """Nothing moved since the last real frame, but the decoded frame before it drifted (noise): a decoder that sees
    the anchor learns to keep the anchor's pixels; one that does not can only keep the drift or paint from its codes."""

    def trained(anchor: bool) -> float:
        torch.manual_seed(0)
        tok = FrameTokenizer(3, 8, [5, 5, 5], channels=8, refine_channels=8, anchor=anchor)
        opt = torch.optim.Adam(tok.parameters(), 3e-3)
        g = torch.Generator().manual_seed(2)

        def error(real: torch.Tensor, drift: torch.Tensor) -> torch.Tensor:
            _, q = tok.encode(real, real)  # the codes of the real pair: no change
            extra = (real, torch.full((len(real),), 4.0)) if anchor else ()
            return (tok.decode(q, (real + drift).clamp(0, 1), *extra) - real).pow(2).mean()

        for _ in range(150):
            real = _blocks(8, g)
            loss = error(real, 0.15 * torch.randn(real.shape, generator=g))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            real = _blocks(16, g)
            return float(error(real, 0.15 * torch.randn(real.shape, generator=g)))

    kept_drift = 0.15**2  # about the error of keeping the drifted reference
    with_anchor, without = trained(True), trained(False)
    assert with_anchor < 0.2 * kept_drift and with_anchor < 0.3 * without, (with_anchor, without)


def test_chained_reconstruction_reads_the_windows_first_frame_and_the_references_age() -> None:
    torch.manual_seed(0)
    net = TransformerWorldModel(**TINY, action_dim=2, tokenizer_anchor=True).eval()
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    decode = net.tokenizer.decode

    def spy(q, reference=None, anchor=None, age=None):
        calls.append((anchor, age))
        return decode(q, reference, anchor, age)

    net.tokenizer.decode = spy
    video = torch.rand(B, 5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    is_first = torch.tensor([[False, False, True, False, False], [False] * 5])  # sequence 0: an episode starts at 2
    with torch.no_grad():
        net(video, torch.zeros(B, 5, TINY["audio_dim"]), actions=torch.zeros(B, 5, 2), is_first=is_first)
    assert len(calls) == 5
    # frame t is decoded over frame t-1's reconstruction: t-1 steps after the window's first frame, the anchor
    assert [c[1].tolist() for c in calls] == [[0, 0], [0, 0], [0, 1], [0, 2], [1, 3]]
    for t, (anchor, _) in enumerate(calls):
        assert torch.equal(anchor[1], video[1, 0])
        assert torch.equal(anchor[0], video[0, 0] if t < 2 else video[0, 2])  # a new chain from the episode start


def test_rollouts_decode_over_the_last_real_frame_and_the_env_carries_it() -> None:
    torch.manual_seed(0)
    net = TransformerWorldModel(**TINY, action_dim=2, tokenizer_anchor=True).eval()
    g = torch.Generator().manual_seed(3)
    ref = torch.rand(B, 3, 32, 32, generator=g)
    codes = torch.randint(0, net.vocab_size, (B, 3, net.tokens_per_frame), generator=g)
    with torch.no_grad():
        frames = net.decode_codes(codes, reference=ref)
        frame = ref
        for t in range(3):
            frame = net.decode_step(codes[:, t], frame, ref, torch.full((B,), t))
            assert torch.equal(frames[:, t], frame)
        unanchored = net.decode_step(codes[:, 2], frames[:, 1])
    assert not torch.equal(frames[:, 2], unanchored)  # the anchor and its age change the decode

    from gymnasium import spaces

    from worldrl.models.task_spec import TaskSpec

    obs = spaces.Dict({"observation.images.front": spaces.Box(0, 255, (32, 32, 3), "uint8")})
    task = TaskSpec(obs, spaces.Box(-1, 1, (2,)), task_id="worldrl/Playground-v0")
    model = MultimodalWorldModel(MultimodalConfig(**MultimodalConfig.tiny(), tokenizer_anchor=True), task).eval()
    seen = {"observation.images.front": torch.randint(0, 256, (B, 2, 32, 32, 3), dtype=torch.uint8, generator=g)}
    with torch.no_grad():
        state = model.observe(seen, torch.zeros(B, 2, 2), torch.tensor([[True, False]] * B))[:, -1]
        assert state["anchor_age"].tolist() == [0, 0] and torch.equal(state["anchor"], state["frame"])
        first = model.imagine(state, torch.zeros(B, 2))
        second = model.imagine(first, torch.zeros(B, 2))
        want = model.net.decode_step(second["codes"][:, -1], first["frame"], state["frame"], torch.ones(B))
    assert second["anchor_age"].tolist() == [2, 2] and torch.equal(second["anchor"], state["frame"])
    assert torch.equal(second["frame"], want)


@pytest.mark.parametrize("anchor", [False, True])
def test_older_configs_load_without_the_anchor(anchor: bool) -> None:
    net = TransformerWorldModel(**TINY, tokenizer_anchor=anchor)
    assert net.tokenizer.anchor is anchor
    assert MultimodalConfig(**MultimodalConfig.tiny()).tokenizer_anchor is False
