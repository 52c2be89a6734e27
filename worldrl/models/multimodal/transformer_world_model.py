"""``TransformerWorldModel``: the document's video + audio transformer, over codes of a learned FSQ frame tokenizer.

Per step t the model sees the frame's codes (one per patch; with ``config.reference_frame`` they say how each patch
changed since the frame before), the frame's pixels (what the patch holds), the audio features, optionally the
normalised state vector and the previous action a_{t-1}:

1. ``encode_vision``: codes and pixels -> patch tokens ``[B, T*N, D]`` (FSQ vector -> linear, + a strided conv of
   the patch's pixels, + spatio-temporal position); ``encode_audio``: features -> ``[B, T, D]``.
2. Audio and vision are fused by two ``CrossModalAttention`` layers (audio attends to the step's patches, patches
   attend to the audio token).
3. ``num_latent_tokens`` learned queries summarise each step's tokens (patches, audio, state, previous action).
4. A causal temporal transformer (``depth`` blocks) runs over the latent tokens of all steps: step t sees steps
   <= t only. Its output at t, ``h_t [B, L, D]``, is the model's state.
5. Read-outs from ``h_t`` and the action a_t: the next frame's code logits (``decode_depth`` blocks of patch
   queries attending to ``h_t``), the next audio as a mixture of ``audio_components`` spectra around the current
   one (``audio_mixture``), the next (normalised) state (physics head); and the reconstruction of step t's audio.
   The frame reconstruction is the tokenizer's decode of step t's codes over frame t-1 (``decode_step``).

Codes are predictive (P-frame) codes: frame t's codes are encoded relative to frame t-1 (``encode_frames``), and a
clip's first frame relative to the frame before the clip, or to itself when there is none (its "nothing changed"
codes), so every step's tokens mean the same thing wherever a window starts.

Time alignment: ``actions[:, t]`` is the action taken at step t; the prediction made at t is for step t+1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from worldrl.errors import ConfigError, ModelConfigurationError
from worldrl.models.multimodal import audio_mixture, fsq
from worldrl.models.multimodal.attention import CrossModalAttention
from worldrl.models.multimodal.blocks import TransformerBlock, block_causal_mask
from worldrl.models.multimodal.config import MultimodalConfig
from worldrl.models.multimodal.physics import PhysicsHead, StateLayout
from worldrl.models.multimodal.positional import SpatioTemporalEncoding
from worldrl.models.multimodal.tokenizer import FrameTokenizer
from worldrl.nn.mlp import mlp


@dataclass
class NextStep:
    """What the model predicts for the step after a context (the generator's sampling interface)."""

    logits: torch.Tensor
    """``[B, N, V]`` unnormalised log-probabilities of each patch's code in the next frame (independent given
    the context)."""
    audio: torch.Tensor
    """``[B, F]`` the next step's audio features (the conditional mean of the mixture)."""
    audio_logits: torch.Tensor
    """``[B, K]`` unnormalised log-probabilities of the audio mixture's components."""
    audio_components: torch.Tensor
    """``[B, K, F]`` the components' means (sampling picks one; greedy the most likely)."""
    state: torch.Tensor | None
    """``[B, S]`` the next normalised state (physics head), when the model has one."""
    latent: torch.Tensor
    """``[B, latent_dim]`` the context's state feature."""


COPY_PRIOR = 4.0
"""Initial copy logit: before training, a patch keeps its code with probability ~e^4 / (e^4 + V) (5% of 1000)."""


class TransformerWorldModel(nn.Module):
    """The document's constructor, plus ``action_dim`` / ``state_dim`` (0 = none) for action conditioning and the
    physics head, ``state_layout`` (where positions/velocities sit in the state: the physics head then integrates
    velocities, zero residual = constant velocity) and the tokenizer/encoding knobs of ``MultimodalConfig``."""

    def __init__(
        self,
        img_size: int = 256,
        patch_size: int = 16,
        in_channels: int = 3,
        audio_dim: int = 128,
        audio_seq_len: int = 256,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        latent_dim: int = 512,
        num_latent_tokens: int = 32,
        decode_depth: int = 8,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        use_physics_loss: bool = True,
        physics_embed_dim: int = 128,
        *,
        action_dim: int = 0,
        state_dim: int = 0,
        state_layout: StateLayout | None = None,
        **extra: Any,
    ) -> None:
        super().__init__()
        try:
            cfg = MultimodalConfig(
                img_size=img_size,
                patch_size=patch_size,
                in_channels=in_channels,
                audio_dim=audio_dim,
                audio_seq_len=audio_seq_len,
                embed_dim=embed_dim,
                depth=depth,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                latent_dim=latent_dim,
                num_latent_tokens=num_latent_tokens,
                decode_depth=decode_depth,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                use_physics_loss=use_physics_loss,
                physics_embed_dim=physics_embed_dim,
                **extra,
            )
        except (ConfigError, TypeError) as err:
            raise ModelConfigurationError(str(err).replace("MultimodalConfig.", "TransformerWorldModel ")) from None
        if action_dim < 0 or state_dim < 0:
            raise ModelConfigurationError(f"action_dim and state_dim must be >= 0, got {action_dim}, {state_dim}")
        self.config, self.action_dim, self.state_dim = cfg, action_dim, state_dim
        D, heads, drop, attn_drop = cfg.embed_dim, cfg.num_heads, cfg.drop_rate, cfg.attn_drop_rate
        L, g = cfg.num_latent_tokens, cfg.grid_size

        def block(cross: bool = False) -> TransformerBlock:
            return TransformerBlock(D, heads, cfg.mlp_ratio, drop, attn_drop, cross=cross)

        self.tokenizer = FrameTokenizer(
            cfg.in_channels,
            cfg.patch_size,
            cfg.fsq_levels,
            cfg.tokenizer_channels,
            cfg.tokenizer_refine_channels,
            anchor=cfg.tokenizer_anchor,
            flow=cfg.tokenizer_flow,
        )
        self.skip_code = math.prod(cfg.fsq_levels) if cfg.uses_skip else None
        self.code_embed = nn.Linear(len(cfg.fsq_levels) + int(cfg.uses_skip), D)  # FSQ vector (+ SKIP flag)
        # the pixels of each patch: the codes say what changed, these say what is there
        self.frame_embed = nn.Conv2d(cfg.in_channels, D, cfg.patch_size, cfg.patch_size)
        self.audio_embed = nn.Linear(cfg.audio_dim, D)
        self.state_embed = nn.Linear(state_dim, D) if state_dim else None
        self.prev_action_embed = nn.Linear(action_dim, D) if action_dim else None
        self.action_embed = nn.Linear(action_dim, D) if action_dim else None
        self.positions = SpatioTemporalEncoding(D, cfg.audio_seq_len, max(g, L + 3), learnable=cfg.learnable_positions)
        self.audio_to_vision = CrossModalAttention(D, heads, attn_drop, cfg.cross_modal_temperature)
        self.vision_to_audio = CrossModalAttention(D, heads, attn_drop, cfg.cross_modal_temperature)
        self.latent_queries = nn.Parameter(torch.randn(L, D) * 0.02)
        self.summarizer = block(cross=True)
        self.temporal = nn.ModuleList([block() for _ in range(cfg.depth)])
        self.temporal_norm = nn.LayerNorm(D)
        self.to_latent = nn.Sequential(nn.Linear(D, cfg.latent_dim), nn.LayerNorm(cfg.latent_dim))
        self.patch_queries = nn.Parameter(torch.randn(cfg.tokens_per_frame, D) * 0.02)
        self.predictor = nn.ModuleList([block(cross=True) for _ in range(cfg.decode_depth)])
        self.code_head = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, cfg.vocab_size))
        self.copy_gate = nn.Linear(D, 1)  # per patch: the logit added to the current code (keep the patch)
        nn.init.zeros_(self.copy_gate.weight)
        nn.init.constant_(self.copy_gate.bias, COPY_PRIOR)
        head_in = cfg.latent_dim + D
        K, F_ = cfg.audio_components, cfg.audio_dim
        # component logits, mean changes, log-scales, from the features and the current spectrum: a ringing contact
        # decays in proportion to its level, which the shared features (not trained for audio) do not carry
        self.audio_next = mlp(head_in + F_, [D], K * (1 + 2 * F_))
        self.audio_recon = mlp(cfg.latent_dim, [D], cfg.audio_dim)
        physics_in = head_in if cfg.physics_context == "feature" else action_dim
        self.physics = (
            PhysicsHead(
                physics_in + state_dim,
                cfg.physics_embed_dim,
                state_dim,
                state_layout,
                cfg.physics_contact_radius,
                cfg.physics_contact_features,
            )
            if cfg.use_physics_loss and state_dim
            else None
        )
        self.audio_cue = None
        if cfg.audio_state_cue:
            if self.physics is None:
                raise ModelConfigurationError(
                    "audio_state_cue reads the physics head: it needs use_physics_loss and a state (state_dim > 0)"
                )
            self.audio_cue = mlp(self.physics.cue_dim, [D], K)
            nn.init.zeros_(self.audio_cue[-1].weight)  # starts as the mixture without the cue
            nn.init.zeros_(self.audio_cue[-1].bias)

    # ------------------------------------------------------------------ sizes
    @property
    def vocab_size(self) -> int:
        """Codes per patch (product of the FSQ levels)."""
        return self.config.vocab_size

    @property
    def tokens_per_frame(self) -> int:
        return self.config.tokens_per_frame

    # ------------------------------------------------------------------ input checks
    def check_inputs(self, video: torch.Tensor, audio: torch.Tensor | None = None) -> None:
        """One-line ``ModelConfigurationError`` for a video of the wrong rank/size or audio that does not match."""
        cfg = self.config
        want = f"[B, T, {cfg.in_channels}, {cfg.img_size}, {cfg.img_size}]"
        if video.dim() != 5:
            raise ModelConfigurationError(f"video must be {want} (rank 5), got shape {tuple(video.shape)}")
        if tuple(video.shape[2:]) != (cfg.in_channels, cfg.img_size, cfg.img_size):
            raise ModelConfigurationError(
                f"video frames must be {want} for img_size={cfg.img_size}, patch_size={cfg.patch_size}, "
                f"got {tuple(video.shape)}"
            )
        if audio is not None:
            self.check_audio(audio, video.shape[:2])

    def check_audio(self, audio: torch.Tensor, batch_steps: Any) -> None:
        b, t = tuple(batch_steps)
        if audio.dim() != 3 or audio.shape[-1] != self.config.audio_dim:
            raise ModelConfigurationError(
                f"audio must be [B, T, {self.config.audio_dim}] (audio_dim), got shape {tuple(audio.shape)}"
            )
        if tuple(audio.shape[:2]) != (b, t):
            raise ModelConfigurationError(
                f"audio has {tuple(audio.shape[:2])} (batch, frames) but the video has {(b, t)}: one audio "
                "feature vector per video frame"
            )

    # ------------------------------------------------------------------ tokenizer
    def encode_frames(
        self, video: torch.Tensor, reference: torch.Tensor | None = None, is_first: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``video [B, T, C, H, W]`` in [0, 1] -> (codes ``[B, T, N]`` long, quantised ``[B, T, N, d]``): frame t
        relative to frame t-1, the first frame relative to ``reference [B, C, H, W]`` (the frame before the clip) or
        to itself when None, and episode starts (``is_first [B, T]``) to themselves (``references``)."""
        self.check_inputs(video)
        b, t = video.shape[:2]
        refs = self.references(video, reference, is_first)
        codes, q = self.tokenizer.encode(video.flatten(0, 1), None if refs is None else refs.flatten(0, 1))
        codes, q = codes.reshape(b, t, -1), q.reshape(b, t, -1, q.shape[-1])
        if self.skip_code is not None:
            codes = torch.where(self.unchanged_patches(video, refs), self.skip_code, codes)
        return codes, q

    def unchanged_patches(self, video: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        """``[B, T, N]`` True where no pixel of the patch moved by ``config.skip_threshold`` from its reference."""
        g, p = self.config.grid_size, self.config.patch_size
        change = (video - refs).abs().amax(2)  # [B, T, H, W]
        per_patch = change.reshape(*change.shape[:2], g, p, g, p).amax((3, 5))
        return per_patch.flatten(2) < self.config.skip_threshold

    def references(
        self, video: torch.Tensor, first: torch.Tensor | None = None, is_first: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The frame each frame of ``video [B, T, C, H, W]`` is coded relative to: the one before it; for the first
        ``first`` or the frame itself, and for episode starts (``is_first [B, T]``) the frame itself; None without
        ``config.reference_frame`` (every frame coded alone)."""
        if not self.config.reference_frame:
            return None
        refs = torch.cat([(video[:, 0] if first is None else first)[:, None], video[:, :-1]], 1)
        if is_first is not None:
            refs = torch.where(is_first.bool()[:, :, None, None, None], video, refs)
        return refs

    def decode_codes(self, codes: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """``codes [B, T, N]`` -> frames ``[B, T, C, H, W]`` in [0, 1], each decoded over the one before it
        (``decode_step``), the first over ``reference [B, C, H, W]`` (the frame the codes continue, and the chain's
        anchor). Without ``config.reference_frame`` (or a reference) frames are painted from their codes alone."""
        if reference is None or not self.config.reference_frame:
            return self.decode_quantized(self.quantized(codes))
        frames, frame = [], reference
        for t in range(codes.shape[1]):
            frame = self.decode_step(codes[:, t], frame, reference, torch.full_like(codes[:, 0, 0], t))
            frames.append(frame)
        return torch.stack(frames, 1)

    def decode_step(
        self,
        codes: torch.Tensor,
        prev_frame: torch.Tensor,
        anchor: torch.Tensor | None = None,
        age: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frame ``[B, C, H, W]`` of ``codes [B, N]`` after ``prev_frame``: SKIP patches copy it, the tokenizer paints
        the others over it (keep mask); without ``config.reference_frame`` it paints from the codes alone. With
        ``config.tokenizer_anchor``: ``anchor [B, C, H, W]`` is the last real frame of the chain and ``age [B]`` the
        steps from it to ``prev_frame`` (None: ``prev_frame`` is real)."""
        g = self.config.grid_size
        q = self.quantized(codes).reshape(-1, g, g, len(self.config.fsq_levels))
        if not self.config.reference_frame:
            return self.tokenizer.decode(q)
        return self.copy_skipped(self.tokenizer.decode(q, prev_frame, anchor, age), prev_frame, codes)

    def copy_skipped(self, painted: torch.Tensor, reference: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``painted [N, C, H, W]`` with the patches whose code (``codes [N, tokens]``) is SKIP copied from
        ``reference``."""
        if self.skip_code is None:
            return painted
        g, p = self.config.grid_size, self.config.patch_size
        skip = (codes == self.skip_code).reshape(-1, 1, g, g).repeat_interleave(p, -2).repeat_interleave(p, -1)
        return torch.where(skip, reference, painted)

    def decode_quantized(self, q: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Quantised (or soft) code vectors ``[B, T, N, d]`` -> frames ``[B, T, C, H, W]``, each over its
        ``reference [B, T, C, H, W]`` (None: painted only)."""
        g = self.config.grid_size
        ref = reference.flatten(0, 1) if reference is not None and self.config.reference_frame else None
        frames = self.tokenizer.decode(q.reshape(-1, g, g, q.shape[-1]), ref)
        return frames.reshape(*q.shape[:2], *frames.shape[1:])

    def quantized(self, codes: torch.Tensor) -> torch.Tensor:
        """FSQ vectors ``[..., d]`` of codes ``[...]`` (the decoder's input; SKIP codes give zeros)."""
        fsq_codes = codes if self.skip_code is None else codes.clamp_max(self.skip_code - 1)
        q = fsq.quantized_from_codes(fsq_codes, self.config.fsq_levels, self.code_embed.weight.dtype)
        return q if self.skip_code is None else q * (codes != self.skip_code)[..., None]

    def code_features(self, codes: torch.Tensor) -> torch.Tensor:
        """The transformer's view of codes ``[...]``: the FSQ vector, plus a SKIP flag when skipping is on."""
        q = self.quantized(codes)
        if self.skip_code is None:
            return q
        return torch.cat([q, (codes == self.skip_code)[..., None].to(q.dtype)], -1)

    # ------------------------------------------------------------------ encoders
    def _vision_tokens(self, q: torch.Tensor, frames: torch.Tensor, timesteps: torch.Tensor | None) -> torch.Tensor:
        """Patch tokens ``[B, T, N, D]`` of code features ``q [B, T, N, d(+1)]`` (``code_features``) and the frames'
        pixels."""
        g = self.config.grid_size
        if tuple(frames.shape[:2]) != tuple(q.shape[:2]):
            raise ModelConfigurationError(
                f"frames have {tuple(frames.shape[:2])} (batch, steps) but the codes {tuple(q.shape[:2])}: one frame "
                "per step of codes"
            )
        pixels = self.frame_embed(frames.flatten(0, 1) * 2 - 1).flatten(2).transpose(1, 2)  # [BT, N, D]
        tokens = self.code_embed(q) + pixels.reshape(*q.shape[:3], -1).to(q.dtype)
        return self.positions(tokens, timesteps, grid=(g, g))

    def encode_vision(self, x: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        """``video [B, T, C, H, W]`` -> patch tokens ``[B, T*N, D]`` (of the tokenizer's quantised codes and the
        frames' pixels)."""
        codes, _ = self.encode_frames(x)
        return self._vision_tokens(self.code_features(codes), x, timesteps).flatten(1, 2)

    def encode_audio(self, audio: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        """``audio [B, T, F]`` -> ``[B, T, D]``."""
        self.check_audio(audio, audio.shape[:2])
        return self.positions(self.audio_embed(audio)[:, :, None], timesteps).squeeze(2)

    # ------------------------------------------------------------------ the causal context
    def context(
        self,
        q: torch.Tensor,
        frames: torch.Tensor,
        audio: torch.Tensor,
        state: torch.Tensor | None = None,
        prev_actions: torch.Tensor | None = None,
        timesteps: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``h [B, T, L, D]``: step t's latent tokens after the causal temporal transformer (sees steps <= t).

        ``q [B, T, N, d(+1)]`` code features (``code_features``), ``frames [B, T, C, H, W]`` the frames they code (observed or decoded),
        ``audio [B, T, F]``, ``state [B, T, S]`` (normalised), ``prev_actions [B, T, A]`` (a_{t-1}, zero at episode
        starts), ``valid [B, T]`` (False: padding).
        """
        b, t, n, _ = q.shape
        D = self.config.embed_dim
        patches = self._vision_tokens(q, frames, timesteps).flatten(0, 1)  # [BT, N, D]
        sound = self.encode_audio(audio, timesteps).reshape(b * t, 1, D)
        sound = self.audio_to_vision(sound, patches)
        patches = self.vision_to_audio(patches, sound)
        extra = [sound]
        if self.state_embed is not None:
            extra.append(self.state_embed(self._need(state, "state", (b, t, self.state_dim))).reshape(b * t, 1, D))
        if self.prev_action_embed is not None:
            acts = self._need(prev_actions, "prev_actions", (b, t, self.action_dim))
            extra.append(self.prev_action_embed(acts).reshape(b * t, 1, D))
        tokens = torch.cat([patches, *extra], 1)
        latents = self.summarizer(self.latent_queries.expand(b * t, -1, -1), context=tokens)
        L = latents.shape[1]
        x = self.positions(latents.reshape(b, t, L, D), timesteps).reshape(b, t * L, D)
        mask = block_causal_mask(t, L, valid).to(x.device)
        for blk in self.temporal:
            x = blk(x, mask=mask)
        return self.temporal_norm(x).reshape(b, t, L, D)

    def _need(self, value: torch.Tensor | None, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if value is None:
            return torch.zeros(shape, device=self.latent_queries.device)
        if tuple(value.shape) != shape:
            raise ModelConfigurationError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
        return value.to(self.latent_queries.dtype)

    def latent(self, h: torch.Tensor) -> torch.Tensor:
        """The flat state feature ``[..., latent_dim]`` of latent tokens ``[..., L, D]``."""
        return self.to_latent(h.mean(-2))

    # ------------------------------------------------------------------ read-outs
    def predict_next(
        self,
        h: torch.Tensor,
        actions: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        codes: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Predictions for step t+1 from ``h [B, T, L, D]``, ``actions [B, T, A]`` (a_t), the normalised state
        ``state [B, T, S]`` (s_t, which the physics head updates), the current audio ``audio [B, T, F]`` (a_t's
        sound, which the audio mixture changes) and the current frame's codes ``codes [B, T, N]`` (each patch's
        query sees its code, and a per-patch copy logit is added to that code: keeping it is one decision of the
        distribution): ``logits [B, T, N, V]``, the audio mixture (``audio_logits
        [B, T, K]``, ``audio_components [B, T, K, F]``, ``audio_log_scales [B, T, K, F]``) and its mean ``audio
        [B, T, F]``, ``state [B, T, S]`` (with a physics head), ``latent [B, T, latent_dim]``, the heads' input
        ``feature [B, T, latent_dim + D]`` (latent and action embedding) and, with a physics head, what it read
        beside the state, ``physics_feature`` (``physics_context``)."""
        b, t, L, D = h.shape
        latent = self.latent(h)
        if self.action_embed is not None:
            act = self.action_embed(self._need(actions, "actions", (b, t, self.action_dim)))
        else:
            act = torch.zeros(b, t, D, device=h.device, dtype=h.dtype)
        context = torch.cat([h, act[:, :, None]], 2).flatten(0, 1)  # [BT, L+1, D]
        g = self.config.grid_size
        # the same queries at every step (no time position: a prediction depends on its context, not its index)
        queries = (self.patch_queries + self.positions.spatial((g, g)))[None] + act.flatten(0, 1)[:, None]
        if codes is not None:
            queries = queries + self.code_embed(self.code_features(codes)).flatten(0, 1)
        for blk in self.predictor:
            queries = blk(queries, context=context)
        logits = self.code_head(queries)
        if codes is not None:  # most patches keep their code: the copy logit makes that the easy, default choice
            logits = logits.scatter_add(-1, codes.flatten(0, 1)[..., None], self.copy_gate(queries).to(logits.dtype))
        out = {"logits": logits.reshape(b, t, g * g, -1), "latent": latent}
        feature = torch.cat([latent, act], -1)
        out["feature"] = feature
        if self.physics is not None:
            # a residual on the current state (with a layout: a velocity change, integrated; zero = constant velocity)
            now = self._need(state, "state", (b, t, self.state_dim))
            out["physics_feature"] = self.physics_input(feature, actions)
            out["state"], cue = self.physics.step_with_cue(out["physics_feature"], now)
            if self.audio_cue is not None:
                out["audio_cue"] = cue.detach()
        # the mixture's likelihood has gradients ~1/scale^2 (gradient norm 12-40 with it attached, ~3 before):
        # the audio head reads the shared features without training them
        current = self._need(audio, "audio", (b, t, self.config.audio_dim))
        out.update(self.audio_mixture(feature.detach(), current, out.get("audio_cue")))
        return out

    def physics_input(self, feature: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
        """What the physics head reads beside the state (``physics_context``) from the heads' ``feature [.., F]``
        and the normalised ``actions [.., A]``: the feature itself, or the actions."""
        if self.config.physics_context == "feature":
            return feature
        if not self.action_dim:
            return feature.new_zeros(*feature.shape[:-1], 0)
        return actions.to(feature.dtype)

    def audio_mixture(
        self, feature: torch.Tensor, current: torch.Tensor, cue: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The next audio's mixture (``audio_logits``, ``audio_components``, ``audio_log_scales`` and its mean
        ``audio``) from the heads' ``feature [.., latent_dim + D]``, the current normalised audio ``[.., F]`` and,
        with ``audio_state_cue``, the physics head's ``cue [.., cue_dim]`` (added to the component logits only)."""
        K, F_ = self.config.audio_components, self.config.audio_dim
        raw = self.audio_next(torch.cat([feature, current], -1))
        logits = raw[..., :K]
        if self.audio_cue is not None:
            if cue is None:
                raise ModelConfigurationError("audio_state_cue: the audio mixture needs the physics head's cue")
            logits = logits + self.audio_cue(cue)
        means = current[..., None, :] + raw[..., K : K + K * F_].unflatten(-1, (K, F_))
        log_scales = audio_mixture.bounded_log_scales(raw[..., K + K * F_ :].unflatten(-1, (K, F_)))
        return {
            "audio_logits": logits,
            "audio_components": means,
            "audio_log_scales": log_scales,
            "audio": audio_mixture.mixture_mean(logits, means),
        }

    def next_token_logits(
        self,
        codes: torch.Tensor,
        frames: torch.Tensor,
        audio: torch.Tensor,
        actions: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        timesteps: torch.Tensor | None = None,
    ) -> NextStep:
        """The distribution of the next frame's codes given a context of codes ``[B, T, N]`` and the frames they
        code ``[B, T, C, H, W]`` (see ``worldrl.models.multimodal``)."""
        if codes.dim() != 3 or codes.shape[-1] != self.tokens_per_frame:
            raise ModelConfigurationError(
                f"codes must be [B, T, {self.tokens_per_frame}] (tokens per frame), got {tuple(codes.shape)}"
            )
        self.check_inputs(frames)
        self.check_audio(audio, codes.shape[:2])
        acts = self._need(actions, "actions", (*codes.shape[:2], self.action_dim)) if self.action_dim else None
        prev = None if acts is None else torch.cat([torch.zeros_like(acts[:, :1]), acts[:, :-1]], 1)
        h = self.context(self.code_features(codes), frames, audio, state, prev, timesteps)[:, -1:]
        out = self.predict_next(
            h,
            None if acts is None else acts[:, -1:],
            None if state is None else state[:, -1:],
            audio[:, -1:],
            codes[:, -1:],
        )
        return NextStep(
            logits=out["logits"][:, 0],
            audio=out["audio"][:, 0],
            audio_logits=out["audio_logits"][:, 0],
            audio_components=out["audio_components"][:, 0],
            state=out["state"][:, 0] if "state" in out else None,
            latent=out["latent"][:, 0],
        )

    # ------------------------------------------------------------------ the document's forward
    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        future_steps: int = 0,
        timesteps: torch.Tensor | None = None,
        return_intermediates: bool = False,
        actions: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        future_actions: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        is_first: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """``video [B, T, C, H, W]`` in [0, 1], ``audio [B, T, F]`` -> a dict:

        * ``reconstruction``: ``{"video": [B, T, C, H, W], "audio": [B, T, F]}`` (tokenizer decode of the frame's
          codes, over the previous real frame with ``config.reference_frame``; audio read back from the latent);
        * ``next``: one-step predictions for steps 1..T (``logits``, ``audio``, ``state``, ``latent``);
        * ``codes`` ``[B, T, N]`` and ``quantized`` ``[B, T, N, d]``: the tokenizer's encoding (training targets);
        * ``future_video`` ``[B, K, C, H, W]`` / ``future_audio`` ``[B, K, F]`` (and ``future_state``,
          ``future_audio_mean``: the mixture means along the rollout) when ``future_steps = K > 0``: an
          autoregressive rollout after the last frame with ``future_actions [B, K, A]`` (zeros when None), greedy
          codes and audio components unless a ``generator`` is given (then sampled);
        * ``physics`` (with a physics head): ``{"next_state": [B, T, S]}`` normalised;
        * ``intermediates`` when asked: ``h`` ``[B, T, L, D]``, ``vision_tokens`` ``[B, T*N, D]``.

        ``actions [B, T, A]`` are the actions taken at each step, ``state [B, T, S]`` the normalised state,
        ``is_first [B, T]`` marks episode starts (their codes are relative to themselves, not the step before).
        """
        self.check_inputs(video, audio)
        if future_steps < 0:
            raise ModelConfigurationError(f"future_steps must be >= 0, got {future_steps}")
        b, t = video.shape[:2]
        codes, q = self.encode_frames(video, is_first=is_first)
        acts = self._need(actions, "actions", (b, t, self.action_dim)) if self.action_dim else None
        prev = None if acts is None else torch.cat([torch.zeros_like(acts[:, :1]), acts[:, :-1]], 1)
        # the tokenizer learns from reconstruction only: the dynamics must not bend the codes toward predictability
        h = self.context(self.code_features(codes), video, audio, state, prev, timesteps, valid)
        nxt = self.predict_next(h, acts, state, audio, codes)
        out: dict[str, Any] = {
            "reconstruction": {
                "video": self._reconstruct(q, codes, video, is_first),
                "audio": self.audio_recon(nxt["latent"]),
            },
            "next": nxt,
            "codes": codes,
            "quantized": q,
        }
        if "state" in nxt:
            out["physics"] = {"next_state": nxt["state"]}
        if future_steps:
            rolled = self._rollout(codes, video, audio, acts, state, future_steps, future_actions, generator)
            out.update(rolled)
        if return_intermediates:
            out["intermediates"] = {
                "h": h,
                "vision_tokens": self._vision_tokens(self.code_features(codes), video, timesteps).flatten(1, 2),
            }
        return out

    def _reconstruct(
        self, q: torch.Tensor, codes: torch.Tensor, video: torch.Tensor, is_first: torch.Tensor | None
    ) -> torch.Tensor:
        """Each frame decoded over the frame its codes are relative to (``references``), as ``decode_step`` does in
        a rollout: the real one, or with ``config.chained_reconstruction`` the reconstruction of it (detached; real at
        the window's first step and at episode starts); painted from the codes alone without
        ``config.reference_frame``."""
        refs = self.references(video, None, is_first)
        if refs is None:
            return self.decode_quantized(q)
        if not self.config.chained_reconstruction:
            painted = self.decode_quantized(q, refs).flatten(0, 1)
            return self.copy_skipped(painted, refs.flatten(0, 1), codes.flatten(0, 1)).reshape(refs.shape)
        g, restart = self.config.grid_size, is_first.bool() if is_first is not None else None
        frames, previous = [], refs[:, 0]
        anchor, since = refs[:, 0], torch.zeros_like(codes[:, 0, 0])  # the chain's real frame; steps since it
        for t in range(q.shape[1]):
            ref = previous
            if restart is not None:  # an episode start is coded against itself: a new chain
                ref = torch.where(restart[:, t, None, None, None], refs[:, t], previous)
                anchor = torch.where(restart[:, t, None, None, None], refs[:, t], anchor)
                since = torch.where(restart[:, t], 0, since)
            # the reference is frame t-1's reconstruction, t-1 - anchor steps on (the first: the anchor itself)
            age = (since - 1).clamp_min(0)
            painted = self.tokenizer.decode(q[:, t].reshape(-1, g, g, q.shape[-1]), ref, anchor, age)
            frame = self.copy_skipped(painted, ref, codes[:, t])
            frames.append(frame)
            previous, since = frame.detach(), since + 1
        return torch.stack(frames, 1)

    @torch.no_grad()
    def _rollout(
        self,
        codes: torch.Tensor,
        frames: torch.Tensor,
        audio: torch.Tensor,
        actions: torch.Tensor | None,
        state: torch.Tensor | None,
        steps: int,
        future_actions: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> dict[str, torch.Tensor]:
        b = codes.shape[0]
        if self.action_dim:
            future = self._need(future_actions, "future_actions", (b, steps, self.action_dim))
            actions = torch.cat([actions, future], 1)
        if self.state_dim and state is None:
            state = torch.zeros(*codes.shape[:2], self.state_dim, device=codes.device)
        window = self.config.audio_seq_len
        sounds, means, states = [], [], []
        anchor = frames[:, -1]  # the last real frame: every decoded frame may keep its pixels
        for k in range(steps):
            lo = max(0, codes.shape[1] - window)
            acts = None if actions is None else actions[:, lo : codes.shape[1]]
            st = None if state is None else state[:, lo:]
            nxt = self.next_token_logits(codes[:, lo:], frames[:, lo:], audio[:, lo:], acts, st)
            new = sample_codes(nxt.logits, generator)
            sound = sample_audio(nxt.audio_logits, nxt.audio_components, generator, self.config.greedy_audio)
            codes = torch.cat([codes, new[:, None]], 1)
            age = torch.full_like(new[:, 0], k)
            frames = torch.cat([frames, self.decode_step(new, frames[:, -1], anchor, age)[:, None]], 1)
            audio = torch.cat([audio, sound[:, None]], 1)
            if state is not None:
                guess = nxt.state if nxt.state is not None else state[:, -1]
                state = torch.cat([state, guess[:, None]], 1)
                states.append(guess)
            sounds.append(sound)
            means.append(nxt.audio)
        out = {
            "future_video": frames[:, -steps:],
            "future_audio": torch.stack(sounds, 1),
            "future_audio_mean": torch.stack(means, 1),
        }
        if states:
            out["future_state"] = torch.stack(states, 1)
        return out


def sample_codes(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Codes ``[..., N]`` from logits ``[..., N, V]``: argmax without a generator, else a categorical sample."""
    if generator is None:
        return logits.argmax(-1)
    probs = F.softmax(logits.float(), -1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1])


def sample_audio(
    logits: torch.Tensor,
    components: torch.Tensor,
    generator: torch.Generator | None = None,
    greedy: str = "mean",
) -> torch.Tensor:
    """The next audio ``[B, F]`` of a mixture (``logits [B, K]``, ``components [B, K, F]``): without a generator the
    greedy audio of rule ``greedy`` (``audio_mixture.GREEDY_AUDIO``), else a sampled component's mean."""
    if generator is None:
        return audio_mixture.greedy_audio(logits, components, greedy)
    return audio_mixture.component_means(components, audio_mixture.choose_components(logits, generator))


__all__ = ["NextStep", "TransformerWorldModel", "sample_audio", "sample_codes"]
