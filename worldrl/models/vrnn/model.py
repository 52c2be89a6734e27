"""DPGMM-VRNN world model: stick-breaking DP-GMM prior, LSTM dynamics, causal Perceiver context, attention schema.

Wiring (a recurrent latent model in the PlaNet/Dreamer sense, with the AIME components in their places):

* deterministic path  h_t = LSTM(h_{t-1}, [z_{t-1}, a_{t-1}])        (reset at ``is_first``)
* prior               p(z_t | h_t): the truncated stick-breaking DP Gaussian mixture
* posterior           q(z_t | h_t, e_t, c_t): e_t the frame embedding, c_t the causal Perceiver context of
                      frames t-W+1..t (both known for the whole sequence, so they are computed in one batched
                      call; only the h-dependent part of the posterior runs inside the time loop)
* attention schema    slot-attention maps A_t of the frame (trained by their own losses) and maps predicted from
                      h_t; the decoder reads the *predicted* maps, in training and in imagination alike
* read-outs           decoder p(o_t | h_t, z_t, Â_t); reward and continuation heads on (h, z); optional
                      heads for dataset vectors that are targets only (``supervision_keys``). With
                      ``reference_frame`` a pixel decoder paints a frame and a keep-mask that are blended with an
                      earlier real frame (``worldrl.models.vrnn.reference``): never o_t itself

Everything the decoder and the heads see passes either the recurrent state (built only from past latents and
actions) or the KL-priced latent z_t: there is no side channel from o_t. The KL of the mixture is balanced as in
DreamerV3 (``kl_dyn_weight`` trains the prior, ``kl_rep_weight`` the posterior) with ``free_nats`` per step; the
stick and Gamma terms that regularise the DP prior are logged apart from it.

Time indexing (the protocol's, see ``worldrl.models.base``). The state after observing step t holds h_t, c_t (the
LSTM's hidden and cell state), the posterior latent z_t and the predicted maps Â_t. ``imagine(state_t, a_t)``
steps the LSTM to h_{t+1}, takes z_{t+1} from the prior (a sample, or the mixture mean without a generator),
and reads reward / termination of the transition (o_t, a_t) from (h_{t+1}, z_{t+1}).

Training. The reward and continuation heads are trained on exactly what imagination produces: for every row t
the model takes one prior step from the posterior state t with action a_t and predicts ``reward[:, t]`` and
``terminated[:, t]`` (so the last row of an episode, which has no next observation, still trains them).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

from worldrl.models.base import Capabilities, WorldModel
from worldrl.models.task_spec import TaskSpec
from worldrl.models.vrnn import distributions as D
from worldrl.models.vrnn.attention_schema import AttentionSchema, attention_dynamics_loss, gram_loss, spatial_entropy
from worldrl.models.vrnn.codebook import VectorQuantizer, codebook_perplexity
from worldrl.models.vrnn.config import VRNNConfig
from worldrl.models.vrnn.decoders import PixelDecoder, VectorDecoder
from worldrl.models.vrnn.encoders import (
    PixelEncoder,
    PosteriorHead,
    VectorEncoder,
    model_to_pixels,
    pixels_to_model,
    resize_square,
)
from worldrl.models.vrnn.perceiver import CausalPerceiver
from worldrl.models.vrnn.prior import DPGMMPrior
from worldrl.models.vrnn.reference import ReferenceRefiner, composite, reference_frames, segment_start_indices
from worldrl.models.vrnn.supervision import SupervisionHead, supervision_dims
from worldrl.nn.mlp import mlp, orthogonal_init_
from worldrl.nn.normalizer import Normalizer
from worldrl.nn.ssim import frame_ssim

_TOKEN_BOTTLENECK = 16  # per-token width inside the token predictor: keeps it small for 64 image tokens
_NO_TERMINAL_LOGIT = -20.0  # the initial state is not terminal
_BATCH_KEYS = ("obs", "action", "reward", "terminated", "is_first", "mask")
_Z_CHECK_ROWS = 4  # sequences of the batch used for the "z used" diagnostic
_DECODE_CHUNK = 1024  # frames decoded at once: a 50-step rollout of 256 starts would need ~20 GB in one call


class DPGMMVRNNWorldModel(WorldModel):
    """The ``vrnn`` family (vector or pixel observations, chosen by the task's observation space)."""

    capabilities = Capabilities(
        can_decode=True, predicts_reward=True, predicts_terminal=True, recurrent=True, stochastic=True
    )
    config: VRNNConfig

    def __init__(self, config: VRNNConfig, task: TaskSpec) -> None:
        super().__init__(config, task)
        cfg = config
        self.is_pixel = task.is_pixel
        self.uses_reference = self.is_pixel and config.reference_frame
        for name in ("open_loop_ssim", "prior_recon_ssim"):
            if getattr(config, name) and not self.is_pixel:
                raise ValueError(f"vrnn: {name} scores frames; this task's observations are vectors (set it to 0)")
        if not self.is_pixel and len(task.obs_shape) != 1:
            raise ValueError(
                f"vrnn needs a vector (D,) or image (H, W, C) observation space, got shape {task.obs_shape}"
            )
        hid, z_dim, ctx = cfg.hidden_dim, cfg.latent_dim, cfg.context_dim
        logvar_range = (cfg.logvar_min, cfg.logvar_max)

        if self.is_pixel:
            self.encoder: nn.Module = PixelEncoder(task.obs_shape[-1], cfg)
        else:
            self.encoder = VectorEncoder(task.obs_shape[0], cfg)
            self.obs_norm = Normalizer(task.obs_shape)
        self.action_norm = Normalizer((task.action_dim,))
        self.reward_norm = Normalizer(())
        n_tok, tok_feat = self.encoder.n_tokens, self.encoder.token_features
        self.n_tokens = n_tok

        # Perceiver context over the frame tokens of a causal window (optionally vector-quantised).
        self.token_proj = nn.Linear(tok_feat, ctx)
        self.token_pos = nn.Parameter(torch.randn(n_tok, ctx) * 0.02)
        self.token_norm = nn.LayerNorm(ctx)
        self.codebook = (
            VectorQuantizer(cfg.codebook_size, ctx, cfg.commitment_weight, dead_fraction=cfg.codebook_dead_fraction)
            if cfg.use_codebook
            else None
        )
        self.perceiver = CausalPerceiver(ctx, cfg.num_latents, cfg.num_heads, cfg.context_window)
        self.token_predictor = nn.Sequential(
            mlp(hid, [hid], n_tok * _TOKEN_BOTTLENECK),
            nn.Unflatten(-1, (n_tok, _TOKEN_BOTTLENECK)),
            nn.Linear(_TOKEN_BOTTLENECK, ctx),
        )

        # Generative model.
        self.posterior = PosteriorHead(hid, hid + ctx, z_dim, logvar_range)
        self.prior = DPGMMPrior(hid, z_dim, cfg.max_components, hid, logvar_range)
        self.lstm = nn.LSTM(
            z_dim + task.action_dim, hid, num_layers=cfg.n_lstm_layers
        )  # weights; stepped by _lstm_step
        if cfg.use_orthogonal:
            orthogonal_init_(self.lstm)
        self.schema = (
            AttentionSchema(tok_feat, n_tok, hid, cfg.num_slots, cfg.slot_dim, cfg.slot_iterations)
            if cfg.use_attention_schema
            else None
        )
        slots = cfg.num_slots if cfg.use_attention_schema else 0
        if self.is_pixel:
            reference_channels = self.encoder.token_features + 1 if cfg.reference_features else 0
            self.decoder: nn.Module = PixelDecoder(task.obs_shape[-1], slots, cfg, reference_channels)
            self.refiner = (
                ReferenceRefiner(task.obs_shape[-1], cfg.reference_refiner_channels)
                if self.uses_reference and cfg.reference_refiner_channels
                else None
            )
        else:
            self.decoder = VectorDecoder(task.obs_shape[0], slots * n_tok, cfg)
        self.reference_embed = None
        if cfg.heads_read_reference:
            if not self.uses_reference:
                raise ValueError("vrnn: heads_read_reference needs a pixel task with reference_frame on")
            in_channels = self.encoder.token_features + 1  # as _reference_features returns them
            self.reference_embed = nn.Sequential(
                nn.Flatten(), nn.Linear(in_channels * cfg.feature_grid**2, hid), nn.SiLU()
            )
        head_in = hid + z_dim + (hid if cfg.heads_read_reference else 0)
        self.reward_head = mlp(head_in, [hid], 1)
        self.continue_head = mlp(head_in, [hid], 1)
        self.supervision = (
            SupervisionHead(
                hid + z_dim, hid, supervision_dims(cfg.supervision_keys, task.extra), motion=cfg.supervision_motion
            )
            if cfg.supervision_keys
            else None
        )
        # Fraction of beta in force (KL annealing); a buffer so a resumed or reloaded model keeps it.
        self.register_buffer("kl_scale", torch.tensor(0.0 if cfg.kl_anneal_steps else 1.0))

    # ================================================================= protocol: encoding
    def initial_state(self, batch_size: int) -> TensorDict:
        cfg, dev = self.config, self.device
        zeros = torch.zeros(batch_size, cfg.n_lstm_layers, cfg.hidden_dim, device=dev)
        state = {
            "h": zeros,
            "c": zeros.clone(),
            "z": torch.zeros(batch_size, cfg.latent_dim, device=dev),
            "reward": torch.zeros(batch_size, device=dev),
            "terminal_logit": torch.full((batch_size,), _NO_TERMINAL_LOGIT, device=dev),
        }
        if self.schema is not None:
            state["attention"] = self.schema.predict_log_maps(zeros[:, -1]).exp()
        if self.uses_reference:  # no real frame seen yet: decoded frames are painted whole
            state["reference"] = torch.zeros(batch_size, *self.task.obs_shape, dtype=torch.uint8, device=dev)
            state["has_reference"] = torch.zeros(batch_size, dtype=torch.bool, device=dev)
            state["reference_age"] = torch.zeros(batch_size, dtype=torch.long, device=dev)
        if self.reference_embed is not None:
            none = torch.zeros(1, *self.task.obs_shape[-1:], *self.task.obs_shape[:2], device=dev)
            embed = self._reference_embedding(none, torch.zeros(1, dtype=torch.bool, device=dev))
            state["reference_embed"] = embed.expand(batch_size, -1)
        return TensorDict(state, batch_size=[batch_size])

    def observe(self, obs: torch.Tensor, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict:
        self._check_sequence(obs, prev_action, is_first)
        seq = self._filter(
            obs, self.action_norm(prev_action.float()), is_first.bool(), stochastic=False, generator=None
        )
        h_top = seq["h"][..., -1, :]
        feat = torch.cat([h_top, seq["z"]], -1)
        embed = None
        if self.reference_embed is not None:  # each observed frame is the reference of what follows it
            B, T = obs.shape[:2]
            frames = pixels_to_model(obs.flatten(0, 1), None)  # as forward_sequence's targets
            present = torch.ones(B * T, dtype=torch.bool, device=obs.device)
            embed = self._reference_embedding(frames, present).reshape(B, T, -1)
        reward, terminal_logit = self._heads(feat, embed)
        state = {
            "h": seq["h"],
            "c": seq["c"],
            "z": seq["z"],
            "reward": self.reward_norm.denormalize(reward),
            "terminal_logit": terminal_logit,
        }
        if embed is not None:
            state["reference_embed"] = embed
        if self.schema is not None:
            state["attention"] = self.schema.predict_log_maps(h_top).exp()
        if self.uses_reference:  # the frame just observed is the reference of what is imagined from here
            state["reference"] = obs.float().round().clamp(0, 255).to(torch.uint8)
            state["has_reference"] = torch.ones(obs.shape[:2], dtype=torch.bool, device=obs.device)
            state["reference_age"] = torch.zeros(obs.shape[:2], dtype=torch.long, device=obs.device)
        return TensorDict(state, batch_size=list(obs.shape[:2]))

    # ================================================================= protocol: dynamics
    def imagine(self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None = None) -> TensorDict:
        if action.dim() != 2 or action.shape != (state.batch_size[0], self.task.action_dim):
            raise ValueError(
                f"imagine: action must be [B={state.batch_size[0]}, {self.task.action_dim}], got {tuple(action.shape)}"
            )
        stochastic = generator is not None
        h, c = self._lstm_step(
            state["h"], state["c"], state["z"], self._lstm_input_gates(self.action_norm(action.float()))
        )
        h_top = h[:, -1]
        prior = self.prior(h_top)
        z = prior.sample(prior.log_weights(stochastic, generator), generator, stochastic)
        feat = torch.cat([h_top, z], -1)
        embed = state["reference_embed"] if self.reference_embed is not None else None  # the same real frame
        reward, terminal_logit = self._heads(feat, embed)
        out = {
            "h": h,
            "c": c,
            "z": z,
            "reward": self.reward_norm.denormalize(reward),
            "terminal_logit": terminal_logit,
        }
        if embed is not None:
            out["reference_embed"] = embed
        if self.schema is not None:
            out["attention"] = self.schema.predict_log_maps(h_top).exp()
        if self.uses_reference:  # one step further from the last real frame
            out["reference"], out["has_reference"] = state["reference"], state["has_reference"]
            out["reference_age"] = state["reference_age"] + 1
        return TensorDict(out, batch_size=state.batch_size)

    # ================================================================= protocol: read-outs
    def decode(self, state: TensorDict) -> torch.Tensor:
        batch = tuple(state.batch_size)
        flat = state.reshape(-1)
        if self.is_pixel and flat.shape[0] > _DECODE_CHUNK:  # frames: bound the conv activations' memory
            parts = [self._decode_state(flat[i : i + _DECODE_CHUNK]) for i in range(0, flat.shape[0], _DECODE_CHUNK)]
            return torch.cat(parts).reshape(*batch, *self.task.obs_shape)
        return self._decode_state(flat).reshape(*batch, *self.task.obs_shape)

    def _decode_state(self, state: TensorDict) -> torch.Tensor:
        """``decode`` of a flat state ``[N]``: ``[N, *obs_shape]`` in task units."""
        feat = self._state_feat(state)
        maps = (
            state["attention"].reshape(feat.shape[0], self.config.num_slots, self.n_tokens)
            if self.schema is not None
            else None
        )
        reference = has_reference = age = None
        if self.uses_reference:
            reference = state["reference"].float().div(255.0).permute(0, 3, 1, 2)
            has_reference, age = state["has_reference"], state["reference_age"]
        x = self._decode(feat, maps, reference, has_reference, age)
        if self.is_pixel:
            height, width, _ = self.task.obs_shape
            return model_to_pixels(x, height, width)
        return self.obs_norm.denormalize(x)

    def latent(self, state: TensorDict) -> torch.Tensor:
        """(h, z), and with ``heads_read_reference`` the last real frame's embedding: what the reward head reads,
        so heads trained downstream (values, policies) see the same."""
        if self.reference_embed is None:
            return self._state_feat(state)
        return torch.cat([self._state_feat(state), state["reference_embed"]], -1)

    def _state_feat(self, state: TensorDict) -> torch.Tensor:
        """(h, z): what the decoder and the supervision heads read."""
        return torch.cat([state["h"][..., -1, :], state["z"]], -1)

    @property
    def latent_dim(self) -> int:
        extra = self.config.hidden_dim if self.config.heads_read_reference else 0
        return self.config.hidden_dim + self.config.latent_dim + extra

    # ================================================================= training
    def forward_sequence(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        is_first: torch.Tensor,
        stochastic: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, Any]:
        """Every intermediate of a sequence ``obs [B,T,...]`` with the actions *taken* there ``actions [B,T,A]``.

        Returns reconstructions and their ``targets`` (model space: normalised vectors, or [0, 1] images ``[B,T,C,S,S]``),
        latents (``z``, ``post_mean``, ``post_logvar``), the prior (``prior``: PriorParams with sticks, Gamma and
        components; ``log_pi``/``pi`` ``[B,T,K]``), LSTM states ``h``/``c`` ``[B,T,layers,H]``, the Perceiver
        ``context`` ``[B,T,D]``, frame ``tokens`` / ``codes`` / ``vq_loss``, ``token_pred`` (from h_t), attention maps
        ``attention_maps`` (of the frame) and ``attention_log_pred`` (from h_t, read by the decoder) ``[B,T,S,N]``
        (N = grid*grid image positions in row-major order, or observation dimensions), and the one-step predictions
        ``reward_pred`` (normalised units) and ``terminal_logit`` for ``reward[:, t]`` / ``terminated[:, t]``.
        """
        self._check_sequence(obs, actions, is_first)
        B, T = obs.shape[:2]
        a_norm = self.action_norm(actions.float())
        prev = torch.cat([torch.zeros_like(a_norm[:, :1]), a_norm[:, :-1]], dim=1)
        out = self._filter(obs, prev, is_first.bool(), stochastic, generator)
        h_top = out["h"][..., -1, :]
        prior = self.prior(h_top)
        out["prior"], out["log_pi"] = prior, prior.log_weights(stochastic, generator)
        out["pi"] = out["log_pi"].exp()
        maps = None
        if self.schema is not None:
            out["attention_maps"] = self._attention_maps(out["raw_tokens"])
            out["attention_log_pred"] = self.schema.predict_log_maps(h_top)
            maps = out["attention_log_pred"].exp()
        out["feat"] = torch.cat([h_top, out["z"]], -1)
        reference = has_reference = age = None
        if self.uses_reference:  # the loss is taken at the task's resolution, where the blend happens
            out["targets"] = pixels_to_model(obs.flatten(0, 1), None).reshape(B, T, *obs.shape[-1:], *obs.shape[2:4])
            out["reference"], out["has_reference"], out["reference_age"] = reference_frames(
                out["targets"], is_first.bool()
            )
            reference, has_reference, age = self._reference_rows(out, slice(None), slice(None))
            if self.reference_embed is not None:  # imagine(state_t) reads o_t as its reference
                frames = out["targets"].flatten(0, 1)
                present = torch.ones(B * T, dtype=torch.bool, device=obs.device)
                out["reference_embed"] = self._reference_embedding(frames, present).reshape(B, T, -1)
        recon = self._decode(
            out["feat"].flatten(0, 1), None if maps is None else maps.flatten(0, 1), reference, has_reference, age
        )
        out["reconstructions"] = recon.reshape(B, T, *recon.shape[1:])
        out["token_pred"] = self.token_predictor(h_top)
        out["action_norm"] = a_norm
        out.update(self._one_step(out, a_norm, stochastic, generator))
        return out

    def compute_total_loss(
        self, batch: TensorDict, stochastic: bool = True, generator: torch.Generator | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """All loss terms (masked means over valid steps) and the ``forward_sequence`` outputs.

        ``stochastic=False`` evaluates at the posterior means and mean sticks (a deterministic validation loss).
        ``kl_mixture`` is the mixture KL itself (information in z); ``kl_dyn`` / ``kl_rep`` are its balanced,
        free-nats-clipped training terms; ``kl_sticks`` / ``kl_gamma`` regularise the DP prior and carry no
        information about the observations.
        """
        obs, action, reward, terminated, is_first, mask = self._unpack(batch)
        cfg = self.config
        out = self.forward_sequence(obs, action, is_first, stochastic, generator)
        prior: Any = out["prior"]
        weight = mask.to(out["z"].dtype)
        weight = weight / weight.sum().clamp_min(1.0)
        mm = lambda x, _mask: (x * weight).sum()  # noqa: E731  D.masked_mean with the mask's weights built once
        sq_err = (out["reconstructions"] - out["targets"]).pow(2).flatten(2)
        z, mean, logvar = out["z"], out["post_mean"], out["post_logvar"]
        kl_dyn = D.mixture_kl_mc(z.detach(), mean.detach(), logvar.detach(), out["log_pi"], prior.means, prior.logvars)
        kl_rep = D.mixture_kl_mc(z, mean, logvar, out["log_pi"].detach(), prior.means.detach(), prior.logvars.detach())
        losses = {
            "recon": mm(sq_err.sum(-1), mask) / (2.0 * cfg.recon_std**2),
            "recon_mse": mm(sq_err.mean(-1), mask),
            "kl_mixture": mm(kl_dyn.detach(), mask),  # the same value as KL(q || p); only the gradients differ
            "kl_dyn": mm(kl_dyn.clamp(min=cfg.free_nats), mask),
            "kl_rep": mm(kl_rep.clamp(min=cfg.free_nats), mask),
            "kl_sticks": mm(prior.stick_kl(cfg.stick_kl_terms), mask),
            "kl_gamma": mm(prior.gamma_kl(cfg.gamma_prior_shape, cfg.gamma_prior_rate), mask),
            "codebook": mm(out["vq_loss"].mean(-1), mask),
            "token_prediction": mm((out["token_pred"] - out["tokens"].detach()).pow(2).mean((-1, -2)), mask),
            "reward": mm((out["reward_pred"] - self.reward_norm(reward.float())).pow(2), mask),
            "continuation": mm(
                F.binary_cross_entropy_with_logits(out["terminal_logit"], terminated.float(), reduction="none"), mask
            ),
        }
        beta = cfg.beta * self.kl_scale
        kl_terms = cfg.kl_dyn_weight * losses["kl_dyn"] + cfg.kl_rep_weight * losses["kl_rep"]
        losses["total_elbo"] = cfg.lambda_recon * losses["recon"] + beta * (
            kl_terms + losses["kl_sticks"] + losses["kl_gamma"]
        )
        if cfg.lambda_prior_recon > 0:
            losses["prior_recon"] = self._one_step_reconstruction(out, is_first, mask)
            losses["total_elbo"] = losses["total_elbo"] + cfg.lambda_prior_recon * losses["prior_recon"]
        rollout = None
        if cfg.lambda_open_loop > 0:
            rollout = self._open_loop_rollout(out, is_first, mask, stochastic, generator)
        if rollout is not None:
            losses["open_loop_recon"] = self._open_loop_reconstruction(out, rollout)
            losses["total_elbo"] = losses["total_elbo"] + cfg.lambda_open_loop * losses["open_loop_recon"]
        losses["perceiver_loss"] = losses["codebook"] + cfg.lambda_token * losses["token_prediction"]
        predictive = cfg.lambda_reward * losses["reward"] + cfg.lambda_continue * losses["continuation"]
        if cfg.lambda_open_loop_reward > 0 and rollout is not None:
            losses.update(self._open_loop_reward_losses(out, rollout, reward, terminated))
            predictive = predictive + cfg.lambda_open_loop_reward * (
                cfg.lambda_reward * losses["open_loop_reward"] + cfg.lambda_continue * losses["open_loop_continuation"]
            )
        if self.supervision is not None:
            losses.update(self._supervision_losses(out, batch["supervision"], is_first, mask, rollout))
            predictive = predictive + cfg.lambda_supervision * losses["supervision"]
        if self.schema is not None:
            maps = out["attention_maps"]
            losses["attention_dynamics"] = mm(attention_dynamics_loss(out["attention_log_pred"], maps), mask)
            losses["attention_gram"] = mm(gram_loss(maps), mask)
            losses["attention_entropy"] = mm(spatial_entropy(maps), mask)
            predictive = predictive + (
                cfg.lambda_att_dyn * losses["attention_dynamics"]
                + cfg.lambda_gram * losses["attention_gram"]
                + cfg.entropy_weight * losses["attention_entropy"]
            )
        losses["total_predictive"] = predictive
        out["mask"] = mask
        return losses, out

    def loss_groups(self, batch: TensorDict) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        losses, out = self.compute_total_loss(batch)
        groups = {
            "elbo": losses["total_elbo"],
            "context": losses["perceiver_loss"],
            "predictive": losses["total_predictive"],
        }
        metrics = {k: float(v.detach()) for k, v in losses.items()}
        with torch.no_grad():
            mask = out["mask"]
            metrics["effective_components"] = float(D.effective_components(out["log_pi"], mask))
            metrics["alpha_mean"] = float(D.masked_mean(out["prior"].alpha_shape / out["prior"].alpha_rate, mask))
            metrics["beta"] = float(self.config.beta * self.kl_scale)
            metrics["posterior_std"] = float(D.masked_mean(torch.exp(0.5 * out["post_logvar"]).mean(-1), mask))
            metrics["z_used"] = self.z_usage(out)
            if out["codes"] is not None:
                metrics["codebook_perplexity"] = float(
                    codebook_perplexity(out["codes"][mask], self.config.codebook_size)
                )
        return groups, metrics

    @torch.no_grad()
    def z_usage(self, out: dict[str, Any], rows: int = _Z_CHECK_ROWS) -> float:
        """Reconstruction MSE with z zeroed divided by the MSE with the posterior z, on the first ``rows`` sequences.

        About 1 means the decoder ignores z (the latent collapsed); the larger, the more the reconstruction needs it.
        """
        feat, target, mask = out["feat"][:rows], out["targets"][:rows], out["mask"][:rows]
        zeroed = torch.cat(
            [feat[..., : self.config.hidden_dim], torch.zeros_like(feat[..., self.config.hidden_dim :])], -1
        )
        maps = out["attention_log_pred"][:rows].exp().flatten(0, 1) if self.schema is not None else None
        reference = has_reference = age = None
        if self.uses_reference:
            reference, has_reference, age = self._reference_rows(out, slice(rows), slice(None))
        recon = self._decode(zeroed.flatten(0, 1), maps, reference, has_reference, age).reshape(target.shape)
        mse_zeroed = D.masked_mean((recon - target).pow(2).flatten(2).mean(-1), mask)
        mse = D.masked_mean((out["reconstructions"][:rows] - target).pow(2).flatten(2).mean(-1), mask)
        return float(mse_zeroed / mse.clamp_min(1e-12))

    def on_train_step_end(self, step: int) -> None:
        """Linear KL annealing: beta grows from 0 to ``config.beta`` over ``kl_anneal_steps`` steps."""
        if self.config.kl_anneal_steps:
            self.kl_scale.fill_(min(1.0, (step + 1) / self.config.kl_anneal_steps))

    def fit_normalization(self, stats: dict[str, dict[str, Any]]) -> None:
        """Fit ``obs`` (vector models only; pixels are scaled to [0, 1]), ``action`` and ``reward`` statistics."""
        targets = {"action": self.action_norm, "reward": self.reward_norm}
        if not self.is_pixel:
            targets["obs"] = self.obs_norm
        for key, normalizer in targets.items():
            if key in stats:
                normalizer.fit_stats(stats[key])
        if self.supervision is not None:  # window names "supervision/<dataset key>"
            prefix = "supervision/"
            self.supervision.fit_stats({k[len(prefix) :]: v for k, v in stats.items() if k.startswith(prefix)})

    # ================================================================= internals
    def _filter(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        is_first: torch.Tensor,
        stochastic: bool,
        generator: torch.Generator | None,
    ) -> dict[str, Any]:
        """The posterior recursion over time (normalised previous actions); see the module docstring for indices.

        The frame embedding, the Perceiver context and the observation half of the posterior are computed for the
        whole sequence in one batched call each; the loop runs only the LSTM cell and the posterior's h-part.
        """
        B, T = obs.shape[:2]
        targets, raw_tokens, embed = self._encode(obs.reshape(B * T, *obs.shape[2:]))
        tokens = self.token_norm(self.token_proj(raw_tokens) + self.token_pos)
        q_tokens, codes, vq_loss = self._quantise(tokens)
        context = self.perceiver(q_tokens.reshape(B, T, *q_tokens.shape[1:]), is_first)
        projected = self.posterior.project(torch.cat([embed.reshape(B, T, -1), context], -1))
        cfg = self.config
        noise = None
        if stochastic:
            noise = torch.randn(B, T, cfg.latent_dim, generator=generator, device=obs.device, dtype=projected.dtype)

        # the initial state (see initial_state), one [B, H] tensor per layer: no per-step indexing of [B, L, H]
        h = [projected.new_zeros(B, cfg.hidden_dim) for _ in range(cfg.n_lstm_layers)]
        c, z = [torch.zeros_like(x) for x in h], projected.new_zeros(B, cfg.latent_dim)
        keep = (~is_first).to(projected.dtype)[..., None]
        action_gates = self._lstm_input_gates(prev_action * keep)  # no previous action at an episode start
        weights, post_weight = self._lstm_weights(), self.posterior.h_weight()
        resets = set((is_first[:, 1:].any(0).nonzero().squeeze(-1) + 1).tolist())  # t = 0 starts from zeros anyway
        # per-step views by one unbind each: a single cheap backward (stack), not a zero-filled copy per step
        step_gates, step_projected = action_gates.unbind(1), projected.unbind(1)
        step_noise = None if noise is None else noise.unbind(1)
        hs, cs, zs, means, logvars = [], [], [], [], []
        for t in range(T):
            if t in resets:  # episode start: the initial (zero) state
                k = keep[:, t]
                h, c, z = [x * k for x in h], [x * k for x in c], z * k
            h, c = self._lstm_cells(h, c, z, step_gates[t], weights)
            mean, logvar = self.posterior(h[-1], step_projected[t], post_weight)
            z = mean if step_noise is None else mean + torch.exp(0.5 * logvar) * step_noise[t]
            for store, value in ((hs, h), (cs, c), (zs, z), (means, mean), (logvars, logvar)):
                store.append(value)
        stack = lambda xs: torch.stack(xs, 1)  # noqa: E731
        by_layer = lambda xs: torch.stack([stack([x[i] for x in xs]) for i in range(len(h))], 2)  # noqa: E731
        return {
            "h": by_layer(hs),
            "c": by_layer(cs),
            "z": stack(zs),
            "post_mean": stack(means),
            "post_logvar": stack(logvars),
            "context": context,
            "targets": targets.reshape(B, T, *targets.shape[1:]),
            "raw_tokens": raw_tokens.reshape(B, T, *raw_tokens.shape[1:]),
            "tokens": tokens.reshape(B, T, *tokens.shape[1:]),
            "codes": None if codes is None else codes.reshape(B, T, -1),
            "vq_loss": vq_loss.reshape(B, T, -1),
        }

    def _one_step(
        self, out: dict[str, Any], a_norm: torch.Tensor, stochastic: bool, generator: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        """What ``imagine(state_t, action_t)`` predicts for every t, batched over [B*T]."""
        B, T = a_norm.shape[:2]
        flat = lambda x: x.reshape(B * T, *x.shape[2:])  # noqa: E731
        h, _ = self._lstm_step(flat(out["h"]), flat(out["c"]), flat(out["z"]), self._lstm_input_gates(flat(a_norm)))
        h_top = h[:, -1]
        prior = self.prior(h_top)
        z = prior.sample(prior.log_weights(stochastic, generator), generator, stochastic)
        feat = torch.cat([h_top, z], -1)
        reward, terminal_logit = self._heads(feat, flat(out["reference_embed"]) if "reference_embed" in out else None)
        step = {"reward_pred": reward.reshape(B, T), "terminal_logit": terminal_logit.reshape(B, T)}
        if self.config.lambda_prior_recon > 0 or self.supervision is not None:  # imagination's state: the mean
            z_mean = prior.sample(prior.log_weights(False), None, False)
            step["one_step_feat"] = torch.cat([h_top, z_mean], -1).reshape(B, T, -1)
        return step

    def _one_step_reconstruction(self, out: dict[str, Any], is_first: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Gaussian NLL of o_{t+1} decoded from the one-step prior state of t (as imagination decodes it), averaged
        over the steps whose successor lies in the same episode."""
        feat = out["one_step_feat"][:, :-1]
        maps = reference = has_reference = age = None
        if self.schema is not None:
            maps = self.schema.predict_log_maps(feat[..., : self.config.hidden_dim]).exp().flatten(0, 1)
        if self.uses_reference:
            reference, has_reference, age = self._reference_rows(out, slice(None), slice(1, None))
        target = out["targets"][:, 1:]
        recon = self._decode(feat.flatten(0, 1), maps, reference, has_reference, age).reshape(target.shape)
        valid = (mask[:, 1:] & ~is_first[:, 1:]).to(recon.dtype)
        per_frame = self._imagined_frame_loss(recon, target, self.config.prior_recon_ssim)
        return (per_frame * valid).sum() / valid.sum().clamp_min(1.0)

    def _imagined_frame_loss(self, recon: torch.Tensor, target: torch.Tensor, ssim_weight: float) -> torch.Tensor:
        """Gaussian NLL of each imagined observation ``[B, T, ...]`` (nats, up to a constant), plus ``ssim_weight``
        times 1 - SSIM for frames; one value per step ``[B, T]``."""
        per_frame = (recon - target).pow(2).flatten(2).sum(-1) / (2.0 * self.config.recon_std**2)
        if ssim_weight > 0:
            per_frame = per_frame + ssim_weight * (1.0 - frame_ssim(recon, target))
        return per_frame

    def _open_loop_rollout(
        self,
        out: dict[str, Any],
        is_first: torch.Tensor,
        mask: torch.Tensor,
        stochastic: bool,
        generator: torch.Generator | None,
    ) -> dict[str, torch.Tensor] | None:
        """A mean-prior rollout (``imagine`` without a generator) of ``open_loop_horizon`` steps under the recorded
        actions from the posterior-mean state of one start step per window (as ``observe`` leaves it): ``feat [B,
        horizon, H+Z]``, the imagined ``steps`` and ``start`` indices and ``valid [B, horizon]`` (inside the start's
        episode segment). The start is drawn per window when ``stochastic``, else step 0 (a deterministic
        validation loss); None when the window is too short."""
        B, T = is_first.shape
        horizon = min(self.config.open_loop_horizon, T - 1)
        if horizon < 1:
            return None
        dev = is_first.device
        start = torch.zeros(B, dtype=torch.long, device=dev)
        if stochastic:
            start = torch.randint(0, T - horizon, (B,), generator=generator, device=dev)
        rows = torch.arange(B, device=dev)[:, None]
        steps = start[:, None] + torch.arange(1, horizon + 1, device=dev)  # [B, horizon] the imagined steps
        valid = mask[rows, steps] & (segment_start_indices(is_first)[rows, steps] <= start[:, None])
        gates = self._lstm_input_gates(out["action_norm"][rows, steps - 1])  # a_{t-1} leads to o_t
        first = start[:, None]
        h, c = list(out["h"][rows, first].squeeze(1).unbind(1)), list(out["c"][rows, first].squeeze(1).unbind(1))
        z, weights, feats = out["post_mean"][rows, first].squeeze(1), self._lstm_weights(), []
        for k in range(horizon):
            h, c = self._lstm_cells(h, c, z, gates[:, k], weights)
            prior = self.prior(h[-1])
            z = prior.sample(prior.log_weights(False), None, False)
            feats.append(torch.cat([h[-1], z], -1))
        return {"feat": torch.stack(feats, 1), "steps": steps, "start": start, "valid": valid}

    def _open_loop_reconstruction(self, out: dict[str, Any], rollout: dict[str, torch.Tensor]) -> torch.Tensor:
        """Gaussian NLL of the frames decoded along ``_open_loop_rollout``, averaged over its valid steps."""
        feat, steps, valid = rollout["feat"].flatten(0, 1), rollout["steps"], rollout["valid"]
        B, horizon = steps.shape
        dev = steps.device
        rows, first = torch.arange(B, device=dev)[:, None], rollout["start"][:, None]
        maps = reference = has_reference = age = None
        if self.schema is not None:
            maps = self.schema.predict_log_maps(feat[:, : self.config.hidden_dim]).exp()
        if self.uses_reference:  # every imagined frame is blended with the start's real frame, k + 1 steps old
            reference = out["targets"][rows, first].expand(B, horizon, *out["targets"].shape[2:]).flatten(0, 1)
            has_reference = torch.ones(B * horizon, dtype=torch.bool, device=dev)
            age = (steps - first).flatten()
        target = out["targets"][rows, steps]
        recon = self._decode(feat, maps, reference, has_reference, age).reshape(target.shape)
        weight = valid.to(recon.dtype)
        per_frame = self._imagined_frame_loss(recon, target, self.config.open_loop_ssim)
        return (per_frame * weight).sum() / weight.sum().clamp_min(1.0)

    def _open_loop_reward_losses(
        self, out: dict[str, Any], rollout: dict[str, torch.Tensor], reward: torch.Tensor, terminated: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Reward MSE (normalised units) and continuation BCE of the heads on the open-loop rollout's states, each
        against the recorded transition that leads to its step; the reference is the start's frame, as after
        ``observe``. Averaged over the rollout's valid steps."""
        steps, (B, horizon) = rollout["steps"], rollout["steps"].shape
        rows = torch.arange(B, device=steps.device)[:, None]
        embed = None
        if self.reference_embed is not None:
            embed = out["reference_embed"][rows, rollout["start"][:, None]].expand(B, horizon, -1)
        reward_pred, terminal_logit = self._heads(rollout["feat"], embed)
        weight = rollout["valid"].to(reward_pred.dtype)
        masked = lambda err: (err * weight).sum() / weight.sum().clamp_min(1.0)  # noqa: E731
        target = self.reward_norm(reward[rows, steps - 1].float())
        done = terminated[rows, steps - 1].float()
        return {
            "open_loop_reward": masked((reward_pred - target).pow(2)),
            "open_loop_continuation": masked(
                F.binary_cross_entropy_with_logits(terminal_logit, done, reduction="none")
            ),
        }

    def _supervision_losses(
        self,
        out: dict[str, Any],
        values: TensorDict,
        is_first: torch.Tensor,
        mask: torch.Tensor,
        rollout: dict[str, torch.Tensor] | None,
    ) -> dict[str, torch.Tensor]:
        """Squared errors (normalised units) of the supervision heads on the filtered states (``supervision_filter``),
        the one-step prior states (``supervision_one_step``, each against the next step of its episode) and the
        open-loop rollout (``supervision_open_loop``); ``supervision`` is their sum. With ``supervision_motion`` the
        targets are the keys' motions since the state's last real step, and the filtered states are not scored."""
        head = self.supervision
        assert head is not None
        missing = [k for k in head.keys if k not in values.keys()]
        if missing:
            raise ValueError(f"vrnn batch['supervision'] lacks {missing}; the model is supervised on {head.keys}")
        raw = head.raw({k: values[k] for k in head.keys})
        masked = lambda err, m: (err * m).sum() / m.sum().clamp_min(1.0)  # noqa: E731
        next_ok = mask[:, 1:] & ~is_first[:, 1:]
        losses: dict[str, torch.Tensor] = {}
        if not head.motion:  # a filtered state's last real step is its own: it has no motion to score
            filtered = head.squared_error(out["feat"], head.targets(raw, raw, mask))
            losses["supervision_filter"] = masked(filtered, mask.to(raw.dtype))
        one_step = head.squared_error(out["one_step_feat"][:, :-1], head.targets(raw[:, 1:], raw[:, :-1], next_ok))
        losses["supervision_one_step"] = masked(one_step, next_ok.to(raw.dtype))
        if rollout is not None:
            steps, valid = rollout["steps"], rollout["valid"]
            rows = torch.arange(raw.shape[0], device=raw.device)[:, None]
            start = raw[rows, rollout["start"][:, None]]
            imagined = head.squared_error(rollout["feat"], head.targets(raw[rows, steps], start, valid))
            losses["supervision_open_loop"] = masked(imagined, valid.to(raw.dtype))
        losses["supervision"] = sum(losses.values())
        return losses

    def predict_supervision(self, state: TensorDict) -> dict[str, torch.Tensor]:
        """What the supervision heads read from a state (``observe``d or imagined): ``{key: [*batch, size]}`` in
        the dataset's units (``supervision_motion``: moved since the state's last real step); a one-line error
        when the model has none."""
        if self.supervision is None:
            raise ValueError("this vrnn has no supervision heads (config.supervision_keys is empty)")
        return self.supervision.predict(self._state_feat(state))

    def _lstm_input_gates(self, action: torch.Tensor) -> torch.Tensor:
        """The action's part of layer 0's gates (with both biases): known up front, so batched over every step."""
        w_ih = self.lstm.weight_ih_l0[:, self.config.latent_dim :]
        return F.linear(action, w_ih, self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0)

    def _lstm_weights(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per layer, the transposed weight on ``[input, h_{t-1}]`` (layer 0: input = z only) and the summed bias
        (layer 0: None, its bias is in the action gates). Built once per sequence, not once per step."""
        z_dim, weights = self.config.latent_dim, []
        for layer in range(self.config.n_lstm_layers):
            w_ih, w_hh = getattr(self.lstm, f"weight_ih_l{layer}"), getattr(self.lstm, f"weight_hh_l{layer}")
            if layer == 0:
                weights.append((torch.cat([w_ih[:, :z_dim], w_hh], 1).t(), None))
            else:
                bias = getattr(self.lstm, f"bias_ih_l{layer}") + getattr(self.lstm, f"bias_hh_l{layer}")
                weights.append((torch.cat([w_ih, w_hh], 1).t(), bias))
        return weights

    def _lstm_cells(
        self, h: list[torch.Tensor], c: list[torch.Tensor], z: torch.Tensor, action_gates: torch.Tensor, weights: list
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One step of the (stacked) LSTM on ``[z, a]`` with per-layer states ``[B, H]`` (the time loop's form).

        Same weights and maths as ``self.lstm``; the input and h_{t-1} share one matmul, the bias (layer 0: the
        precomputed action gates) is fused into it, and the gates are split once (cheap to differentiate).
        """
        inp, hs, cs = z, [], []
        for (weight_t, bias), h_prev, c_prev in zip(weights, h, c):
            base = action_gates if bias is None else bias
            gates = torch.addmm(base, torch.cat([inp, h_prev], -1), weight_t)
            inp, c_new = lstm_cell(gates, c_prev)
            hs.append(inp)
            cs.append(c_new)
        return hs, cs

    def _lstm_step(
        self, h: torch.Tensor, c: torch.Tensor, z: torch.Tensor, action_gates: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``_lstm_cells`` on states ``[B, layers, H]`` (imagination and the batched one-step predictions)."""
        hs, cs = self._lstm_cells(list(h.unbind(1)), list(c.unbind(1)), z, action_gates, self._lstm_weights())
        return torch.stack(hs, 1), torch.stack(cs, 1)

    def _decode(
        self,
        feat: torch.Tensor,
        maps: torch.Tensor | None,
        reference: torch.Tensor | None,
        has_reference: torch.Tensor | None,
        age: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoder mean for flat ``feat [N, H+Z]``: model space, or with a reference frame ``[N, C, H, W]`` ([0, 1],
        task resolution, ``age [N]`` steps old) the painted frame blended with it."""
        if reference is None:
            return self.decoder(feat, maps)
        x = self.decoder(feat, maps, self._reference_features(reference, has_reference))
        return composite(x[:, :-1], x[:, -1:], reference, has_reference, self.refiner, age)

    def _reference_features(self, reference: torch.Tensor, has_reference: torch.Tensor) -> torch.Tensor | None:
        """``config.reference_features``: the reference frames ``[N, C, H, W]`` ([0, 1]) through the frame encoder
        at ``image_size``, zeroed where there is none, with the presence as one more plane; else None."""
        if not self.config.reference_features:
            return None
        present = has_reference.to(reference.dtype).reshape(-1, 1, 1, 1)
        feat = self.encoder.conv(resize_square(reference, self.config.image_size)) * present
        return torch.cat([feat, present.expand(-1, 1, *feat.shape[-2:])], dim=1)

    def _reference_embedding(self, reference: torch.Tensor, has_reference: torch.Tensor) -> torch.Tensor:
        """``heads_read_reference``: the heads' embedding ``[N, H]`` of reference frames ``[N, C, H, W]`` ([0, 1])."""
        assert self.reference_embed is not None
        return self.reference_embed(self._reference_features(reference, has_reference))

    def _heads(self, feat: torch.Tensor, reference_embed: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reward (normalised units) and termination logit of states ``feat [..., H+Z]``, reading the reference
        frame's embedding ``[..., H]`` beside them with ``heads_read_reference``."""
        x = feat if reference_embed is None else torch.cat([feat, reference_embed], -1)
        return self.reward_head(x).squeeze(-1), self.continue_head(x).squeeze(-1)

    @staticmethod
    def _reference_rows(out: dict[str, Any], rows: slice, steps: slice) -> tuple[torch.Tensor, ...]:
        """The training references of ``out[rows, steps]``, flat: (frame ``[N, C, H, W]``, present ``[N]``, age)."""
        keys = ("reference", "has_reference", "reference_age")
        return tuple(out[key][rows, steps].flatten(0, 1) for key in keys)

    def _encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Observations ``[N, *obs_shape]`` in task units -> (model-space target, frame tokens, embedding)."""
        x = pixels_to_model(obs, self.config.image_size) if self.is_pixel else self.obs_norm(obs.float())
        tokens, embed = self.encoder(x)
        return x, tokens, embed

    def _quantise(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        if self.codebook is None:
            return tokens, None, torch.zeros(tokens.shape[:-1], device=tokens.device)
        return self.codebook(tokens)

    def _attention_maps(self, raw_tokens: torch.Tensor) -> torch.Tensor:
        lead = raw_tokens.shape[:-2]
        maps = self.schema(raw_tokens.reshape(-1, *raw_tokens.shape[-2:]))
        return maps.reshape(*lead, *maps.shape[1:])

    def _check_sequence(self, obs: torch.Tensor, actions: torch.Tensor, is_first: torch.Tensor) -> None:
        shape = self.task.obs_shape
        if obs.dim() != 2 + len(shape) or tuple(obs.shape[2:]) != shape:
            raise ValueError(
                f"obs must be [B, T, {', '.join(map(str, shape))}] for task {self.task.task_id!r}, got {tuple(obs.shape)}"
            )
        if tuple(actions.shape) != (*obs.shape[:2], self.task.action_dim):
            raise ValueError(
                f"action must be [B, T, {self.task.action_dim}] matching obs {tuple(obs.shape[:2])}, got {tuple(actions.shape)}"
            )
        if tuple(is_first.shape) != tuple(obs.shape[:2]):
            raise ValueError(f"is_first must be [B, T] = {tuple(obs.shape[:2])}, got {tuple(is_first.shape)}")

    def _unpack(self, batch: TensorDict) -> tuple[torch.Tensor, ...]:
        missing = [k for k in _BATCH_KEYS if k not in batch.keys()]
        if missing:
            raise ValueError(f"vrnn batch is missing key(s) {missing}; it needs {list(_BATCH_KEYS)}")
        obs, action = batch["obs"], batch["action"]
        bt = tuple(obs.shape[:2])
        for key in ("reward", "terminated", "is_first", "mask"):
            if tuple(batch[key].shape) != bt:
                raise ValueError(f"batch[{key!r}] must be [B, T] = {bt}, got {tuple(batch[key].shape)}")
        return obs, action, batch["reward"], batch["terminated"], batch["is_first"].bool(), batch["mask"].bool()


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LSTM update from pre-activation ``gates [B, 4H]`` (torch's order i, f, g, o) and ``c [B, H]``: (h, c)."""
    i, f, g, o = gates.chunk(4, -1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
