"""The ``vjepa2`` world model: V-JEPA 2 masked latent video pretraining and the V-JEPA 2-AC predictor behind the
protocol.

* Training (``loss_groups``): ``jepa``: the context encoder sees the unmasked tokens of a clip (each camera on
  its own), the narrow predictor predicts the EMA target encoder's layer-normed latents of the masked tokens, L1;
  ``ac``: the frozen target encoder embeds each frame alone, the block-causal predictor over per-frame
  [action, state, patch tokens] predicts the next frame's latents: teacher-forcing L1 + ``rollout_steps``
  autoregressive L1 (the encoder gets no gradient from it). The target follows the encoder by EMA after every
  optimizer step (``on_train_step_end``).
* Serving: a state holds the last ``context_frames`` frames' latents, actions and (normalised) proprioceptive
  states; ``observe`` encodes frames, ``imagine`` predicts the next frame's latents; no decoder and no reward
  head, so envs serve ``obs_mode="latent"`` and ``reward="goal"`` (``embed``/``distance``: V-JEPA 2-AC's L1
  energy between patch latents).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

from worldrl.models.base import Capabilities, WorldModel
from worldrl.models.external import ExternalWeights
from worldrl.models.observations import Observation
from worldrl.models.task_spec import TaskSpec
from worldrl.models.vjepa2.action_predictor import ActionConditionedPredictor
from worldrl.models.vjepa2.config import VJEPA2Config
from worldrl.models.vjepa2.encoder import VideoViT, frame_clip
from worldrl.models.vjepa2.masking import VideoMaskGenerator
from worldrl.models.vjepa2.momentum import ema_momentum, ema_update
from worldrl.models.vjepa2.predictor import MaskedPredictor
from worldrl.models.vjepa2.preprocess import frames_to_input


def is_camera(space: Any) -> bool:
    shape = tuple(space.shape or ())
    return len(shape) == 3 and shape[-1] == 3


def target_norm(tokens: torch.Tensor) -> torch.Tensor:
    """V-JEPA's targets: latents layer-normed over the feature dimension (no affine)."""
    return F.layer_norm(tokens, tokens.shape[-1:])


class VJEPA2WorldModel(WorldModel):
    capabilities = Capabilities(
        can_decode=False, predicts_reward=False, predicts_terminal=False, recurrent=True, stochastic=False
    )

    def __init__(self, config: VJEPA2Config, task: TaskSpec) -> None:
        super().__init__(config, task)
        spaces = task.key_spaces()
        self.cameras = [key for key, space in spaces.items() if is_camera(space)]
        if not self.cameras:
            raise ValueError(f"vjepa2 observes camera frames [H, W, 3]; task keys {list(spaces)} hold none")
        if config.cameras:
            unknown = [key for key in config.cameras if key not in self.cameras]
            if unknown:
                raise ValueError(f"model.cameras {unknown} are not camera keys of the task ({self.cameras})")
            self.cameras = list(config.cameras)
        self.state_key = (
            config.state_key if config.state_key in spaces and config.state_key not in self.cameras else None
        )
        self.state_dim = int(np.prod(spaces[self.state_key].shape)) if self.state_key else 0
        enc, ckpt = config.encoder, config.activation_checkpointing
        self.pretrained_dir = ""
        if enc.pretrained:
            from worldrl.models.vjepa2.pretrained import PretrainedVJEPA2Encoder, resolve_source

            self.pretrained_dir = resolve_source(enc.pretrained)
            self.encoder: nn.Module = PretrainedVJEPA2Encoder(self.pretrained_dir)
        else:
            self.encoder = VideoViT(
                enc.image_size, enc.patch_size, enc.tubelet, enc.dim, enc.depth, enc.num_heads, checkpointing=ckpt
            )
        self.image_size, self.tubelet, self.dim = self.encoder.image_size, self.encoder.tubelet, self.encoder.dim
        self.learns_encoder = config.train_encoder and not enc.pretrained and config.jepa_weight > 0
        if self.learns_encoder:
            self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
            p = config.predictor
            self.predictor = MaskedPredictor(self.dim, p.dim, p.depth, p.num_heads, checkpointing=ckpt)
        else:
            self.encoder.requires_grad_(False)
        a = config.action_predictor
        self.action_predictor = ActionConditionedPredictor(
            self.dim,
            a.dim,
            a.depth,
            a.num_heads,
            task.action_dim,
            self.state_dim,
            self.encoder.grid_hw,
            num_cameras=len(self.cameras),
            checkpointing=ckpt,
            residual=config.residual_prediction,
        )
        self.tokens_per_frame = len(self.cameras) * self.encoder.grid_hw**2
        self.register_buffer("state_mean", torch.zeros(self.state_dim))
        self.register_buffer("state_std", torch.ones(self.state_dim))
        self.register_buffer("action_mean", torch.zeros(task.action_dim))
        self.register_buffer("action_std", torch.ones(task.action_dim))
        self._mask_generators: dict[int, VideoMaskGenerator] = {}

    # ----------------------------------------------------------------- what the family reads
    @classmethod
    def observation_keys(cls, features: dict[str, dict[str, Any]], requested: list[str] | None) -> list[str]:
        """The requested keys, else every camera (``observation.images.*``) and ``observation.state`` if present."""
        if requested:
            return super().observation_keys(features, requested)
        cameras = sorted(
            k
            for k, f in features.items()
            if k.startswith("observation.images.") and f.get("dtype") in ("image", "video")
        )
        if not cameras:
            raise ValueError(
                f"vjepa2 needs camera frames (observation.images.*); dataset features: "
                f"{sorted(k for k in features if k.startswith('observation'))}"
            )
        return cameras + (["observation.state"] if "observation.state" in features else [])

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        groups = []
        if self.learns_encoder:
            groups.append(
                {"params": list(self.encoder.parameters()), "lr": lr * self.config.encoder_lr_scale, "name": "encoder"}
            )
            groups.append({"params": list(self.predictor.parameters()), "lr": lr, "name": "predictor"})
        groups.append({"params": list(self.action_predictor.parameters()), "lr": lr, "name": "action_predictor"})
        return groups

    def external_weights(self) -> dict[str, ExternalWeights]:
        if not self.pretrained_dir:
            return {}
        return {
            "encoder": ExternalWeights("encoder.", source=self.config.encoder.pretrained, local_dir=self.pretrained_dir)
        }

    def fit_normalization(self, stats: dict[str, dict[str, Any]]) -> None:
        def fit(entry: dict[str, Any] | None, mean: torch.Tensor, std: torch.Tensor) -> None:
            if entry is None or "mean" not in entry or "std" not in entry:
                return
            mean.copy_(torch.as_tensor(np.asarray(entry["mean"], np.float32)).reshape(mean.shape))
            std.copy_(torch.as_tensor(np.asarray(entry["std"], np.float32)).reshape(std.shape).clamp_min(1e-3))

        if self.state_key:
            fit(stats.get(f"obs/{self.state_key}"), self.state_mean, self.state_std)
        fit(stats.get("action"), self.action_mean, self.action_std)

    @property
    def frozen_encoder(self) -> nn.Module:
        """The encoder whose latents are targets and states: the EMA target, or the frozen/pretrained encoder."""
        return self.target_encoder if self.learns_encoder else self.encoder

    # ----------------------------------------------------------------- inputs
    def _entry(self, obs: Observation, key: str) -> torch.Tensor:
        return obs[key] if self.task.is_keyed else obs

    def _check(self, obs: Observation, batch_dims: int) -> None:
        for key in self.cameras + ([self.state_key] if self.state_key else []):
            if self.task.is_keyed and key not in obs.keys():
                raise ValueError(f"observation lacks key {key!r} (the model observes {self.task.obs_keys})")
            shape = tuple(self._entry(obs, key).shape[batch_dims:])
            expected = tuple(self.task.key_space(key).shape)
            if shape != expected:
                raise ValueError(f"observation {key!r} has shape {shape}, the model was trained on {expected}")

    def _clips(self, obs: Observation, key: str) -> torch.Tensor:
        """``[B, T, H, W, 3]`` frames of one camera -> normalised ``[B, T, 3, S, S]``."""
        return frames_to_input(self._entry(obs, key).to(self.device), self.image_size)

    def _proprio(self, obs: Observation, batch_dims: int) -> torch.Tensor | None:
        if not self.state_key:
            return None
        x = self._entry(obs, self.state_key).to(self.device).float()
        return (x.reshape(*x.shape[:batch_dims], -1) - self.state_mean) / self.state_std

    def _norm_action(self, action: torch.Tensor) -> torch.Tensor:
        return (action.to(self.device).float() - self.action_mean) / self.action_std

    def encode_frames(self, obs: Observation) -> torch.Tensor:
        """Each frame alone through the frozen encoder, layer-normed: ``[B, T, cameras*h*w, D]``."""
        parts = []
        for key in self.cameras:
            x = self._clips(obs, key)
            b, t = x.shape[:2]
            parts.append(self.frozen_encoder(frame_clip(x.flatten(0, 1), self.tubelet)).view(b, t, -1, self.dim))
        return target_norm(torch.cat(parts, dim=2))

    # ----------------------------------------------------------------- states
    def initial_state(self, batch_size: int) -> TensorDict:
        w, d = self.config.context_frames, self.device
        entries = {
            "tokens": torch.zeros(batch_size, w, self.tokens_per_frame, self.dim, device=d),
            "actions": torch.zeros(batch_size, w, self.task.action_dim, device=d),
            "valid": torch.zeros(batch_size, w, dtype=torch.bool, device=d),
        }
        if self.state_dim:
            entries["proprio"] = torch.zeros(batch_size, w, self.state_dim, device=d)
        return TensorDict(entries, batch_size=[batch_size], device=d)

    def observe(self, obs: Observation, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict:
        self._check(obs, 2)
        tokens = self.encode_frames(obs)  # [B, T, N, D]
        b, t = tokens.shape[:2]
        w, dev = self.config.context_frames, tokens.device
        # history slot j of step s holds frame s - (w - 1) + j; its action is the one taken there (prev_action of
        # the next step), unknown (zero) for the current frame; slots before the episode start are invalid
        actions = torch.cat([self._norm_action(prev_action[:, 1:]), torch.zeros_like(prev_action[:, :1])], dim=1)
        episode = torch.cumsum(is_first.to(dev).long(), dim=1)
        steps = torch.arange(t, device=dev)[:, None] - (w - 1) + torch.arange(w, device=dev)  # [T, W]
        index = steps.clamp_min(0)
        valid = (steps >= 0)[None] & (episode[:, index] == episode[:, :, None])
        action_hist = actions[:, index] * (torch.arange(w, device=dev) < w - 1)[None, None, :, None]
        entries = {"tokens": tokens[:, index], "actions": action_hist, "valid": valid}
        proprio = self._proprio(obs, 2)
        if proprio is not None:
            entries["proprio"] = proprio[:, index]
        return TensorDict(entries, batch_size=[b, t], device=dev)

    def imagine(self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None = None) -> TensorDict:
        actions = state["actions"].clone()
        actions[:, -1] = self._norm_action(action)
        proprio = state.get("proprio", None)
        tokens, next_proprio = self.action_predictor(state["tokens"], actions, proprio, state["valid"])
        entries = {
            "tokens": torch.cat([state["tokens"][:, 1:], tokens[:, -1:]], dim=1),
            "actions": torch.cat([actions[:, 1:], torch.zeros_like(actions[:, :1])], dim=1),
            "valid": torch.cat([state["valid"][:, 1:], torch.ones_like(state["valid"][:, :1])], dim=1),
        }
        if proprio is not None:
            entries["proprio"] = torch.cat([proprio[:, 1:], next_proprio[:, -1:]], dim=1)
        return TensorDict(entries, batch_size=state.batch_size, device=state.device)

    # ----------------------------------------------------------------- read-outs
    @property
    def latent_dim(self) -> int:
        return self.tokens_per_frame * self.dim + self.state_dim

    def latent(self, state: TensorDict) -> torch.Tensor:
        """The current frame's patch latents (flattened) and normalised proprioceptive state."""
        tokens = state["tokens"][..., -1, :, :]
        parts = [tokens.reshape(*tokens.shape[:-2], -1)]
        if self.state_dim:
            parts.append(state["proprio"][..., -1, :])
        return torch.cat(parts, dim=-1)

    def embed(self, obs: Observation) -> torch.Tensor:
        """Latents of single observations ``[B, ...]`` (a goal image), in the space of ``latent``."""
        self._check(obs, 1)
        seq = obs.unsqueeze(1) if self.task.is_keyed else obs[:, None]
        tokens = self.encode_frames(seq)[:, 0]
        parts = [tokens.flatten(1)]
        proprio = self._proprio(seq, 2)
        if proprio is not None:
            parts.append(proprio[:, 0])
        return torch.cat(parts, dim=-1)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """V-JEPA 2-AC's energy: mean absolute difference of the latents."""
        return (a - b).abs().mean(-1)

    # ----------------------------------------------------------------- training
    def _mask_generator(self, frames: int) -> VideoMaskGenerator:
        if frames not in self._mask_generators:
            m = self.config.masking
            self._mask_generators[frames] = VideoMaskGenerator(
                self.encoder.grid(frames), m.strategy, m.mask_ratio, tuple(m.aspect_ratio)
            )
        return self._mask_generators[frames]

    def jepa_loss(self, obs: Observation, generator: torch.Generator) -> torch.Tensor:
        """Masked latent prediction on clips ``[B, T, ...]`` (T >= tubelet), averaged over cameras and mask sets."""
        losses = []
        for key in self.cameras:
            x = self._clips(obs, key)
            if x.shape[1] < self.tubelet:
                raise ValueError(f"clips of {x.shape[1]} frame(s) are shorter than a tubelet of {self.tubelet}")
            t = x.shape[1] - x.shape[1] % self.tubelet
            x = x[:, :t]
            grid = self.encoder.grid(t)
            with torch.no_grad():
                targets = target_norm(self.target_encoder(x))
            for context_idx, target_idx in self._mask_generator(t).batch(x.shape[0], generator):
                context_idx, target_idx = context_idx.to(x.device), target_idx.to(x.device)
                context = self.encoder(x, keep=context_idx)
                pred = self.predictor(context, context_idx, target_idx, grid)
                target = torch.gather(targets, 1, target_idx[..., None].expand(-1, -1, self.dim))
                losses.append((pred - target).abs().mean())
        return torch.stack(losses).mean()

    def ac_losses(
        self, tokens: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor | None, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forcing and rollout L1 over a window: ``tokens [B, T, N, D]`` (targets), normalised ``actions
        [B, T, A]``, ``proprio [B, T, S]``, ``valid [B, T-1]`` (transition t -> t+1 is real)."""
        b, t = tokens.shape[:2]
        weight = valid.float()
        pred, pred_p = self.action_predictor(
            tokens[:, :-1], actions[:, :-1], None if proprio is None else proprio[:, :-1]
        )
        err = (pred - tokens[:, 1:]).abs().mean((-1, -2))
        if proprio is not None:
            err = err + (pred_p - proprio[:, 1:]).abs().mean(-1)
        teacher = (err * weight).sum() / weight.sum().clamp_min(1.0)
        steps = min(self.config.rollout_steps, t - 1)
        if steps == 0:
            return teacher, torch.zeros((), device=tokens.device)
        ctx, ctx_p, rolled = tokens[:, :1], None if proprio is None else proprio[:, :1], []
        for k in range(steps):
            out, out_p = self.action_predictor(ctx, actions[:, : k + 1], ctx_p)
            step_err = (out[:, -1] - tokens[:, k + 1]).abs().mean((-1, -2))
            if proprio is not None:
                step_err = step_err + (out_p[:, -1] - proprio[:, k + 1]).abs().mean(-1)
            alive = weight[:, : k + 1].prod(1)  # every transition up to k+1 is real
            rolled.append((step_err * alive).sum() / alive.sum().clamp_min(1.0))
            ctx = torch.cat([ctx, out[:, -1:]], dim=1)
            if proprio is not None:
                ctx_p = torch.cat([ctx_p, out_p[:, -1:]], dim=1)
        return teacher, torch.stack(rolled).mean()

    def loss_groups(self, batch: TensorDict) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        obs, mask, is_first = batch["obs"], batch["mask"].to(self.device), batch["is_first"].to(self.device)
        if batch["action"].shape[1] < 2:
            raise ValueError("vjepa2 trains on windows of at least 2 frames (data.window >= 2)")
        self._check(obs, 2)
        seed = int(torch.randint(0, 2**62, ()))
        generator = torch.Generator().manual_seed(seed)
        groups: dict[str, torch.Tensor] = {}
        metrics: dict[str, float] = {}
        if self.learns_encoder:
            groups["jepa"] = self.config.jepa_weight * self.jepa_loss(obs, generator)
            metrics["jepa_l1"] = float(groups["jepa"].detach()) / self.config.jepa_weight
        with torch.no_grad():
            tokens = self.encode_frames(obs)
        valid = mask[:, 1:] & ~is_first[:, 1:]
        teacher, rollout = self.ac_losses(tokens, self._norm_action(batch["action"]), self._proprio(obs, 2), valid)
        groups["ac"] = self.config.ac_weight * (teacher + rollout)
        metrics.update(ac_teacher_l1=float(teacher.detach()), ac_rollout_l1=float(rollout.detach()))
        return groups, metrics

    @torch.no_grad()
    def surprise(self, obs: Observation, context_slots: int | None = None) -> torch.Tensor:
        """Per-clip surprise ``[B]`` of clips ``[B, T, ...]`` (V-JEPA's intuitive-physics measure): the masked
        predictor sees the first ``context_slots`` time slots (default: half) and predicts the target encoder's
        latents of the rest; the L1 error, averaged over the predicted tokens and the cameras."""
        if not self.learns_encoder:
            raise ValueError("surprise needs the masked predictor (a vjepa2 model trained with train_encoder=true)")
        errors = []
        for key in self.cameras:
            x = self._clips(obs, key)
            t = x.shape[1] - x.shape[1] % self.tubelet
            grid = self.encoder.grid(t)
            if grid[0] < 2:
                raise ValueError(f"surprise needs clips of at least 2 tubelets ({2 * self.tubelet} frames), got {t}")
            keep = context_slots if context_slots is not None else grid[0] // 2
            if not 1 <= keep < grid[0]:
                raise ValueError(f"context_slots must be in [1, {grid[0] - 1}], got {keep}")
            per_slot, b = grid[1] * grid[2], x.shape[0]
            ctx = torch.arange(keep * per_slot, device=x.device)[None].expand(b, -1)
            tgt = torch.arange(keep * per_slot, grid[0] * per_slot, device=x.device)[None].expand(b, -1)
            targets = target_norm(self.target_encoder(x[:, :t]))[:, keep * per_slot :]
            pred = self.predictor(self.encoder(x[:, :t], keep=ctx), ctx, tgt, grid)
            errors.append((pred - targets).abs().mean((1, 2)))
        return torch.stack(errors).mean(0)

    def on_train_step_end(self, step: int) -> None:
        if self.learns_encoder:
            c = self.config
            ema_update(
                self.target_encoder,
                self.encoder,
                ema_momentum(step, c.ema_momentum, c.ema_momentum_end, c.ema_ramp_steps),
            )


__all__ = ["VJEPA2WorldModel", "is_camera", "target_norm"]
