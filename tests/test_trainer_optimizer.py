"""The trainer's AdamW and clipping (worldrl.training.optimizer): the fused / multi-tensor forms compute what
torch's per-tensor loop computes, and the trainer uses them."""

from __future__ import annotations

import torch
from torch import nn

from worldrl.training.optimizer import adamw_implementation, build_adamw, clip_grad_norm

ADAM = {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1}


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def _step(net: nn.Module, opt: torch.optim.Optimizer, clip, x: torch.Tensor) -> torch.Tensor:
    opt.zero_grad(set_to_none=True)
    net(x).pow(2).sum().mul(50.0).backward()  # large gradients: the clipping acts
    norm = clip(list(net.parameters()))
    opt.step()
    return norm


def test_plain_cpu_parameters_get_the_fused_adamw():
    assert adamw_implementation(list(_net().parameters())) == {"fused": True}
    opt = build_adamw([{"params": list(_net().parameters())}], **ADAM)
    assert opt.defaults["fused"] is True


def test_fused_adamw_and_multi_tensor_clipping_match_the_per_tensor_loop():
    fast, slow = _net(), _net()
    fast_opt = build_adamw([{"params": list(fast.parameters())}], **ADAM)
    slow_opt = torch.optim.AdamW(slow.parameters(), **ADAM, foreach=False)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        norm_fast = _step(fast, fast_opt, lambda ps: clip_grad_norm(ps, 1.0), x)
        norm_slow = _step(slow, slow_opt, lambda ps: nn.utils.clip_grad_norm_(ps, 1.0, foreach=False), x)
        assert float(norm_fast) > 1.0  # clipping was active
        torch.testing.assert_close(norm_fast, norm_slow, rtol=1e-5, atol=1e-6)
    for a, b in zip(fast.parameters(), slow.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_clipping_skips_parameters_without_gradients():
    net = _net()
    net(torch.ones(1, 4)).sum().backward()
    net[0].bias.grad = None
    expected = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters() if p.grad is not None]))
    torch.testing.assert_close(clip_grad_norm(net.parameters(), 1e9), expected)
