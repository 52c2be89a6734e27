"""The vrnn learns through its latent: z is used after training, the Perceiver context is exact and causal, the
codebook restarts dead codes, and RGB balancing runs at a configurable interval."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import VRNN_TINY
from tensordict import TensorDict

from worldrl.models import TaskSpec, build_model
from worldrl.models.vrnn.codebook import VectorQuantizer, codebook_perplexity
from worldrl.models.vrnn.perceiver import CausalPerceiver, causal_windows, multihead_attention
from worldrl.training.gradient_balancing import RGBCombiner

TINY = {**VRNN_TINY, "num_slots": 2, "stick_kl_terms": 10}


def _oscillator_batch(batch: int, steps: int, generator: torch.Generator) -> TensorDict:
    """A damped, driven oscillator from random starts: o_0 cannot be known before it is seen."""
    x = torch.randn(batch, 2, generator=generator) * 2
    actions = torch.rand(batch, steps, 1, generator=generator) * 2 - 1
    obs = []
    for t in range(steps):
        obs.append(torch.cat([x, torch.sin(x[:, :1])], -1))
        x = torch.stack([x[:, 0] + 0.2 * x[:, 1], 0.95 * x[:, 1] - 0.2 * x[:, 0] + 0.3 * actions[:, t, 0]], -1)
    is_first = torch.zeros(batch, steps, dtype=torch.bool)
    is_first[:, 0] = True
    return TensorDict(
        obs=torch.stack(obs, 1),
        action=actions,
        reward=torch.zeros(batch, steps),
        terminated=torch.zeros(batch, steps, dtype=torch.bool),
        is_first=is_first,
        mask=torch.ones(batch, steps, dtype=torch.bool),
        batch_size=[batch, steps],
    )


def test_zeroing_z_clearly_worsens_the_reconstruction_of_a_trained_model():
    torch.manual_seed(0)
    task = TaskSpec(gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), gym.spaces.Box(-1, 1, (1,), np.float32))
    model = build_model("vrnn", TINY, task)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(120):
        loss, _ = model.loss(_oscillator_batch(16, 8, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    batch = _oscillator_batch(32, 8, gen)
    with torch.no_grad():
        losses, out = model.compute_total_loss(batch, stochastic=False)
        used = model.z_usage(out, rows=32)
        zeroed = out["feat"].clone()
        zeroed[..., model.config.hidden_dim :] = 0
        maps = out["attention_log_pred"].exp().flatten(0, 1)
        mse_zeroed = (
            (model.decoder(zeroed.flatten(0, 1), maps).reshape(out["targets"].shape) - out["targets"]).pow(2).mean()
        )
    mse = (out["reconstructions"] - out["targets"]).pow(2).mean()
    assert float(mse) < 0.1  # it learned to reconstruct (normalised units: 1.0 = predicting the mean)
    assert float(mse_zeroed) > 3 * float(mse)  # and needs z for it: no side channel carries the observation
    assert used == pytest.approx(float(mse_zeroed / mse), rel=1e-4)
    assert float(losses["kl_mixture"]) > 0.5  # the latent carries information


def test_perceiver_context_is_exact_window_attention_and_causal():
    torch.manual_seed(0)
    perceiver = CausalPerceiver(16, 3, 2, window=3)
    tokens = torch.randn(2, 6, 4, 16)
    is_first = torch.zeros(2, 6, dtype=torch.bool)
    is_first[1, 3] = True
    out = perceiver(tokens, is_first)
    # reference: materialise every window and attend over its W*N tokens at once
    B, T, N, D = tokens.shape
    kv, valid = causal_windows(perceiver.cross_kv(perceiver.norm_tokens(tokens)), is_first, 3)
    k, v = (kv + perceiver.age[:, None]).reshape(B * T, 3 * N, 2 * D).chunk(2, -1)
    pad = ~valid[..., None].expand(B, T, 3, N).reshape(B * T, 3 * N)
    q = perceiver.cross_q(perceiver.norm_latents(perceiver.latents)).unsqueeze(0)
    memory = perceiver.latents + perceiver.cross_out(multihead_attention(q, k, v, 2, pad))
    memory = memory + perceiver.ff(perceiver.norm_mlp(memory))
    k, v = perceiver.read_kv(perceiver.norm_read(memory)).chunk(2, -1)
    ref = perceiver.read_out(multihead_attention(perceiver.read_q(perceiver.query).unsqueeze(0), k, v, 2)).reshape(
        B, T, D
    )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    later = tokens.clone()
    later[:, 4:] = torch.randn(2, 2, 4, 16)  # a change in frames 4.. leaves contexts 0..3 alone
    torch.testing.assert_close(perceiver(later, is_first)[:, :4], out[:, :4])
    earlier = tokens.clone()
    earlier[1, :3] = torch.randn(3, 4, 16)  # frames before the episode start at t=3 do not reach its contexts
    torch.testing.assert_close(perceiver(earlier, is_first)[1, 3:], out[1, 3:])
    assert not torch.allclose(perceiver(earlier, is_first)[1, 2], out[1, 2])


def test_codebook_restarts_dead_codes_on_batch_tokens():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, dead_fraction=0.5, usage_decay=0.5)
    with torch.no_grad():
        vq.codebook.data[1:] += 100.0  # every token maps to code 0: 15 dead codes
    tokens = torch.randn(256, 4)
    _, codes, _ = vq(tokens)
    assert codebook_perplexity(codes, 16) == pytest.approx(1.0)
    for _ in range(5):
        vq(tokens)
    vq.eval()
    _, codes, _ = vq(tokens)
    assert float(codebook_perplexity(codes, 16)) > 4.0  # restarted codes sit on real tokens and are used


def test_rgb_interval_balances_every_kth_call_and_sums_in_between():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))

    def grads(combiner: RGBCombiner) -> list[torch.Tensor]:
        out = []
        for _ in range(4):
            w.grad = None
            losses = [(w * torch.tensor([1.0, 0.0])).sum() * 3.0, (w * torch.tensor([0.0, 1.0])).sum()]
            combiner.backward(losses, [w])
            out.append(w.grad.clone())
        return out

    every, third = grads(RGBCombiner(interval=1)), grads(RGBCombiner(interval=3))
    plain = torch.tensor([3.0, 1.0])  # the sum of the two conflicting-free but unequal gradients
    torch.testing.assert_close(third[0], every[0])  # the first call balances
    torch.testing.assert_close(third[1], plain) and torch.testing.assert_close(third[2], plain)
    assert not torch.allclose(every[1], plain)
    assert RGBCombiner(interval=3).state_dict()["calls"] == 0
    with pytest.raises(ValueError, match="interval"):
        RGBCombiner(interval=0)
