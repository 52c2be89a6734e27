"""V-JEPA 2-AC's action-conditioned predictor: a block-causal transformer over frames whose tokens are
``[action, state, patch tokens]`` (each condition token from its own linear layer) and which predicts, from frame
t's tokens and everything before, frame t+1's patch tokens (and its proprioceptive state).

With ``residual`` (worldrl's default) the output is the change from frame t's latents, from a zero-initialised
output layer, so an untrained predictor repeats the last frame; without it, V-JEPA 2-AC's absolute prediction.

Block-causal: a token of frame t attends to every token of frames <= t, none of later frames; so changing the
action of the last frame changes only the last frame's prediction. Positions: 3D RoPE, patch tokens at
(t, row, column), condition tokens at (t, 0, 0) (the paper's predictor also rotates them with their frame's time).
"""

from __future__ import annotations

import torch
from torch import nn

from worldrl.models.vjepa2.rope import grid_positions
from worldrl.models.vjepa2.transformer import Transformer


def block_causal_mask(frames: int, tokens_per_frame: int, device: torch.device | None = None) -> torch.Tensor:
    """``[F*n, F*n]`` boolean, True where query token i may attend to key j: frame(j) <= frame(i)."""
    frame = torch.arange(frames, device=device).repeat_interleave(tokens_per_frame)
    return frame[None, :] <= frame[:, None]


class ActionConditionedPredictor(nn.Module):
    def __init__(
        self,
        encoder_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        action_dim: int,
        state_dim: int,
        grid_hw: int,
        num_cameras: int = 1,
        mlp_ratio: float = 4.0,
        checkpointing: bool = False,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.grid_hw, self.num_cameras, self.state_dim = grid_hw, num_cameras, state_dim
        self.embed = nn.Linear(encoder_dim, dim)
        self.action_embed = nn.Linear(action_dim, dim)
        self.state_embed = nn.Linear(state_dim, dim) if state_dim else None
        self.camera_embed = nn.Parameter(torch.zeros(num_cameras, 1, dim)) if num_cameras > 1 else None
        self.transformer = Transformer(dim, depth, num_heads, mlp_ratio, checkpointing)
        self.out = nn.Linear(dim, encoder_dim)
        self.state_out = nn.Linear(dim, state_dim) if state_dim else None
        if residual:  # an untrained residual predictor repeats the last frame
            for layer in (self.out, self.state_out):
                if layer is not None:
                    nn.init.zeros_(layer.weight)
                    nn.init.zeros_(layer.bias)

    @property
    def num_conditions(self) -> int:
        return 2 if self.state_dim else 1

    def forward(
        self,
        tokens: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``tokens [B, F, N, De]`` (N = cameras x h x w), ``actions [B, F, A]``, ``states [B, F, S]`` ->
        predicted next tokens ``[B, F, N, De]`` and next states ``[B, F, S]`` (None without a state token).
        ``valid [B, F]`` marks real history frames: no token attends to an invalid frame but its own."""
        b, f, n, _ = tokens.shape
        x = self.embed(tokens)
        if self.camera_embed is not None:
            x = (x.view(b, f, self.num_cameras, -1, x.shape[-1]) + self.camera_embed).view(b, f, n, -1)
        conds = [self.action_embed(actions)[:, :, None]]
        if self.state_embed is not None:
            conds.append(self.state_embed(states)[:, :, None])
        c = len(conds)
        x = torch.cat([*conds, x], dim=2).reshape(b, f * (c + n), -1)
        spatial = grid_positions(1, self.grid_hw, self.grid_hw, device=x.device)[:, 1:].repeat(self.num_cameras, 1)
        per_frame = torch.cat([torch.zeros(c, 2, device=x.device, dtype=spatial.dtype), spatial])  # [c+n, 2]
        time = torch.arange(f, device=x.device).repeat_interleave(c + n)[:, None]
        positions = torch.cat([time, per_frame.repeat(f, 1)], dim=1)[None]
        mask = block_causal_mask(f, c + n, x.device)
        if valid is not None:
            frame = torch.arange(f, device=x.device).repeat_interleave(c + n)
            key_ok = valid.to(torch.bool).repeat_interleave(c + n, dim=1)[:, None, :]  # [B, 1, L]
            mask = (mask[None] & (key_ok | (frame[None, :] == frame[:, None])[None]))[:, None]
        out = self.transformer(x, positions, mask).view(b, f, c + n, -1)
        next_tokens = self.out(out[:, :, c:])
        next_states = self.state_out(out[:, :, 1]) if self.state_out is not None else None
        if self.residual:
            next_tokens = tokens + next_tokens
            next_states = None if next_states is None else states + next_states
        return next_tokens, next_states


__all__ = ["ActionConditionedPredictor", "block_causal_mask"]
