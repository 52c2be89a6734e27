"""A conv net that reads a recorded vector off a frame (PushT: the block's 8 keypoints from the 96x96 image).

A world model that plans from pixels can predict how an object moves (``VRNNConfig.supervision_motion``) without
knowing where it is: its latent says what changed since the last real frame. Where it is now is a perception
question about that one real frame, which a plain regressor at the frame's full resolution answers far better than
the vrnn's 32x32 encoder (one of its cells spans 16 of PushT's 512 arena pixels). Trained supervised on a dataset
whose episodes carry the vector beside the frames; weights and normalisers go to one safetensors file, the
architecture to the JSON beside it, so loading never runs code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from worldrl.errors import CheckpointError
from worldrl.io import atomic_path, read_json, write_json
from worldrl.nn.mlp import mlp
from worldrl.nn.normalizer import Normalizer


@dataclass
class FrameRegressorConfig:
    """Shape of a ``FrameRegressor``."""

    height: int = 96
    """Frame height in pixels."""
    width: int = 96
    """Frame width in pixels."""
    channels: int = 3
    """Colour channels (frames are ``[..., H, W, C]`` uint8)."""
    out_dim: int = 16
    """Size of the vector read off the frame."""
    channels_per_layer: int = 32
    """Channels of the convs: two stride-2 convs (to a quarter of the frame's side), then two at that scale."""
    feature_points: int = 16
    """Maps of the last conv, each read by a spatial softmax as one expected (x, y) position."""
    hidden: int = 256
    """Width of the MLP from the feature points to the output."""


class FrameRegressor(nn.Module):
    """``frames [..., H, W, C] uint8 -> [..., out_dim]`` in the target's units (normalised inside).

    A spatial softmax (deep spatial autoencoders, Finn et al. 2016; robomimic's and Diffusion Policy's image heads)
    turns each of the last conv's maps into the expected position of what it responds to, so positions are read
    below a cell's size and do not have to be memorised per place by a dense layer (on PushT's block, 3,000
    updates: 6.7 arena pixels RMSE held out, against 26 for a dense layer on the flattened map; a one-off check)."""

    def __init__(self, config: FrameRegressorConfig) -> None:
        super().__init__()
        self.config = c = config
        k = c.channels_per_layer
        self.convs = nn.Sequential(
            nn.Conv2d(c.channels, k, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(k, k, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(k, k, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(k, c.feature_points, 3, padding=1),
        )
        self.head = mlp(2 * c.feature_points, [c.hidden, c.hidden], c.out_dim)
        self.norm = Normalizer((c.out_dim,))

    def normalised(self, frames: torch.Tensor) -> torch.Tensor:
        """The prediction in normalised units ``[N, out_dim]`` of ``frames [N, H, W, C]``."""
        x = frames.float().div(255.0).permute(0, 3, 1, 2)
        return self.head(spatial_softmax(self.convs(x)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        lead = frames.shape[:-3]
        out = self.normalised(frames.reshape(-1, *frames.shape[-3:]))
        return self.norm.denormalize(out).reshape(*lead, self.config.out_dim)

    def save(self, path: str | Path) -> None:
        """``path`` (.safetensors) and ``path`` with ``.json``: the weights and the config, each written atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp))
        write_json(path.with_suffix(".json"), asdict(self.config))

    @classmethod
    def load(cls, path: str | Path) -> FrameRegressor:
        path = Path(path)
        config = read_json(path.with_suffix(".json"))
        known = set(FrameRegressorConfig.__dataclass_fields__)
        if set(config) - known:
            raise CheckpointError(
                f"{path.with_suffix('.json')}: unknown frame regressor fields {sorted(set(config) - known)}"
            )
        model = cls(FrameRegressorConfig(**config))
        model.load_state_dict(load_file(str(path)))
        return model.eval()


def spatial_softmax(maps: torch.Tensor) -> torch.Tensor:
    """``[N, K, H, W]`` -> ``[N, 2K]``: each map's softmax-weighted mean (x, y) position, in [-1, 1]."""
    n, k, h, w = maps.shape
    weights = maps.flatten(2).softmax(-1).reshape(n, k, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=maps.device, dtype=maps.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=maps.device, dtype=maps.dtype)
    x = (weights.sum(2) * xs).sum(-1)
    y = (weights.sum(3) * ys).sum(-1)
    return torch.cat([x, y], -1)


def fit_frame_regressor(
    frames: np.ndarray,
    targets: np.ndarray,
    held_out: np.ndarray,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> tuple[FrameRegressor, dict[str, float]]:
    """Regress ``targets [N, D]`` on ``frames [N, H, W, C]`` uint8 (rows with ``held_out [N]`` left out) with MSE in
    the targets' normalised units; returns the model and held-out RMSE (target units) beside predicting the
    training mean."""
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"fit_frame_regressor: frames must be [N, H, W, C] uint8, got {frames.shape} {frames.dtype}")
    train, test = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    if len(train) < batch_size or len(test) == 0:
        raise ValueError(f"fit_frame_regressor: {len(train)} training and {len(test)} held-out frames are too few")
    torch.manual_seed(seed)
    n, h, w, c = frames.shape
    model = FrameRegressor(FrameRegressorConfig(height=h, width=w, channels=c, out_dim=targets.shape[1]))
    y = torch.as_tensor(targets, dtype=torch.float32)
    model.norm.fit(y[train].mean(0), y[train].std(0))
    x = torch.from_numpy(frames)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    rows = torch.as_tensor(train)
    for step in range(steps):
        batch = rows[torch.randint(len(rows), (batch_size,))]
        loss = (model.normalised(x[batch]) - model.norm.normalize(y[batch])).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if progress and (step + 1) % 250 == 0:
            print(f"  frame regressor: step {step + 1}/{steps}, loss {loss.item():.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[torch.as_tensor(test[i : i + 512])]) for i in range(0, len(test), 512)])
    truth = y[torch.as_tensor(test)]
    rmse = float((pred - truth).pow(2).mean().sqrt())
    mean = float((y[train].mean(0) - truth).pow(2).mean().sqrt())
    return model, {"rmse_held_out": rmse, "rmse_predict_train_mean": mean, "train": len(train), "held_out": len(test)}


__all__ = ["FrameRegressor", "FrameRegressorConfig", "fit_frame_regressor", "spatial_softmax"]
