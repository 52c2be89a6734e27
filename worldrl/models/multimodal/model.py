"""``MultimodalWorldModel``: the ``multimodal`` family, ``TransformerWorldModel`` behind the worldrl protocol.

Observations: one camera (``observation.images.*``), optionally ``observation.audio`` (one feature vector per frame)
and ``observation.state`` (supervises the physics head). A task with one image key exchanges plain frames; with
audio/state it is keyed (``TaskSpec.keyed``) and exchanges TensorDicts.

The simulator state (batch ``[B]``) is a window of the last ``context_length`` steps: frame ``codes [C, N]`` and
the frames they code ``frames [C, C_img, img, img]`` (observed, or decoded), normalised ``audio [C, F]``, ``phys [C, S]`` and previous actions ``prev_action [C, A]``, ``valid [C]`` (False
before the episode start), plus the transformer's output at the newest step ``h [L, D]``, the newest frame
``frame [C, img, img]`` (observed, or decoded over the previous one: ``reference_frame``), ``audio_mean [F]`` (the
newest step's predicted mean audio; the observed audio after ``observe``) and the ``reward`` / ``terminal_logit`` of
the transition that led here. ``imagine(state_t, a_t)`` reads the next frame's code distribution and audio mixture
from ``(h_t, a_t)``, samples both with the generator (argmax without one), appends the step and reruns the causal
transformer over the window for ``h_{t+1}``. Reward and termination of transition t are read from
``(h_t, a_t)`` too, so every recorded row (the last one of an episode included) trains them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDict

from worldrl.errors import ModelConfigurationError
from worldrl.models.base import Capabilities, WorldModel
from worldrl.models.multimodal import audio_mixture
from worldrl.models.multimodal.config import MultimodalConfig
from worldrl.models.multimodal.loss import MultimodalLoss, masked_mean
from worldrl.models.multimodal.physics import STATE_LAYOUTS, StateLayout, physics_terms, velocity_consistency
from worldrl.models.multimodal.transformer_world_model import TransformerWorldModel, sample_audio, sample_codes
from worldrl.models.task_spec import TaskSpec
from worldrl.nn.mlp import mlp
from worldrl.nn.normalizer import Normalizer

AUDIO_KEY = "observation.audio"
STATE_KEY = "observation.state"
_NO_TERMINAL_LOGIT = -20.0
_BATCH_KEYS = ("obs", "action", "reward", "terminated", "is_first", "mask")


def _is_image(feature: dict[str, Any]) -> bool:
    return feature.get("dtype") in ("image", "video")


class MultimodalWorldModel(WorldModel):
    """The ``multimodal`` family: video (+ audio + state) transformer over FSQ frame codes."""

    capabilities = Capabilities(
        can_decode=True, predicts_reward=True, predicts_terminal=True, recurrent=True, stochastic=True
    )
    config: MultimodalConfig

    @classmethod
    def observation_keys(cls, features: dict[str, dict[str, Any]], requested: list[str] | None) -> list[str]:
        """The first camera, then ``observation.audio`` and ``observation.state`` when the dataset has them."""
        if requested:
            keys = super().observation_keys(features, requested)
        else:
            cameras = [k for k, f in features.items() if k.startswith("observation") and _is_image(f)]
            if not cameras:
                raise ValueError(
                    f"the multimodal family needs a camera (observation.images.*); features: {sorted(features)}"
                )
            keys = [cameras[0], *(k for k in (AUDIO_KEY, STATE_KEY) if k in features)]
        if sum(_is_image(features[k]) for k in keys) != 1:
            raise ValueError(f"the multimodal family observes exactly one camera, got keys {keys}")
        return keys

    def __init__(self, config: MultimodalConfig, task: TaskSpec) -> None:
        super().__init__(config, task)
        spaces = task.key_spaces()
        cameras = task.image_keys
        if len(cameras) != 1:
            raise ModelConfigurationError(f"multimodal needs exactly one camera key, the task observes {task.obs_keys}")
        self.image_key = cameras[0]
        height, width, channels = spaces[self.image_key].shape
        if channels != config.in_channels:
            raise ModelConfigurationError(
                f"{self.image_key} has {channels} channels but in_channels={config.in_channels}"
            )
        self.frame_hw = (height, width)
        unknown = [k for k in task.obs_keys if k not in (self.image_key, AUDIO_KEY, STATE_KEY)]
        if unknown:
            raise ModelConfigurationError(f"multimodal reads one camera, {AUDIO_KEY} and {STATE_KEY}; not {unknown}")
        self.has_audio = AUDIO_KEY in task.obs_keys
        if self.has_audio and spaces[AUDIO_KEY].shape != (config.audio_dim,):
            raise ModelConfigurationError(
                f"{AUDIO_KEY} has shape {spaces[AUDIO_KEY].shape} but audio_dim={config.audio_dim}"
            )
        state_dim = int(np.prod(spaces[STATE_KEY].shape)) if STATE_KEY in task.obs_keys else 0
        self.state_dim = state_dim
        layout = STATE_LAYOUTS.get(task.task_id or "")
        self.layout: StateLayout | None = layout if layout is not None and layout.state_dim == state_dim else None
        # the network gets the whole config (a subset once dropped fields it reads, such as greedy_audio)
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(MultimodalConfig)}
        self.net = TransformerWorldModel(
            **fields, action_dim=task.action_dim, state_dim=state_dim, state_layout=self.layout
        )
        self.action_norm = Normalizer((task.action_dim,))
        self.audio_norm = Normalizer((config.audio_dim,))
        self.state_norm = Normalizer((max(state_dim, 1),))
        self.reward_norm = Normalizer(())
        head_in = config.latent_dim + config.embed_dim
        self.reward_head = mlp(head_in, [config.embed_dim], 1)
        self.terminal_head = mlp(head_in, [config.embed_dim], 1)
        self.criterion = MultimodalLoss(
            reconstruction_weight=config.recon_weight,
            perceptual_weight=config.perceptual_weight,
            temporal_weight=config.temporal_weight,
            physics_weight=config.physics_weight,
            spectral_weight=config.spectral_weight,
            prediction_weight=config.prediction_weight,
            audio_weight=config.audio_weight,
            consistency_weight=config.consistency_weight,
            ssim_weight=config.ssim_weight,
        )

    def set_feature_net(self, net: torch.nn.Module | None) -> None:
        """A frozen local network for the perceptual term (never saved with the model)."""
        self.criterion.__dict__["feature_net"] = net
        if net is not None:
            net.requires_grad_(False).eval()

    # ================================================================= conversions
    def frames_to_model(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8-valued ``[..., H, W, C]`` -> float ``[..., C, img, img]`` in [0, 1]."""
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
        size = self.config.img_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x.reshape(*lead, *x.shape[1:])

    def model_to_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of ``frames_to_model``: ``[..., C, img, img]`` -> ``[..., H, W, C]`` in [0, 255] (rounded)."""
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])
        if tuple(flat.shape[-2:]) != self.frame_hw:
            flat = F.interpolate(flat, size=self.frame_hw, mode="bilinear", antialias=True, align_corners=False)
        out = (flat.clamp(0, 1) * 255).round().permute(0, 2, 3, 1)
        return out.reshape(*lead, *out.shape[1:])

    def _split(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(frames in model space, normalised audio, normalised state or None) of observations ``[B, T, ...]``."""
        image = obs[self.image_key] if self.task.is_keyed else obs
        frames = self.frames_to_model(image)
        lead = frames.shape[:2]
        if self.has_audio:
            audio = self.audio_norm(obs[AUDIO_KEY].float())
        else:
            audio = torch.zeros(*lead, self.config.audio_dim, device=frames.device)
        state = self.state_norm(obs[STATE_KEY].float().reshape(*lead, -1)) if self.state_dim else None
        return frames, audio, state

    def teacher_forced(
        self, obs: Any, action: torch.Tensor, mask: torch.Tensor, is_first: torch.Tensor
    ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The network over recorded windows ``[B, T, ...]`` as training sees them (every step observed): its
        outputs, and the frames, normalised audio and state it read. The loss, and benchmarks that inspect what
        training optimises (next-code distributions, the physics head's features), share this one pass."""
        frames, audio, phys = self._split(obs)
        mask, is_first = mask.bool(), is_first.bool()
        out = self.net(
            frames,
            audio,
            actions=self.action_norm(action.float()),
            state=phys,
            valid=mask,
            timesteps=self._timesteps(mask),
            is_first=is_first,
        )
        return out, frames, audio, phys

    @staticmethod
    def _timesteps(valid: torch.Tensor) -> torch.Tensor:
        """Position of each step counted from the first valid one (padding before it sits at 0 too)."""
        return (valid.long().cumsum(-1) - 1).clamp_min(0)

    # ================================================================= protocol: encoding
    def initial_state(self, batch_size: int) -> TensorDict:
        cfg, dev = self.config, self.device
        C = cfg.context_length
        state = {
            "codes": torch.zeros(batch_size, C, cfg.tokens_per_frame, dtype=torch.long, device=dev),
            "frames": torch.zeros(batch_size, C, cfg.in_channels, cfg.img_size, cfg.img_size, device=dev),
            "audio": torch.zeros(batch_size, C, cfg.audio_dim, device=dev),
            "prev_action": torch.zeros(batch_size, C, self.task.action_dim, device=dev),
            "valid": torch.zeros(batch_size, C, dtype=torch.bool, device=dev),
            "h": torch.zeros(batch_size, cfg.num_latent_tokens, cfg.embed_dim, device=dev),
            "frame": torch.zeros(batch_size, cfg.in_channels, cfg.img_size, cfg.img_size, device=dev),
            "audio_mean": torch.zeros(batch_size, cfg.audio_dim, device=dev),
            "reward": torch.zeros(batch_size, device=dev),
            "terminal_logit": torch.full((batch_size,), _NO_TERMINAL_LOGIT, device=dev),
        }
        if self.state_dim:
            state["phys"] = torch.zeros(batch_size, C, self.state_dim, device=dev)
        if self.config.tokenizer_anchor:  # the last observed frame and the steps imagined since it
            state["anchor"] = torch.zeros_like(state["frame"])
            state["anchor_age"] = torch.zeros(batch_size, dtype=torch.long, device=dev)
        return TensorDict(state, batch_size=[batch_size])

    def observe(self, obs: Any, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict:
        frames, audio, phys = self._split(obs)
        B, T = frames.shape[:2]
        codes, _ = self.net.encode_frames(frames, is_first=is_first)
        keep = (~is_first.bool()).float()[..., None]
        prev = self.action_norm(prev_action.float()) * keep
        episode = is_first.long().cumsum(1)
        C = self.config.context_length

        def windows(x: torch.Tensor, fill: float = 0) -> torch.Tensor:
            """``[B, T, ...]`` -> ``[B, T, C, ...]``: each step with the C-1 before it (padded with ``fill``)."""
            pad = torch.full((B, C - 1, *x.shape[2:]), fill, dtype=x.dtype, device=x.device)
            return torch.cat([pad, x], 1).unfold(1, C, 1).movedim(-1, 2)

        win_episode = windows(episode, -1)
        valid = win_episode == episode[..., None]
        state = {
            "codes": windows(codes),
            "frames": windows(frames),
            "audio": windows(audio),
            "prev_action": windows(prev),
            "valid": valid,
        }
        if phys is not None:
            state["phys"] = windows(phys)
        flat = {k: v.flatten(0, 1) for k, v in state.items()}
        h = self._context(flat)[:, -1].reshape(B, T, *self.net.latent_queries.shape)
        state["h"] = h
        state["frame"] = frames  # the observed frame (model space): the next imagined one is decoded over it
        if self.config.tokenizer_anchor:
            state["anchor"] = frames
            state["anchor_age"] = torch.zeros(B, T, dtype=torch.long, device=frames.device)
        state["audio_mean"] = audio
        # transition t-1 -> t: read from (h_{t-1}, a_{t-1}); nothing led to an episode's first step
        shifted = None if phys is None else torch.cat([phys[:, :1], phys[:, :-1]], 1)
        feature = self.net.predict_next(torch.cat([h[:, :1], h[:, :-1]], 1), prev, shifted)["feature"]
        first = is_first.bool()
        reward = self.reward_norm.denormalize(self.reward_head(feature).squeeze(-1))
        state["reward"] = torch.where(first, torch.zeros_like(reward), reward)
        terminal = self.terminal_head(feature).squeeze(-1)
        state["terminal_logit"] = torch.where(first, torch.full_like(terminal, _NO_TERMINAL_LOGIT), terminal)
        return TensorDict(state, batch_size=[B, T])

    def _context(self, window: dict[str, torch.Tensor]) -> torch.Tensor:
        """Transformer output ``[B, C, L, D]`` of a window dict (``codes``, ``audio``, ``phys``, ``prev_action``)."""
        return self.net.context(
            self.net.code_features(window["codes"]),
            window["frames"],
            window["audio"],
            window.get("phys"),
            window["prev_action"],
            timesteps=self._timesteps(window["valid"]),
            valid=window["valid"],
        )

    # ================================================================= protocol: dynamics
    def imagine(self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None = None) -> TensorDict:
        B = state.batch_size[0]
        if action.dim() != 2 or tuple(action.shape) != (B, self.task.action_dim):
            raise ValueError(f"imagine: action must be [B={B}, {self.task.action_dim}], got {tuple(action.shape)}")
        a = self.action_norm(action.float())
        phys = state["phys"][:, -1:] if self.state_dim else None
        nxt = self.net.predict_next(
            state["h"][:, None], a[:, None], phys, state["audio"][:, -1:], state["codes"][:, -1:]
        )
        codes = sample_codes(nxt["logits"][:, 0], generator)
        sound = sample_audio(
            nxt["audio_logits"][:, 0], nxt["audio_components"][:, 0], generator, self.config.greedy_audio
        )
        feature = nxt["feature"][:, 0]

        def push(window: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return torch.cat([window[:, 1:], value[:, None].to(window.dtype)], 1)

        anchor = state.get("anchor", None)
        age = state.get("anchor_age", None)
        frame = self.net.decode_step(codes, state["frame"], anchor, age)
        out = {
            "codes": push(state["codes"], codes),
            "frames": push(state["frames"], frame),
            "audio": push(state["audio"], sound),
            "prev_action": push(state["prev_action"], a),
            "valid": push(state["valid"], torch.ones(B, dtype=torch.bool, device=a.device)),
        }
        if self.state_dim:
            guess = nxt["state"][:, 0] if "state" in nxt else state["phys"][:, -1]
            out["phys"] = push(state["phys"], guess)
        out["h"] = self._context(out)[:, -1]
        out["frame"] = frame
        if anchor is not None:
            out["anchor"], out["anchor_age"] = anchor, age + 1
        out["audio_mean"] = nxt["audio"][:, 0]
        out["reward"] = self.reward_norm.denormalize(self.reward_head(feature).squeeze(-1))
        out["terminal_logit"] = self.terminal_head(feature).squeeze(-1)
        return TensorDict(out, batch_size=state.batch_size)

    # ================================================================= protocol: read-outs
    def decode(self, state: TensorDict) -> Any:
        batch = tuple(state.batch_size)
        frames = self.model_to_frames(state["frame"]).reshape(*batch, *self.frame_hw, -1)
        if not self.task.is_keyed:
            return frames
        out = {self.image_key: frames}
        if self.has_audio:
            out[AUDIO_KEY] = self.audio_norm.denormalize(state["audio"][..., -1, :])
        if self.state_dim:
            shape = self.task.key_space(STATE_KEY).shape
            out[STATE_KEY] = self.state_norm.denormalize(state["phys"][..., -1, :]).reshape(*batch, *shape)
        return TensorDict(out, batch_size=batch, device=frames.device)

    def latent(self, state: TensorDict) -> torch.Tensor:
        return self.net.latent(state["h"])

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # ================================================================= training
    def loss_groups(self, batch: TensorDict) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        missing = [k for k in _BATCH_KEYS if k not in batch.keys()]
        if missing:
            raise ValueError(f"multimodal batch is missing key(s) {missing}; it needs {list(_BATCH_KEYS)}")
        mask, is_first = batch["mask"].bool(), batch["is_first"].bool()
        out, frames, audio, phys = self.teacher_forced(batch["obs"], batch["action"], mask, is_first)
        nxt = out["next"]
        pair = mask[:, 1:] & mask[:, :-1] & ~is_first[:, 1:]
        outputs = {
            "recon_video": out["reconstruction"]["video"],
            "recon_audio": out["reconstruction"]["audio"],
            "logits": nxt["logits"][:, :-1],
            "next_audio": nxt["audio"][:, :-1],
            **{k: nxt[k][:, :-1] for k in ("audio_logits", "audio_components", "audio_log_scales")},
        }
        targets = {
            "video": frames,
            "audio": audio,
            "codes": out["codes"][:, 1:],
            "next_audio": audio[:, 1:],
            "mask": mask,
            "pair_mask": pair,
        }
        if "state" in nxt:
            outputs["next_state"], targets["next_state"] = nxt["state"][:, :-1], phys[:, 1:]
            if self.layout is not None:
                real = self.state_norm.denormalize(nxt["state"][:, :-1])
                outputs["consistency"] = velocity_consistency(real, self.layout, pair[:, 1:] & pair[:, :-1])
                outputs["physics_terms"] = physics_terms(
                    self.net.physics, nxt["physics_feature"], phys, pair, self.config.physics_rollout_steps
                )
        if self.config.audio_rollout_steps and self.has_audio:  # the head reads its own spectrum in a rollout
            outputs["audio_rollout"] = audio_mixture.rollout_error(
                self.net.audio_mixture,
                nxt["feature"].detach(),
                audio,
                pair,
                self.config.audio_rollout_steps,
                self.config.greedy_audio,
                nxt.get("audio_cue"),
            )
        total, terms = self.criterion(outputs, targets)
        feature = nxt["feature"]
        heads = masked_mean(
            (self.reward_head(feature).squeeze(-1) - self.reward_norm(batch["reward"].float())).pow(2), mask
        ) + masked_mean(
            F.binary_cross_entropy_with_logits(
                self.terminal_head(feature).squeeze(-1), batch["terminated"].float(), reduction="none"
            ),
            mask,
        )
        metrics = {name: float(value.detach()) for name, value in terms.items()}
        metrics["heads"] = float(heads.detach())
        with torch.no_grad():
            metrics["code_accuracy"] = float(
                masked_mean((nxt["logits"][:, :-1].argmax(-1) == out["codes"][:, 1:]).float(), pair)
            )
            metrics["recon_psnr"] = float(
                -10 * torch.log10(masked_mean((out["reconstruction"]["video"] - frames).pow(2), mask).clamp_min(1e-10))
            )
        return {"world_model": total, "heads": heads}, metrics

    def fit_normalization(self, stats: dict[str, dict[str, Any]]) -> None:
        """Action and reward statistics; audio and state from their keys' entries (``obs/<key>``)."""
        targets = {"action": self.action_norm, "reward": self.reward_norm}
        targets[f"obs/{AUDIO_KEY}"] = self.audio_norm
        if self.state_dim:
            targets[f"obs/{STATE_KEY}"] = self.state_norm
        for key, normalizer in targets.items():
            if key in stats:
                normalizer.fit_stats(stats[key])
        if self.net.physics is not None:  # the head integrates velocities in real units
            self.net.physics.set_state_stats(self.state_norm.mean, self.state_norm.std + self.state_norm.eps)


__all__ = ["AUDIO_KEY", "STATE_KEY", "MultimodalWorldModel"]
