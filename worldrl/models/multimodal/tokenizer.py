"""The learned frame tokenizer: a conv autoencoder whose bottleneck is FSQ-quantised into one code per patch.

``encode(frames [N, C, H, W] in [0, 1], reference=None) -> (codes [N, g, g] long, quantised [N, g, g, d])`` with
``g = H / patch``, ``decode(quantised [N, g, g, d], reference=None) -> frames [N, C, H, W]``.

With a ``reference`` frame (the frame before) this is a predictive (P-frame) codec, as in video compression: the
encoder sees the frame beside its reference, so a code says how the patch changed (an object entering it, moving
by a pixel), and the decoder sees the reference too (patchified into its coarse grid, and at full resolution in a
last refining conv) and outputs ``alpha * paint + (1 - alpha) * reference``: what does not change is copied. Codes of
the frame alone (absolute codes) cannot do this: a one-pixel move rarely changes a patch's code, so it is lost, and a
sequence of frames decoded from them never beats repeating the last frame (measured in docs/benchmarks.md). Without
a reference the encoder sees zeros in its place and the decoder paints from the codes alone.

A chained decode (each frame over the decoded one before) repaints the kept pixels at every step, so they drift. With
``anchor=True`` the decoder also sees the chain's *anchor*, the last real frame it started from, and how many steps
back it is (``decode(..., anchor=, age=)``); its keep mask then keeps from the reference or from the anchor, whose
pixels have not been repainted (as the vrnn's decoder paints over the last real frame).

With ``flow=True`` the decoder also paints a motion field and keeps the reference *moved* by it (``warp``): motion
compensation, as in a codec's P-frames, so a code can say "what is here moved by a pixel" and the object moves
intact instead of being repainted from a few bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldrl.models.multimodal import fsq


def _factors(patch: int) -> list[int]:
    """Downsampling factors whose product is ``patch``: stride-2 stages, then any odd rest in one stage."""
    factors = []
    while patch % 2 == 0:
        factors.append(2)
        patch //= 2
    return factors + ([patch] if patch > 1 else [])


ANCHOR_PRIOR = -4.0
"""Initial logit of the anchor's share of what is kept (sigmoid(-4) = 2%)."""
AGE_CAP = 8
"""The refiner reads the reference's age (steps since the anchor) as ``min(age, AGE_CAP) / AGE_CAP``: a training
window of the CPU preset covers ages 0..7, and older references are all read as "old" rather than extrapolated."""


FLOW_MAX = 4.0
"""Largest motion (pixels per step, each axis) the flow decoder can apply; Playground objects move 1-2."""


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``frames [N, C, H, W]`` sampled at each pixel plus ``flow [N, 2, H, W]`` (dx, dy in pixels; bilinear, edges
    repeated): the backward warp of optical-flow models, written with ``grid_sample``."""
    n, _, h, w = frames.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=frames.device, dtype=frames.dtype),
        torch.arange(w, device=frames.device, dtype=frames.dtype),
        indexing="ij",
    )
    gx = (xs + 0.5 + flow[:, 0]) * (2 / w) - 1
    gy = (ys + 0.5 + flow[:, 1]) * (2 / h) - 1
    grid = torch.stack([gx, gy], -1)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


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
    """Conv encoder -> FSQ (``levels``) -> conv decoder. Resolution halves per stage while channels double from
    ``channels`` (max 4x); residual blocks run only at the coarsest grid, so full-resolution work is one strided
    conv in and one transposed conv out (cheap enough for CPU training)."""

    def __init__(
        self,
        in_channels: int,
        patch_size: int,
        levels: list[int],
        channels: int,
        refine_channels: int = 0,
        anchor: bool = False,
        flow: bool = False,
    ) -> None:
        super().__init__()
        self.anchor, self.flow = anchor, flow
        self.out_channels = in_channels + 1 + (2 if flow else 0)  # paint, keep mask (, motion dx, dy)
        self.levels = list(levels)
        factors = _factors(patch_size)
        widths = [2 * in_channels] + [channels * min(2**i, 4) for i in range(len(factors))]  # frame + reference
        self.channels = in_channels
        enc: list[nn.Module] = []
        for i, f in enumerate(factors):
            down = nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1) if f == 2 else nn.Conv2d(widths[i], widths[i + 1], f, f)
            enc += [down, nn.SiLU()] if i < len(factors) - 1 else [down]
        top = widths[-1] if factors else channels
        if not factors:
            enc = [nn.Conv2d(2 * in_channels, top, 3, padding=1)]
        enc += [_Res(top), _Res(top), nn.GroupNorm(min(8, top), top), nn.SiLU(), nn.Conv2d(top, len(levels), 1)]
        self.encoder = nn.Sequential(*enc)
        self.decoder_in = nn.Conv2d(len(levels), top, 3, padding=1)
        self.reference_in = nn.Conv2d(in_channels, top, patch_size, patch_size)  # the reference, one cell per patch
        # paint/mask next to the reference at full resolution; with refine_channels a small conv stack, which can
        # carry the reference's sharp edges into the paint (one 3x3 conv blurs them along a chained rollout)
        mixed = self.out_channels + in_channels + (in_channels + 1 if anchor else 0)  # (+ the anchor and its age)
        refine: list[nn.Module] = []
        if refine_channels:
            refine = [nn.Conv2d(mixed, refine_channels, 3, padding=1), nn.SiLU()]
            refine += [nn.Conv2d(refine_channels, refine_channels, 3, padding=1), nn.SiLU()]
        refine.append(nn.Conv2d(refine_channels or mixed, self.out_channels + int(anchor), 3, padding=1))
        nn.init.zeros_(refine[-1].weight)  # starts as the identity on the decoder's output
        nn.init.zeros_(refine[-1].bias)
        if anchor:  # the anchor's share starts near zero: the decoder begins as the plain predictive one
            nn.init.constant_(refine[-1].bias[-1:], ANCHOR_PRIOR)
        self.refine = refine[0] if len(refine) == 1 else nn.Sequential(*refine)
        dec: list[nn.Module] = [_Res(top), _Res(top)]
        if not factors:
            dec += [nn.SiLU(), nn.Conv2d(top, self.out_channels, 3, padding=1)]
        out_widths = [self.out_channels, *widths[1:]]  # the last layer paints colours and the keep mask (and motion)
        for i, f in reversed(list(enumerate(factors))):
            up = (
                nn.ConvTranspose2d(widths[i + 1], out_widths[i], 4, 2, 1)
                if f == 2
                else nn.ConvTranspose2d(widths[i + 1], out_widths[i], f, f)
            )
            dec += [nn.SiLU(), up]
        self.decoder = nn.Sequential(*dec)
        if flow:  # the motion starts at zero: the decoder begins as the plain predictive one
            nn.init.zeros_(
                dec[-1].weight[:, in_channels + 1 :]
                if isinstance(dec[-1], nn.ConvTranspose2d)
                else dec[-1].weight[in_channels + 1 :]
            )
            nn.init.zeros_(dec[-1].bias[in_channels + 1 :])

    @property
    def code_dim(self) -> int:
        return len(self.levels)

    def encode(self, frames: torch.Tensor, reference: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes of ``frames`` relative to ``reference`` (same shape; None: the frames alone)."""
        ref = torch.zeros_like(frames) if reference is None else reference * 2 - 1
        z = self.encoder(torch.cat([frames * 2 - 1, ref], 1)).permute(0, 2, 3, 1)  # [N, g, g, d]
        q = fsq.quantize(z, self.levels)
        return fsq.codes_from_quantized(q.detach(), self.levels), q

    def decode(
        self,
        quantized: torch.Tensor,
        reference: torch.Tensor | None = None,
        anchor: torch.Tensor | None = None,
        age: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frames of quantised codes, painted over ``reference`` (the frame before, None: painted only). With
        ``anchor`` (a tokenizer built with it): ``anchor [N, C, H, W]`` is the last real frame the chain started
        from and ``age [N]`` the steps from it to the reference; what the keep mask keeps comes from the reference
        or, where the decoder says so, from the anchor, whose pixels have not been through the chain's repainting
        (None: the reference is the anchor, age 0)."""
        x = self.decoder_in(quantized.permute(0, 3, 1, 2))
        if reference is None:
            return torch.sigmoid(self.decoder(x)[:, : self.channels])
        out = self.decoder(x + self.reference_in(reference * 2 - 1))
        if not self.anchor:
            out = out + self.refine(torch.cat([out, reference * 2 - 1], 1))
            return self._blend(out, self._moved(reference, out))
        if anchor is None or age is None:
            anchor, age = reference, torch.zeros(len(reference), device=reference.device)
        aged = (age.to(out.dtype).clamp(0, AGE_CAP) / AGE_CAP)[:, None, None, None].expand(-1, 1, *out.shape[2:])
        out = torch.cat([out, torch.zeros_like(out[:, :1])], 1)  # the anchor logit, only the refiner writes it
        out = out + self.refine(torch.cat([out[:, :-1], reference * 2 - 1, anchor * 2 - 1, aged], 1))
        beta = torch.sigmoid(out[:, -1:])
        return self._blend(out, beta * anchor + (1 - beta) * self._moved(reference, out))

    def _moved(self, reference: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The reference, or with ``flow`` the reference moved by the decoder's motion channels (each pixel taken
        from up to ``FLOW_MAX`` pixels away: motion compensation, as a video codec's P-frames)."""
        if not self.flow:
            return reference
        c = self.channels
        return warp(reference, FLOW_MAX * torch.tanh(out[:, c + 1 : c + 3]))

    def _blend(self, out: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """``alpha * paint + (1 - alpha) * kept`` of the decoder's paint and keep-mask logits ``out``."""
        paint = torch.sigmoid(out[:, : self.channels])
        alpha = torch.sigmoid(out[:, self.channels : self.channels + 1])
        return alpha * paint + (1 - alpha) * kept

    def decode_codes(self, codes: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Frames ``[N, C, H, W]`` of integer codes ``[N, g, g]`` (over ``reference [N, C, H, W]`` when given)."""
        return self.decode(fsq.quantized_from_codes(codes, self.levels, self.decoder_in.weight.dtype), reference)


__all__ = ["AGE_CAP", "ANCHOR_PRIOR", "FLOW_MAX", "FrameTokenizer", "warp"]
