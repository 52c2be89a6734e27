"""Multimodal architectures 3-7: predictive (P-frame) codes decoded over the frame before, the pixels beside the codes,
the audio mixture head."""

from __future__ import annotations

import copy
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldrl.errors import CheckpointError
from worldrl.models import load_pretrained, save_pretrained
from worldrl.models.multimodal import MultimodalConfig, TransformerWorldModel
from worldrl.models.multimodal.audio_mixture import (
    choose_components,
    component_means,
    greedy_audio,
    mixture_mean,
    mixture_nll,
    rollout_error,
)
from worldrl.models.multimodal.model import MultimodalWorldModel
from worldrl.models.multimodal.transformer_world_model import sample_audio
from worldrl.models.task_spec import TaskSpec

TINY = {k: v for k, v in MultimodalConfig.tiny().items() if k != "context_length"}
B = 2


@pytest.fixture(scope="module")
def net() -> TransformerWorldModel:
    torch.manual_seed(0)
    return TransformerWorldModel(**TINY, action_dim=2, skip_threshold=0.02).eval()  # the SKIP code on


def test_codes_say_how_each_frame_changed_since_the_one_before(net: TransformerWorldModel) -> None:
    g = torch.Generator().manual_seed(0)
    video = torch.rand(B, 3, 3, 32, 32, generator=g)
    before = torch.rand(B, 3, 32, 32, generator=g)
    with torch.no_grad():
        codes, q = net.encode_frames(video)
        own = [net.tokenizer.encode(video[:, t], video[:, max(t - 1, 0)]) for t in range(3)]
        continued, _ = net.encode_frames(video, reference=before)
        starts, _ = net.encode_frames(video, is_first=torch.tensor([[False, True, False]] * B))
        other_past, _ = net.encode_frames(torch.cat([torch.rand(B, 1, 3, 32, 32, generator=g), video[:, 1:]], 1))
    skip = net.skip_code
    assert skip == net.vocab_size - 1  # one past the FSQ codes
    for t in range(3):  # frame t relative to frame t-1 (random frames: every patch changed)
        assert torch.equal(q[:, t], own[t][1].flatten(1, 2))
        assert torch.equal(codes[:, t], own[t][0].flatten(1)) if t else (codes[:, 0] == skip).all()  # first: itself
    assert torch.equal(continued[:, 0], net.tokenizer.encode(video[:, 0], before)[0].flatten(1))
    assert torch.equal(continued[:, 1:], codes[:, 1:])
    assert (starts[:, 1] == skip).all() and torch.equal(starts[:, 2], codes[:, 2])  # an episode start: itself
    assert not torch.equal(other_past[:, 1], codes[:, 1])  # the same frame after another frame: other codes
    plain = TransformerWorldModel(**TINY, action_dim=2).eval()  # the default: no SKIP code
    with torch.no_grad():
        plain_codes, _ = plain.encode_frames(video)
        itself = plain.tokenizer.encode(video[:, 0], video[:, 0])[0].flatten(1)
    assert plain.skip_code is None and plain.vocab_size == 12 and torch.equal(plain_codes[:, 0], itself)


def test_unchanged_patches_get_the_skip_code_and_are_copied_exactly(net: TransformerWorldModel) -> None:
    g = torch.Generator().manual_seed(8)
    first = torch.rand(B, 3, 32, 32, generator=g)
    second = first.clone()
    second[:, :, :8, :8] = torch.rand(B, 3, 8, 8, generator=g)  # patch (0, 0) changes
    second[:, :, 8:16, :8] += 0.01  # patch (1, 0): below the threshold (mp4 noise), still skipped
    with torch.no_grad():
        codes, _ = net.encode_frames(torch.stack([first, second], 1))
        frame = net.decode_step(codes[:, 1], first)
        painted = net.tokenizer.decode(net.quantized(codes[:, 1]).reshape(B, 4, 4, -1), first)
    assert (codes[:, 1, 0] != net.skip_code).all() and (codes[:, 1, 1:] == net.skip_code).all()
    changed = torch.zeros(32, 32, dtype=torch.bool)
    changed[:8, :8] = True
    assert torch.equal(frame[..., ~changed], first[..., ~changed])  # skipped: the frame before, exactly
    assert torch.equal(frame[..., changed], painted[..., changed])
    assert torch.equal(net.quantized(codes[:, 1])[:, 1:], torch.zeros(B, 15, len(TINY["fsq_levels"])))


def test_decode_codes_paints_each_frame_over_the_one_before(net: TransformerWorldModel) -> None:
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(B, 3, 32, 32, generator=g)
    codes = torch.randint(0, net.vocab_size, (B, 3, net.tokens_per_frame), generator=g)
    with torch.no_grad():
        frames = net.decode_codes(codes, reference=ref)
        painted = net.tokenizer.decode(net.quantized(codes[:, 0]).reshape(B, 4, 4, -1), ref)
        first = net.copy_skipped(painted, ref, codes[:, 0])  # random codes: some are SKIP
        second = net.decode_step(codes[:, 1], first)
        alone = net.decode_codes(codes)
    assert torch.equal(frames[:, 0], first) and torch.equal(frames[:, 1], second)
    assert torch.equal(frames[:, 2], net.decode_step(codes[:, 2], second))
    assert torch.equal(alone[:, 0], net.tokenizer.decode(net.quantized(codes[:, 0]).reshape(B, 4, 4, -1)))


def test_tokenizer_refiner_starts_as_the_identity_and_learns() -> None:
    from worldrl.models.multimodal.tokenizer import FrameTokenizer

    torch.manual_seed(0)
    tok = FrameTokenizer(3, 8, [5, 5, 5], channels=8, refine_channels=8)
    frame, ref = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    _, q = tok.encode(frame, ref)
    first, last = tok.refine[0], tok.refine[-1]
    with torch.no_grad():  # the zero-initialised last conv: the refiner adds nothing before training
        x = tok.decoder(tok.decoder_in(q.permute(0, 3, 1, 2)) + tok.reference_in(ref * 2 - 1))
        alpha = torch.sigmoid(x[:, 3:])
        assert torch.allclose(tok.decode(q, ref), alpha * torch.sigmoid(x[:, :3]) + (1 - alpha) * ref)
    opt = torch.optim.Adam(tok.parameters(), 1e-2)
    before = first.weight.detach().clone()
    losses = []
    for _ in range(60):
        loss = (tok.decode(tok.encode(frame, ref)[1], ref) - frame).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0] and not torch.equal(first.weight, before) and last.weight.abs().sum() > 0


@pytest.mark.parametrize("chained", [False, True])
def test_reconstruction_decodes_each_frame_over_the_frame_before(chained: bool) -> None:
    torch.manual_seed(0)
    net = TransformerWorldModel(**TINY, action_dim=2, chained_reconstruction=chained, skip_threshold=0.02).eval()
    video = torch.rand(B, 4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    is_first = torch.tensor([[False, False, True, False]] * B)  # an episode starts at step 2
    with torch.no_grad():
        out = net(video, torch.zeros(B, 4, TINY["audio_dim"]), actions=torch.zeros(B, 4, 2), is_first=is_first)
        q = out["quantized"].reshape(B, 4, 4, 4, -1)
        want = [video[:, 0]]  # the first frame is relative to itself: every patch skipped, copied
        for t in range(1, 4):  # chained: over the reconstruction before; the episode start is skipped like the first
            before = want[t - 1] if chained else video[:, t - 1]
            want.append(video[:, 2] if t == 2 else net.tokenizer.decode(q[:, t], before))
    assert torch.allclose(out["reconstruction"]["video"], torch.stack(want, 1), atol=1e-6)


def test_the_model_reads_each_frames_pixels_beside_its_codes(net: TransformerWorldModel) -> None:
    g = torch.Generator().manual_seed(7)
    codes = torch.randint(0, net.vocab_size, (B, 3, net.tokens_per_frame), generator=g)
    frames, audio = torch.rand(B, 3, 3, 32, 32, generator=g), torch.randn(B, 3, TINY["audio_dim"], generator=g)
    with torch.no_grad():
        seen = net.next_token_logits(codes, frames, audio, torch.zeros(B, 3, 2)).logits
        other = net.next_token_logits(codes, frames.flip(-1), audio, torch.zeros(B, 3, 2)).logits
    assert not torch.allclose(seen, other)
    with pytest.raises(Exception, match="frames"):
        net.next_token_logits(codes, frames[:, :2], audio, torch.zeros(B, 3, 2))


def test_mixture_nll_and_mean_match_the_closed_form() -> None:
    g = torch.Generator().manual_seed(3)
    logits, means = torch.randn(5, 2, generator=g), torch.randn(5, 2, 4, generator=g)
    log_scales, x = torch.randn(5, 2, 4, generator=g) * 0.3, torch.randn(5, 4, generator=g)
    normal = torch.distributions.Independent(torch.distributions.Normal(means, log_scales.exp()), 1)
    mix = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(logits=logits), normal)
    assert torch.allclose(mixture_nll(logits, means, log_scales, x), -mix.log_prob(x) / 4, atol=1e-5)
    assert torch.allclose(mixture_mean(logits, means), mix.mean, atol=1e-6)
    one = mixture_nll(torch.zeros(5, 1), means[:, :1], torch.zeros(5, 1, 4), x)
    assert torch.allclose(one, ((x - means[:, 0]).pow(2) / 2).mean(-1) + 0.5 * math.log(2 * math.pi), atol=1e-5)


def test_greedy_audio_is_the_mixture_mean_or_the_mode_and_sampling_picks_a_component() -> None:
    logits = torch.tensor([[0.0, 3.0, 0.0], [2.0, 0.0, 0.0]])
    comps = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    mode = torch.stack([comps[0, 1], comps[1, 0]])
    assert torch.equal(sample_audio(logits, comps, greedy="mode"), mode)
    mean = sample_audio(logits, comps)  # the default rule: the lowest expected squared error
    assert torch.allclose(mean, (torch.softmax(logits, -1)[..., None] * comps).sum(1)) and not torch.allclose(
        mean, mode
    )
    with pytest.raises(ValueError, match="greedy audio rule must be one of"):
        greedy_audio(logits, comps, "median")
    with pytest.raises(ValueError, match="greedy_audio"):
        MultimodalConfig(**{**TINY, "greedy_audio": "median"})
    flat = torch.zeros(4000, 2)  # two equally likely components: a sample is each about half the time
    picks = choose_components(flat, torch.Generator().manual_seed(0))
    assert 0.45 < picks.float().mean() < 0.55
    assert torch.equal(component_means(comps, torch.tensor([2, 1])), torch.stack([comps[0, 2], comps[1, 1]]))


def test_training_loss_uses_the_mixture_likelihood(net: TransformerWorldModel) -> None:
    g = torch.Generator().manual_seed(4)
    video, audio = torch.rand(B, 3, 3, 32, 32, generator=g), torch.randn(B, 3, TINY["audio_dim"], generator=g)
    with torch.no_grad():
        nxt = net(video, audio, actions=torch.zeros(B, 3, 2))["next"]
    assert nxt["audio_components"].shape == (B, 3, TINY["audio_components"], TINY["audio_dim"])
    # the head reads the current spectrum (a louder sound may decay differently)...
    h, actions = torch.zeros(B, 1, 2, 32), torch.zeros(B, 1, 2)  # latent tokens and actions of one step
    shifted = net.predict_next(h, actions, audio=audio[:, :1] + 5)
    base = net.predict_next(h, actions, audio=audio[:, :1])
    assert not torch.allclose(shifted["audio_logits"], base["audio_logits"])
    # ...and its components are changes of it: a head that outputs no change keeps the current audio
    silent = copy.deepcopy(net)  # the fixture is shared by the module
    last = silent.audio_next[-1]
    with torch.no_grad():
        last.weight.zero_(), last.bias.zero_()
        still = silent.predict_next(h, actions, audio=audio[:, :1])
    current = audio[:, 0][:, None].expand(-1, TINY["audio_components"], -1)
    assert torch.allclose(still["audio_components"][:, -1], current, atol=1e-6)


def test_version_2_checkpoints_are_refused_with_one_line(tmp_path) -> None:
    spaces = {
        "observation.images.cam": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
        "observation.audio": gym.spaces.Box(-np.inf, np.inf, (TINY["audio_dim"],), np.float32),
    }
    task = TaskSpec.keyed(spaces, gym.spaces.Box(-1, 1, (2,), np.float32))
    save_pretrained(MultimodalWorldModel(MultimodalConfig(**MultimodalConfig.tiny()), task), tmp_path / "m")
    assert load_pretrained(tmp_path / "m").config.audio_components == TINY["audio_components"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "architecture_version": 2}))
    with pytest.raises(CheckpointError, match="architecture version 2") as err:
        load_pretrained(tmp_path / "m")
    assert "\n" not in str(err.value)


def test_the_audio_likelihood_does_not_train_the_shared_transformer() -> None:
    torch.manual_seed(5)
    model = TransformerWorldModel(**TINY, action_dim=2)
    video, audio = torch.rand(B, 3, 3, 32, 32), torch.randn(B, 3, TINY["audio_dim"])
    nxt = model(video, audio, actions=torch.zeros(B, 3, 2))["next"]
    (nxt["audio_logits"].sum() + nxt["audio_components"].sum() + nxt["audio_log_scales"].sum()).backward()
    assert all(p.grad is None for p in model.temporal.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.audio_next.parameters())


def test_keeping_a_patch_is_a_decision_of_the_code_distribution(net: TransformerWorldModel) -> None:
    g = torch.Generator().manual_seed(6)
    codes = torch.randint(0, net.vocab_size, (B, 3, net.tokens_per_frame), generator=g)
    audio = torch.randn(B, 3, TINY["audio_dim"], generator=g)
    frames = torch.rand(B, 3, 3, 32, 32, generator=g)
    with torch.no_grad():
        nxt = net.next_token_logits(codes, frames, audio, torch.zeros(B, 3, 2))
        net.copy_gate.bias.fill_(-30.0)  # no copy logit: the current code loses its head start
        without = net.next_token_logits(codes, frames, audio, torch.zeros(B, 3, 2))
        net.copy_gate.bias.fill_(4.0)
    assert torch.equal(nxt.logits.argmax(-1), codes[:, -1])  # untrained: every patch keeps its code (greedy)
    keep = nxt.logits.log_softmax(-1).gather(-1, codes[:, -1:].transpose(1, 2)).exp()
    # far above the uniform 1 / 13 of this tiny vocabulary (the copy prior e^4 against 12 other codes)
    assert (keep > 0.3).all() and keep.mean() > 0.6 and not torch.equal(without.logits.argmax(-1), codes[:, -1])


def test_audio_rollout_error_feeds_back_the_greedy_audio_and_stops_at_episode_ends() -> None:
    decay = torch.tensor(0.5, requires_grad=True)

    def mixture(feature: torch.Tensor, current: torch.Tensor) -> dict[str, torch.Tensor]:
        # component 0 (likely): the spectrum decays by ``decay``; component 1 (unlikely): it jumps by +10
        comps = torch.stack([decay * current, current + 10], -2)
        return {"audio_components": comps, "audio_logits": torch.tensor([2.0, 0.0]).expand(*current.shape[:-1], 2)}

    def error(*args, **kw) -> torch.Tensor:
        return rollout_error(*args, rule="mode", **kw).detach()

    start = torch.randn(3, 4)
    truth = torch.stack([start * 0.5**k for k in range(6)], 1)  # [B, T, F]: exactly the likely component's decay
    feature, pair = torch.zeros(3, 6, 1), torch.ones(3, 5, dtype=torch.bool)
    assert float(error(mixture, feature, truth, pair, horizon=5)) < 1e-12
    wrong = truth.clone()
    wrong[:, 3:] += 1.0  # the truth leaves the decay at step 3: steps 3..5 of the rollout err by 1 per bin
    assert float(error(mixture, feature, wrong, pair, horizon=5)) == pytest.approx(3 / 5)
    pair[:, 2:] = False  # the episode ends after step 2: later steps are not scored
    assert float(error(mixture, feature, wrong, pair, horizon=5)) < 1e-12
    assert float(error(mixture, feature, wrong, pair, horizon=1)) < 1e-12
    pair[:] = True
    (rollout_error(mixture, feature, wrong, pair, horizon=5, rule="mode")).backward()
    assert decay.grad is not None and float(decay.grad.abs()) > 0  # trained through the fed-back means
    # the "mean" rule feeds back the mixture's mean: p * decay * x + (1 - p) * (x + 10) after one step
    p = float(torch.softmax(torch.tensor([2.0, 0.0]), 0)[0])
    fed = p * 0.5 * start + (1 - p) * (start + 10)
    one = rollout_error(mixture, feature, truth, pair, horizon=1, rule="mean").detach()
    assert float(one) == pytest.approx(float((fed - truth[:, 1]).pow(2).mean()), rel=1e-5)
