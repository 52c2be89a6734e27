"""World branches: frames -> latents ``[B, C, T', H', W']``, and (where the model can) predicted future latents.

A registry by ``WorldSpec.kind``: ``diffusers`` wraps a causal video VAE (Cosmos ``AutoencoderKLCosmos`` or
Cosmos-Predict2's ``AutoencoderKLWan``), ``worldrl`` any worldrl world model (its ``observe``/``imagine`` and
``state_embedding``: a vector latent, so one latent position of D channels). Frames come in as ``[B, T, 3, H, W]``
in [-1, 1], the range the Cosmos VAEs are trained on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from worldrl.errors import ModelConfigurationError
from worldrl.models.fusion.config import WorldSpec
from worldrl.models.fusion.sources import resolve_local_dir


def check_frame_count(frames: int, ratio: int) -> None:
    """A causal video VAE with temporal ratio r encodes 1 + k*r frames and silently drops the rest: refuse others."""
    if frames < 1 or (frames - 1) % ratio:
        valid = ", ".join(str(1 + k * ratio) for k in range(4))
        raise ModelConfigurationError(
            f"the world encoder takes 1 + k*{ratio} frames ({valid}, ...), got {frames}: it would drop "
            f"{(frames - 1) % ratio} frame(s) silently"
        )


def usable_frame_count(available: int, ratio: int) -> int:
    """The most frames (1 + k*r) a causal VAE can take from ``available`` context frames."""
    return 1 + (available - 1) // ratio * ratio


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, T, 3, H, W]`` -> ``[B, T, 3, size, size]`` (bilinear, antialiased when shrinking)."""
    b, t = frames.shape[:2]
    if frames.shape[-2:] == (size, size):
        return frames
    flat = F.interpolate(frames.flatten(0, 1).float(), size=(size, size), mode="bilinear", antialias=True)
    return flat.unflatten(0, (b, t)).to(frames.dtype)


def _check_frames(frames: torch.Tensor) -> None:
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ModelConfigurationError(f"world frames must be [B, T, 3, H, W] in [-1, 1], got {tuple(frames.shape)}")


class WorldEncoder(nn.Module):
    """Base: ``encode(frames)`` -> ``[B, C, T', H', W']``; ``predict(frames, steps)`` adds ``steps`` future latents."""

    spec: WorldSpec
    local_dir: str
    temporal_ratio: int = 1
    can_predict: bool = False

    @property
    def latent_channels(self) -> int:
        raise NotImplementedError

    def latent_grid(self) -> tuple[int, int]:
        """Latent (H', W') at ``spec.image_size``."""
        raise NotImplementedError

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, frames: torch.Tensor, steps: int) -> torch.Tensor:
        raise ModelConfigurationError(
            f"world_steps={steps} needs a world model that can predict; the {self.spec.kind} world "
            f"{type(self).__name__} ({self.spec.source}) only encodes: use world_steps=0 or a worldrl world model"
        )


class DiffusersVideoVAE(WorldEncoder):
    """A diffusers causal video VAE; latents are the posterior mean (mode), normalised with the config's
    ``latents_mean``/``latents_std`` per channel when it gives them (as the Cosmos pipelines do)."""

    def __init__(self, spec: WorldSpec, local_dir: str) -> None:
        super().__init__()
        import diffusers

        cls = getattr(diffusers, spec.model_class, None)
        if cls is None or not hasattr(cls, "encode"):
            raise ModelConfigurationError(f"world.model_class={spec.model_class!r} is not a diffusers autoencoder")
        self.spec, self.local_dir = spec, local_dir
        self.vae = cls.from_pretrained(local_dir).eval()  # local_dir is the subfolder already
        cfg = self.vae.config
        if hasattr(cfg, "temperal_downsample"):  # Wan: [False, True, True] -> 4x in time, 2**(levels) in space
            self.temporal_ratio = 2 ** sum(bool(x) for x in cfg.temperal_downsample)
            self.spatial_ratio = 2 ** len(cfg.temperal_downsample)
            channels = int(cfg.z_dim)
        else:  # Cosmos
            self.temporal_ratio = int(cfg.temporal_compression_ratio)
            self.spatial_ratio = int(cfg.spatial_compression_ratio)
            channels = int(cfg.latent_channels)
        self._channels = channels
        mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
        per_channel = mean is not None and std is not None and len(mean) == channels == len(std)
        self.register_buffer("shift", torch.tensor(mean if per_channel else [0.0] * channels), persistent=False)
        self.register_buffer("scale", torch.tensor(std if per_channel else [1.0] * channels), persistent=False)

    @property
    def latent_channels(self) -> int:
        return self._channels

    def latent_grid(self) -> tuple[int, int]:
        side = self.spec.image_size // self.spatial_ratio
        return side, side

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames)
        check_frame_count(frames.shape[1], self.temporal_ratio)
        x = resize_frames(frames, self.spec.image_size).transpose(1, 2)  # [B, 3, T, S, S]
        dtype = next(self.vae.parameters()).dtype
        latents = self.vae.encode(x.to(dtype)).latent_dist.mode().float()
        view = (1, -1, 1, 1, 1)
        return (latents - self.shift.view(view)) / self.scale.view(view)


class WorldrlModelEncoder(WorldEncoder):
    """A worldrl world model over image observations: each frame's posterior state embedding is one latent step;
    ``predict`` rolls the learned dynamics forward with zero actions (passive scenes) from the last state."""

    can_predict = True

    def __init__(self, spec: WorldSpec, local_dir: str) -> None:
        super().__init__()
        from worldrl.models.base import WorldModel

        self.spec, self.local_dir = spec, local_dir
        self.model = WorldModel.from_pretrained(local_dir)
        task = self.model.task
        cameras = task.image_keys if task.is_keyed else ([task.obs_key] if task.is_pixel else [])
        if len(cameras) != 1:
            raise ModelConfigurationError(
                f"world.source={spec.source}: a {type(self.model).__name__} observing {task.obs_keys} "
                f"({len(cameras)} image keys) cannot read frames; the fusion world branch needs a model of one camera"
            )
        self.camera = cameras[0]
        self.obs_size = tuple(task.key_space(self.camera).shape[:2])
        with torch.no_grad():
            self._channels = int(self.model.embed(self._as_obs(torch.zeros(1, *self.obs_size, 3))).shape[-1])

    def _as_obs(self, pixels: torch.Tensor):
        """Frames in task units ``[*batch, H, W, 3]`` -> the model's observation. Keyed tasks (camera + state, as
        V-JEPA 2 on the Playground) get zeros for the non-camera keys: the questions carry frames only."""
        if not self.model.task.is_keyed:
            return pixels
        from tensordict import TensorDict

        batch = pixels.shape[:-3]
        entries = {
            key: torch.zeros(*batch, *space.shape, device=pixels.device)
            for key, space in self.model.task.key_spaces().items()
            if key != self.camera
        }
        return TensorDict({self.camera: pixels, **entries}, batch_size=list(batch), device=pixels.device)

    @property
    def latent_channels(self) -> int:
        return self._channels

    def latent_grid(self) -> tuple[int, int]:
        return 1, 1

    def _observe(self, frames: torch.Tensor):
        _check_frames(frames)
        b, t = frames.shape[:2]
        h, w = self.obs_size
        pixels = F.interpolate(frames.flatten(0, 1).float(), size=(h, w), mode="bilinear", antialias=True)
        obs = ((pixels.clamp(-1, 1) + 1) * 127.5).unflatten(0, (b, t)).permute(0, 1, 3, 4, 2)  # task units: HWC 0..255
        device = self.model.device
        prev_action = torch.zeros(b, t, self.model.task.action_dim, device=device)
        is_first = torch.zeros(b, t, dtype=torch.bool, device=device)
        is_first[:, 0] = True
        return self.model.observe(self._as_obs(obs.to(device)), prev_action, is_first)

    @staticmethod
    def _as_latents(embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings.transpose(1, 2)[..., None, None].float()  # [B, T, D] -> [B, D, T, 1, 1]

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        states = self._observe(frames)
        return self._as_latents(self.model.state_embedding(states))

    def predict(self, frames: torch.Tensor, steps: int) -> torch.Tensor:
        states = self._observe(frames)
        observed = self.model.state_embedding(states)
        state = states[:, -1]
        actions = torch.zeros(frames.shape[0], steps, self.model.task.action_dim, device=observed.device)
        future = self.model.state_embedding(self.model.rollout(state, actions))
        return self._as_latents(torch.cat([observed, future], dim=1))


WORLD_ENCODERS: dict[str, Callable[[WorldSpec, str], WorldEncoder]] = {
    "diffusers": DiffusersVideoVAE,
    "worldrl": WorldrlModelEncoder,
}


def load_world_encoder(spec: WorldSpec) -> WorldEncoder:
    """The world branch named by ``spec`` (its source resolved to a local directory)."""
    return WORLD_ENCODERS[spec.kind](spec, resolve_local_dir(spec.source, "world.source", spec.subfolder))


__all__ = [
    "WORLD_ENCODERS",
    "DiffusersVideoVAE",
    "WorldEncoder",
    "WorldrlModelEncoder",
    "check_frame_count",
    "load_world_encoder",
    "resize_frames",
    "usable_frame_count",
]
