"""Gradient combiners: the RGB math as pure functions, its autograd glue, and the plain sum."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from worldrl.training.gradient_balancing import (
    RGBCombiner,
    SumCombiner,
    build_combiner,
    rgb_combine,
    rotate,
    rotation_basis,
    unit,
)


def test_agreeing_gradients_give_their_plain_mean():
    grads = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.5, 1.0, 1.5]])
    combined, consensus, alpha = rgb_combine(grads)
    torch.testing.assert_close(combined, grads.mean(0))
    torch.testing.assert_close(consensus, unit(grads[0]))
    assert torch.all(alpha == 0)


def test_conflicting_pair_is_rotated_into_agreement():
    grads = torch.tensor([[1.0, 0.0, 0.0], [-0.8, 0.6, 0.0]]) * torch.tensor([[3.0], [1.0]])  # 143 degrees apart
    combined, consensus, alpha = rgb_combine(grads, alpha_steps=10)
    assert torch.all(grads @ combined >= 0)  # helps (or at worst ignores) both tasks
    assert torch.all(alpha > 0)
    w, _ = rotation_basis(unit(grads), consensus)
    r = rotate(unit(grads), w, alpha)
    assert float(r[0] @ r[1]) > float(unit(grads)[0] @ unit(grads)[1])  # less conflict than before
    assert math.isclose(float(combined.norm() / r.mean(0).norm()), float(grads.norm(dim=1).mean()), rel_tol=1e-5)


def test_no_inner_steps_is_the_mean_of_unit_gradients_at_mean_scale():
    grads = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    combined, _, _ = rgb_combine(grads, alpha_steps=0)
    torch.testing.assert_close(combined, unit(grads).mean(0) * grads.norm(dim=1).mean())


def test_consensus_is_an_ema_of_mean_directions():
    g1 = torch.tensor([[1.0, 0.0]])
    g2 = torch.tensor([[0.0, 1.0]])
    _, d1, _ = rgb_combine(g1, mu=0.9)
    _, d2, _ = rgb_combine(g2, d1, mu=0.9)
    torch.testing.assert_close(d2, unit(torch.tensor([0.9, 0.1])))


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 5),
    p=st.integers(2, 8),
    seed=st.integers(0, 10_000),
    lambd=st.floats(0.0, 3.0),
    steps=st.integers(0, 8),
    with_prior=st.booleans(),
)
def test_rotation_never_moves_a_gradient_away_from_the_consensus(k, p, seed, lambd, steps, with_prior):
    g = torch.Generator().manual_seed(seed)
    grads = torch.randn(k, p, generator=g) * torch.rand(k, 1, generator=g).add(0.1)
    prior = unit(torch.randn(p, generator=g)) if with_prior else None
    combined, consensus, alpha = rgb_combine(grads, prior, lambd=lambd, alpha_steps=steps, lr=0.5)
    gbar = unit(grads)
    w, theta = rotation_basis(gbar, consensus)
    assert torch.all(alpha >= 0) and torch.all(alpha <= theta.clamp(max=math.pi / 2) + 1e-6)
    r = rotate(gbar, w, alpha)
    assert torch.all(r @ consensus >= gbar @ consensus - 1e-5)
    plain = gbar.mean(0)
    assert float(combined @ consensus) >= float(plain @ consensus) * float(grads.norm(dim=1).mean()) - 1e-4
    assert torch.isfinite(combined).all()


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Linear(4, 8)
        self.head_a = nn.Linear(8, 1)
        self.head_b = nn.Linear(8, 1)

    def losses(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = torch.tanh(self.trunk(x))
        return [self.head_a(h).pow(2).mean(), (self.head_b(h) - 3.0).pow(2).mean()]


X = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))


def test_sum_combiner_equals_backward_of_the_sum():
    a, b = TwoHeads(), TwoHeads()
    SumCombiner().backward(a.losses(X), list(a.parameters()))
    sum(b.losses(X)).backward()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad)


def test_rgb_combiner_balances_shared_parameters_and_leaves_heads_alone():
    model = TwoHeads()
    params = list(model.parameters())
    losses = model.losses(X)
    per_task = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) for loss in losses]
    combiner = build_combiner("rgb", alpha_steps=3)
    combiner.backward(model.losses(X), params)

    trunk = [0, 1]  # trunk.weight, trunk.bias
    flat = torch.stack([torch.cat([g[j].reshape(-1) for j in trunk]) for g in per_task])
    expected, consensus, _ = rgb_combine(flat, alpha_steps=3)
    got = torch.cat([params[j].grad.reshape(-1) for j in trunk])
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(model.head_a.weight.grad, per_task[0][2])
    torch.testing.assert_close(model.head_b.bias.grad, per_task[1][5])
    torch.testing.assert_close(combiner.state_dict()["consensus"], consensus)


def test_rgb_combiner_accumulates_into_existing_grads():
    model = TwoHeads()
    combiner = RGBCombiner(alpha_steps=0)
    combiner.backward(model.losses(X), list(model.parameters()))
    once = model.trunk.weight.grad.clone()
    combiner.backward(model.losses(X), list(model.parameters()))
    torch.testing.assert_close(model.trunk.weight.grad, 2 * once)


def test_unknown_combiner_is_named():
    with pytest.raises(ValueError, match="pcgrad"):
        build_combiner("pcgrad")
