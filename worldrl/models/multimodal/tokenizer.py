"""The learned frame tokenizer: a conv autoencoder whose bottleneck is FSQ-quantised into one code per patch.

``encode(frames [N, C, H, W] in [0, 1]) -> (codes [N, g, g] long, quantised [N, g, g, d])`` with ``g = H / patch``,
``decode(quantised [N, g, g, d]) -> frames [N, C, H, W]`` (logits of [0, 1] pixels are squashed by a sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn

from worldrl.models.multimodal import fsq


def _factors(patch: int) -> list[int]:
    """Downsampling factors whose product is ``patch``: stride-2 stages, then any odd rest in one stage."""
    factors = []
    while patch % 2 == 0:
        factors.append(2)
        patch //= 2
    return factors + ([patch] if patch > 1 else [])


class _Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(min(8, ch), ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
            nn.GroupNorm(min(8, ch), ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FrameTokenizer(nn.Module):
    """Conv encoder -> FSQ (``levels``) -> conv decoder; ``channels`` at full resolution, doubled per stage (max 4x)."""

    def __init__(self, in_channels: int, patch_size: int, levels: list[int], channels: int) -> None:
        super().__init__()
        self.levels = list(levels)
        factors = _factors(patch_size)
        widths = [channels * min(2**i, 4) for i in range(len(factors) + 1)]
        enc: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for i, f in enumerate(factors):
            down = nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1) if f == 2 else nn.Conv2d(widths[i], widths[i + 1], f, f)
            enc += [_Res(widths[i]), down]
        enc += [_Res(widths[-1]), nn.GroupNorm(min(8, widths[-1]), widths[-1]), nn.SiLU()]
        enc += [nn.Conv2d(widths[-1], len(levels), 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(len(levels), widths[-1], 3, padding=1), _Res(widths[-1])]
        for i, f in reversed(list(enumerate(factors))):
            up = (
                nn.ConvTranspose2d(widths[i + 1], widths[i], 4, 2, 1)
                if f == 2
                else nn.ConvTranspose2d(widths[i + 1], widths[i], f, f)
            )
            dec += [up, _Res(widths[i])]
        dec += [nn.GroupNorm(min(8, widths[0]), widths[0]), nn.SiLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def code_dim(self) -> int:
        return len(self.levels)

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(frames * 2 - 1).permute(0, 2, 3, 1)  # [N, g, g, d]
        q = fsq.quantize(z, self.levels)
        return fsq.codes_from_quantized(q.detach(), self.levels), q

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(quantized.permute(0, 3, 1, 2)))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Frames ``[N, C, H, W]`` of integer codes ``[N, g, g]``."""
        return self.decode(fsq.quantized_from_codes(codes, self.levels, self.decoder[0].weight.dtype))


__all__ = ["FrameTokenizer"]
