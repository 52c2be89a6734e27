"""Combining a model's loss groups into one gradient: a registry of combiners ("sum", "rgb").

RGB (rotation-based gradient balancing, used by the DPGMM-VRNN of AIME): each group's gradient on the
*shared* parameters is unit-normalised; an EMA consensus direction ``d`` is kept across steps; every
unit gradient ``g_i`` is rotated in the plane spanned by ``g_i`` and ``d`` by an angle ``alpha_i``,

    r_i(alpha_i) = cos(alpha_i) g_i + sin(alpha_i) w_i,   w_i = unit(d - (g_i . d) g_i),

where the angles minimise ``conflict(r) + lambd * proximity(r, g)`` by a few gradient steps
(``conflict`` = mean over pairs of ``(1 - r_i . r_j) / 2``, ``proximity`` = mean of ``|r_i - g_i|^2 / 4``,
both in [0, 1]). The applied gradient is the mean of the ``r_i``.

Two choices of this implementation, each stated so tests can hold it to them:

* ``alpha_i`` is clamped to ``[0, min(pi/2, theta_i)]`` where ``theta_i`` is the angle between ``g_i`` and
  ``d``: a gradient is rotated *towards* the consensus and never past it. Hence ``r_i . d >= g_i . d`` for
  every task, so the result is at least as aligned with the consensus as the plain mean of unit gradients,
  and a gradient already on the consensus is left alone.
* The mean of the rotated unit vectors is scaled by the mean of the task gradients' norms, so the step
  size, ``grad_clip`` and the fp16 GradScaler keep their meaning; when all tasks agree, RGB returns
  exactly the plain mean of the task gradients.

Parameters that only one group reaches (task heads) get that group's gradient unchanged.

RGB needs one backward pass per group; ``interval=k`` balances every k-th call (the first included) and takes
the plain sum of the groups, one backward pass, in between (the consensus direction is kept across calls).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from worldrl.errors import ConfigError

_EPS = 1e-12


# --------------------------------------------------------------------------- pure math
def unit(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True).clamp_min(_EPS)


def update_consensus(previous: torch.Tensor | None, unit_grads: torch.Tensor, mu: float) -> torch.Tensor:
    """EMA of the (normalised) mean task direction, renormalised; the first call takes the mean itself."""
    mean_dir = unit(unit_grads.mean(dim=0))
    if previous is None or previous.shape != mean_dir.shape:
        return mean_dir
    return unit(mu * previous + (1.0 - mu) * mean_dir)


def rotation_basis(unit_grads: torch.Tensor, consensus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w_i`` (unit, orthogonal to ``g_i``, in the plane of ``g_i`` and ``d``) and ``theta_i`` = angle(g_i, d)."""
    cos = (unit_grads @ consensus).clamp(-1.0, 1.0)
    w = unit(consensus.unsqueeze(0) - cos.unsqueeze(1) * unit_grads)
    return w, torch.arccos(cos)


def rotate(unit_grads: torch.Tensor, w: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    a = alpha.unsqueeze(1)
    return torch.cos(a) * unit_grads + torch.sin(a) * w


def rotation_objective(rotated: torch.Tensor, unit_grads: torch.Tensor, lambd: float) -> torch.Tensor:
    """Conflict between the rotated directions plus ``lambd`` times their distance from the originals."""
    k = rotated.shape[0]
    proximity = (rotated - unit_grads).pow(2).sum() / (4.0 * k)
    if k < 2:
        return lambd * proximity
    total = rotated.sum(dim=0)
    pair_dots = 0.5 * (total @ total - (rotated * rotated).sum())  # sum_{i<j} r_i . r_j in O(K P)
    pairs = k * (k - 1) / 2
    conflict = (pairs - pair_dots) / (2.0 * pairs)
    return conflict + lambd * proximity


def solve_angles(
    unit_grads: torch.Tensor,
    w: torch.Tensor,
    theta: torch.Tensor,
    alpha_init: torch.Tensor,
    *,
    lambd: float,
    steps: int,
    lr: float,
) -> torch.Tensor:
    """A few projected gradient steps on the angles, each kept in ``[0, min(pi/2, theta_i)]``."""
    upper = theta.clamp(max=math.pi / 2)
    alpha = torch.minimum(alpha_init.clamp_min(0.0), upper).detach()
    for _ in range(steps):
        with torch.enable_grad():
            alpha_var = alpha.clone().requires_grad_(True)
            objective = rotation_objective(rotate(unit_grads, w, alpha_var), unit_grads, lambd)
            (grad,) = torch.autograd.grad(objective, alpha_var)
        alpha = torch.minimum((alpha - lr * grad).clamp_min(0.0), upper).detach()
    return alpha


def rgb_combine(
    grads: torch.Tensor,
    consensus: torch.Tensor | None = None,
    alpha_init: torch.Tensor | None = None,
    *,
    mu: float = 0.9,
    lambd: float = 1.0,
    alpha_steps: int = 3,
    lr: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Balance task gradients ``grads [K, P]``; returns ``(combined [P], new_consensus [P], angles [K])``."""
    if grads.ndim != 2 or grads.shape[0] < 1:
        raise ValueError(f"grads must have shape [K >= 1, P], got {tuple(grads.shape)}")
    grads = grads.float()
    norms = grads.norm(dim=1)
    unit_grads = unit(grads)
    new_consensus = update_consensus(consensus, unit_grads, mu)
    w, theta = rotation_basis(unit_grads, new_consensus)
    if alpha_init is None or alpha_init.shape != theta.shape:
        alpha_init = torch.zeros_like(theta)
    alpha = solve_angles(unit_grads, w, theta, alpha_init.to(theta), lambd=lambd, steps=alpha_steps, lr=lr)
    combined = rotate(unit_grads, w, alpha).mean(dim=0) * norms.mean()
    return combined, new_consensus, alpha


# --------------------------------------------------------------------------- autograd glue
class SumCombiner:
    """Plain sum of the (already weighted) loss groups, one backward pass."""

    def __init__(self, **_: float) -> None:
        pass

    def backward(self, losses: list[torch.Tensor], params: list[torch.nn.Parameter]) -> None:
        torch.stack(losses).sum().backward()

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class RGBCombiner:
    """RGB over the parameters that two or more loss groups reach; adds the result into ``.grad``."""

    def __init__(
        self, mu: float = 0.9, lambd: float = 1.0, alpha_steps: int = 3, inner_lr: float = 0.2, interval: int = 1
    ) -> None:
        if int(interval) < 1:
            raise ValueError(f"RGB interval must be >= 1, got {interval}")
        self.mu, self.lambd, self.alpha_steps, self.inner_lr = mu, lambd, alpha_steps, inner_lr
        self.interval = int(interval)
        self.calls = 0
        self.consensus: torch.Tensor | None = None
        self.alpha: torch.Tensor | None = None

    def backward(self, losses: list[torch.Tensor], params: list[torch.nn.Parameter]) -> None:
        self.calls += 1
        if (self.calls - 1) % self.interval:
            torch.stack(losses).sum().backward()
            return
        params = [p for p in params if p.requires_grad]
        per_task = [
            torch.autograd.grad(loss, params, retain_graph=i < len(losses) - 1, allow_unused=True)
            for i, loss in enumerate(losses)
        ]
        reached = [sum(g[j] is not None for g in per_task) for j in range(len(params))]
        shared = [j for j, n in enumerate(reached) if n >= 2]
        for j, n in enumerate(reached):
            if n == 1:  # a head of one task: nothing to balance
                _add_grad(params[j], next(g[j] for g in per_task if g[j] is not None))
        if not shared:
            return
        flat = torch.stack([_flatten([_or_zeros(g[j], params[j]) for j in shared]) for g in per_task])
        combined, self.consensus, self.alpha = rgb_combine(
            flat,
            self.consensus,
            self.alpha,
            mu=self.mu,
            lambd=self.lambd,
            alpha_steps=self.alpha_steps,
            lr=self.inner_lr,
        )
        for j, piece in zip(shared, _unflatten(combined, [params[j] for j in shared])):
            _add_grad(params[j], piece)

    def state_dict(self) -> dict:
        return {"consensus": self.consensus, "alpha": self.alpha, "calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.consensus, self.alpha = state.get("consensus"), state.get("alpha")
        self.calls = int(state.get("calls", 0))


def _or_zeros(grad: torch.Tensor | None, param: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(param) if grad is None else grad


def _flatten(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1).float() for t in tensors])


def _unflatten(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    pieces, start = [], 0
    for p in like:
        pieces.append(flat[start : start + p.numel()].view_as(p).to(p.dtype))
        start += p.numel()
    return pieces


def _add_grad(param: torch.Tensor, grad: torch.Tensor) -> None:
    param.grad = grad.detach().clone() if param.grad is None else param.grad + grad.detach()


COMBINERS: dict[str, Callable[..., SumCombiner | RGBCombiner]] = {"sum": SumCombiner, "rgb": RGBCombiner}


def build_combiner(name: str, **options: float) -> SumCombiner | RGBCombiner:
    if name not in COMBINERS:
        raise ConfigError(f"unknown gradient_balancing {name!r}; known: {sorted(COMBINERS)}")
    return COMBINERS[name](**options)
