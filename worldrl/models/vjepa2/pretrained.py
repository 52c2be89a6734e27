"""A V-JEPA 2 checkpoint in the transformers format (``VJEPA2Model``: ``facebook/vjepa2-*`` or a local directory)
as worldrl's frozen encoder. The checkpoint's own encoder runs (``skip_predictor=True``); worldrl only prepares
the frames (``preprocess.frames_to_input`` at the checkpoint's ``crop_size``: its RoPE grid assumes exactly that
size, and another size would run silently with wrong positions)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from worldrl.errors import InputNotFoundError


def resolve_source(source: str) -> str:
    """The local directory holding ``source``'s files: the directory itself, or the Hub snapshot (downloaded when
    the network allows, else the local cache); a clear error when neither has it."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise InputNotFoundError(
                f"encoder.pretrained={source}: the directory has no config.json "
                "(expected a transformers VJEPA2Model checkpoint)"
            )
        return str(path)
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise InputNotFoundError(f"encoder.pretrained={source}: no such directory (and not a Hub id owner/name)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        raise InputNotFoundError(f"encoder.pretrained={source}: huggingface_hub is not installed") from None
    patterns = ["*.json", "*.safetensors"]
    try:
        return snapshot_download(source, allow_patterns=patterns)
    except Exception as online_error:  # noqa: BLE001 - any Hub/network failure: try the cache, then say which
        try:
            return snapshot_download(source, allow_patterns=patterns, local_files_only=True)
        except Exception:  # noqa: BLE001
            raise InputNotFoundError(
                f"encoder.pretrained={source}: not a local directory, and the Hub id could not be downloaded nor "
                f"found in the local cache ({type(online_error).__name__}); download it where there is a network "
                "and pass the directory"
            ) from None


class PretrainedVJEPA2Encoder(nn.Module):
    """``forward(x [B, T, C, S, S] normalised)`` -> tokens ``[B, (T/tubelet)*h*w, D]``, as ``VideoViT``."""

    def __init__(self, local_dir: str) -> None:
        super().__init__()
        try:
            from transformers import VJEPA2Model
        except ImportError:
            raise ImportError("encoder.pretrained needs transformers >= 4.53 (VJEPA2Model)") from None
        self.model = VJEPA2Model.from_pretrained(local_dir).eval()
        self.model.requires_grad_(False)
        cfg = self.model.config
        self.image_size, self.patch_size = int(cfg.crop_size), int(cfg.patch_size)
        self.tubelet, self.dim = int(cfg.tubelet_size), int(cfg.hidden_size)

    def train(self, mode: bool = True) -> PretrainedVJEPA2Encoder:
        super().train(False)  # frozen: no dropout, whatever the parent does
        return self

    @property
    def grid_hw(self) -> int:
        return self.image_size // self.patch_size

    def grid(self, frames: int) -> tuple[int, int, int]:
        return frames // self.tubelet, self.grid_hw, self.grid_hw

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"frames of {tuple(x.shape[-2:])} given to a V-JEPA 2 checkpoint of crop_size {self.image_size}"
            )
        if x.shape[1] < self.tubelet:
            raise ValueError(f"a clip of {x.shape[1]} frame(s) is shorter than a tubelet of {self.tubelet}")
        t = x.shape[1] - x.shape[1] % self.tubelet
        out = self.model(pixel_values_videos=x[:, :t], skip_predictor=True).last_hidden_state
        if keep is not None:
            out = torch.gather(out, 1, keep[..., None].expand(-1, -1, out.shape[-1]))
        return out


__all__ = ["PretrainedVJEPA2Encoder", "resolve_source"]
