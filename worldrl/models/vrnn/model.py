"""DPGMM-VRNN world model: stick-breaking DP-GMM prior, LSTM dynamics, causal Perceiver context, attention schema.

Time indexing (the protocol's, see ``worldrl.models.base``). The state after observing step t holds
``h_t, c_t = LSTM([z_{t-1}, ctx_{t-1}, a_{t-1}])`` (the deterministic part, reset at ``is_first``), the Perceiver
memory M_t and context ctx_t (frames <= t), the posterior latent z_t ~ q(z_t | o_t, ctx_t), and the attention maps.
The prior is p(z_t | h_t, ctx_{t-1}) (the reference's p(z_t | h_{t-1}, c_{t-1}) with h shifted by one index).
``imagine(state_t, a_t)`` steps the LSTM, draws z_{t+1} from the mixture prior, advances the Perceiver with the
frame tokens predicted from (h_{t+1}, z_{t+1}) and reads reward / termination of the transition (o_t, a_t).

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
from worldrl.models.vrnn.encoders import GaussianHead, PixelEncoder, VectorEncoder, model_to_pixels, pixels_to_model
from worldrl.models.vrnn.perceiver import CausalPerceiver
from worldrl.models.vrnn.prior import DPGMMPrior
from worldrl.nn.mlp import mlp, orthogonal_init_
from worldrl.nn.normalizer import Normalizer

_TOKEN_BOTTLENECK = 16  # per-token width inside the token predictor: keeps it small for 64 image tokens
_NO_TERMINAL_LOGIT = -20.0  # the initial state is not terminal
_BATCH_KEYS = ("obs", "action", "reward", "terminated", "is_first", "mask")


class DPGMMVRNNWorldModel(WorldModel):
    """The ``vrnn`` family (vector or pixel observations, chosen by the task's observation space)."""

    capabilities = Capabilities(can_decode=True, predicts_reward=True, predicts_terminal=True, recurrent=True, stochastic=True)
    config: VRNNConfig

    def __init__(self, config: VRNNConfig, task: TaskSpec) -> None:
        super().__init__(config, task)
        cfg = config
        self.is_pixel = task.is_pixel
        if not self.is_pixel and len(task.obs_shape) != 1:
            raise ValueError(f"vrnn needs a vector (D,) or image (H, W, C) observation space, got shape {task.obs_shape}")
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

        # Perceiver context over frame tokens (optionally vector-quantised).
        self.token_proj = nn.Linear(tok_feat, ctx)
        self.token_pos = nn.Parameter(torch.randn(n_tok, ctx) * 0.02)
        self.token_norm = nn.LayerNorm(ctx)
        self.codebook = VectorQuantizer(cfg.codebook_size, ctx, cfg.commitment_weight) if cfg.use_codebook else None
        self.perceiver = CausalPerceiver(ctx, cfg.num_latents, cfg.num_heads)
        self.token_predictor = nn.Sequential(
            mlp(hid + z_dim, [hid], n_tok * _TOKEN_BOTTLENECK), nn.Unflatten(-1, (n_tok, _TOKEN_BOTTLENECK)),
            nn.Linear(_TOKEN_BOTTLENECK, ctx),
        )

        # Generative model.
        self.posterior = GaussianHead(hid + ctx, hid, z_dim, logvar_range)
        self.prior = DPGMMPrior(hid + ctx, z_dim, cfg.max_components, hid, logvar_range)
        self.lstm = nn.LSTM(z_dim + ctx + task.action_dim, hid, num_layers=cfg.n_lstm_layers)
        if cfg.use_orthogonal:
            orthogonal_init_(self.lstm)
        self.schema = (
            AttentionSchema(tok_feat, n_tok, hid, cfg.num_slots, cfg.slot_dim, cfg.slot_iterations)
            if cfg.use_attention_schema else None
        )
        slots = cfg.num_slots if cfg.use_attention_schema else 0
        if self.is_pixel:
            self.decoder: nn.Module = PixelDecoder(task.obs_shape[-1], slots, cfg)
        else:
            self.decoder = VectorDecoder(task.obs_shape[0], slots * n_tok, cfg)
        self.reward_head = mlp(hid + z_dim, [hid], 1)
        self.continue_head = mlp(hid + z_dim, [hid], 1)
        # Fraction of beta in force (KL annealing); a buffer so a resumed or reloaded model keeps it.
        self.register_buffer("kl_scale", torch.tensor(0.0 if cfg.kl_anneal_steps else 1.0))

    # ================================================================= protocol: encoding
    def initial_state(self, batch_size: int) -> TensorDict:
        cfg, dev = self.config, self.device
        memory = self.perceiver.initial(batch_size)
        zeros = torch.zeros(batch_size, cfg.n_lstm_layers, cfg.hidden_dim, device=dev)
        state = {
            "h": zeros,
            "c": zeros.clone(),
            "z": torch.zeros(batch_size, cfg.latent_dim, device=dev),
            "context": self.perceiver.context(memory),
            "memory": memory,
            "reward": torch.zeros(batch_size, device=dev),
            "terminal_logit": torch.full((batch_size,), _NO_TERMINAL_LOGIT, device=dev),
        }
        if self.schema is not None:
            state["attention"] = torch.full((batch_size, cfg.num_slots, self.n_tokens), 1.0 / cfg.num_slots, device=dev)
        return TensorDict(state, batch_size=[batch_size])

    def observe(self, obs: torch.Tensor, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict:
        self._check_sequence(obs, prev_action, is_first)
        seq = self._filter(obs, self.action_norm(prev_action.float()), is_first.bool(), stochastic=False, generator=None)
        h_top = seq["h"][..., -1, :]
        feat = torch.cat([h_top, seq["z"]], -1)
        state = {
            "h": seq["h"],
            "c": seq["c"],
            "z": seq["z"],
            "context": seq["context"],
            "memory": seq["memory"],
            "reward": self.reward_norm.denormalize(self.reward_head(feat).squeeze(-1)),
            "terminal_logit": self.continue_head(feat).squeeze(-1),
        }
        if self.schema is not None:
            state["attention"] = self._attention_maps(seq["raw_tokens"])
        return TensorDict(state, batch_size=list(obs.shape[:2]))

    # ================================================================= protocol: dynamics
    def imagine(self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None = None) -> TensorDict:
        if action.dim() != 2 or action.shape != (state.batch_size[0], self.task.action_dim):
            raise ValueError(f"imagine: action must be [B={state.batch_size[0]}, {self.task.action_dim}], got {tuple(action.shape)}")
        stochastic = generator is not None
        h, c = self._lstm_step(state["h"], state["c"], state["z"], state["context"], self.action_norm(action.float()))
        h_top = h[:, -1]
        prior = self.prior(torch.cat([h_top, state["context"]], -1))
        z = prior.sample(prior.log_weights(stochastic, generator), generator, stochastic)
        tokens, _, _ = self._quantise(self.token_predictor(torch.cat([h_top, z], -1)))
        memory, context = self.perceiver.step(state["memory"], tokens)
        feat = torch.cat([h_top, z], -1)
        out = {
            "h": h,
            "c": c,
            "z": z,
            "context": context,
            "memory": memory,
            "reward": self.reward_norm.denormalize(self.reward_head(feat).squeeze(-1)),
            "terminal_logit": self.continue_head(feat).squeeze(-1),
        }
        if self.schema is not None:
            out["attention"] = self.schema.predict_log_maps(h_top).exp()
        return TensorDict(out, batch_size=state.batch_size)

    # ================================================================= protocol: read-outs
    def decode(self, state: TensorDict) -> torch.Tensor:
        batch = tuple(state.batch_size)
        z = state["z"].reshape(-1, self.config.latent_dim)
        maps = state["attention"].reshape(z.shape[0], self.config.num_slots, self.n_tokens) if self.schema is not None else None
        x = self.decoder(z, maps)
        if self.is_pixel:
            height, width, _ = self.task.obs_shape
            return model_to_pixels(x, height, width).reshape(*batch, *self.task.obs_shape)
        return self.obs_norm.denormalize(x).reshape(*batch, *self.task.obs_shape)

    def latent(self, state: TensorDict) -> torch.Tensor:
        return torch.cat([state["h"][..., -1, :], state["z"]], -1)

    @property
    def latent_dim(self) -> int:
        return self.config.hidden_dim + self.config.latent_dim

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
        components; ``log_pi``/``pi`` ``[B,T,K]``), LSTM states ``h``/``c`` ``[B,T,layers,H]``, ``context_prev`` /
        ``context`` ``[B,T,D]``, Perceiver ``memory``, frame ``tokens`` / ``codes`` / ``vq_loss``, ``token_pred``,
        attention maps ``attention_maps`` and ``attention_log_pred`` ``[B,T,S,N]`` (N = grid*grid image positions in
        row-major order, or observation dimensions), and the one-step predictions ``reward_pred`` (normalised units)
        and ``terminal_logit`` for ``reward[:, t]`` / ``terminated[:, t]``.
        """
        self._check_sequence(obs, actions, is_first)
        B, T = obs.shape[:2]
        a_norm = self.action_norm(actions.float())
        prev = torch.cat([torch.zeros_like(a_norm[:, :1]), a_norm[:, :-1]], dim=1)
        out = self._filter(obs, prev, is_first.bool(), stochastic, generator)
        h_top = out["h"][..., -1, :]
        prior = self.prior(torch.cat([h_top, out["context_prev"]], -1))
        out["prior"], out["log_pi"] = prior, prior.log_weights(stochastic, generator)
        out["pi"] = out["log_pi"].exp()
        maps = self._attention_maps(out["raw_tokens"]) if self.schema is not None else None
        if maps is not None:
            out["attention_maps"] = maps
            out["attention_log_pred"] = self.schema.predict_log_maps(h_top)
        recon = self.decoder(out["z"].flatten(0, 1), None if maps is None else maps.flatten(0, 1))
        out["reconstructions"] = recon.reshape(B, T, *recon.shape[1:])
        out["token_pred"] = self.token_predictor(torch.cat([h_top, out["z"]], -1))
        out.update(self._one_step(out, a_norm, stochastic, generator))
        return out

    def compute_total_loss(
        self, batch: TensorDict, stochastic: bool = True, generator: torch.Generator | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """All loss terms (masked means over valid steps) and the ``forward_sequence`` outputs.

        ``stochastic=False`` evaluates at the posterior means and mean sticks (a deterministic validation loss).
        """
        obs, action, reward, terminated, is_first, mask = self._unpack(batch)
        cfg = self.config
        out = self.forward_sequence(obs, action, is_first, stochastic, generator)
        prior: Any = out["prior"]
        mm = D.masked_mean
        recon_nll = 0.5 * (out["reconstructions"] - out["targets"]).pow(2).flatten(2).sum(-1)
        kl_mix = D.mixture_kl_mc(out["z"], out["post_mean"], out["post_logvar"], out["log_pi"], prior.means, prior.logvars)
        losses = {
            "recon": mm(recon_nll, mask),
            "kl_mixture": mm(kl_mix, mask),
            "kl_sticks": mm(prior.stick_kl(cfg.stick_kl_terms), mask),
            "kl_gamma": mm(prior.gamma_kl(cfg.gamma_prior_shape, cfg.gamma_prior_rate), mask),
            "codebook": mm(out["vq_loss"].mean(-1), mask),
            "token_prediction": mm((out["token_pred"] - out["tokens"].detach()).pow(2).mean((-1, -2)), mask),
            "reward": mm((out["reward_pred"] - self.reward_norm(reward.float())).pow(2), mask),
            "continuation": mm(F.binary_cross_entropy_with_logits(out["terminal_logit"], terminated.float(), reduction="none"), mask),
        }
        beta = cfg.beta * self.kl_scale
        losses["total_elbo"] = cfg.lambda_recon * losses["recon"] + beta * (
            losses["kl_mixture"] + losses["kl_sticks"] + losses["kl_gamma"]
        )
        losses["perceiver_loss"] = losses["codebook"] + cfg.lambda_token * losses["token_prediction"]
        predictive = cfg.lambda_reward * losses["reward"] + cfg.lambda_continue * losses["continuation"]
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
        groups = {"elbo": losses["total_elbo"], "context": losses["perceiver_loss"], "predictive": losses["total_predictive"]}
        metrics = {k: float(v.detach()) for k, v in losses.items()}
        with torch.no_grad():
            metrics["effective_components"] = float(D.effective_components(out["log_pi"], out["mask"]))
            metrics["alpha_mean"] = float(D.masked_mean(out["prior"].alpha_shape / out["prior"].alpha_rate, out["mask"]))
            metrics["beta"] = float(self.config.beta * self.kl_scale)
            if out["codes"] is not None:
                metrics["codebook_perplexity"] = float(codebook_perplexity(out["codes"][out["mask"]], self.config.codebook_size))
        return groups, metrics

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

    # ================================================================= internals
    def _filter(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        is_first: torch.Tensor,
        stochastic: bool,
        generator: torch.Generator | None,
    ) -> dict[str, Any]:
        """The posterior recursion over time (normalised previous actions); see the module docstring for indices."""
        B, T = obs.shape[:2]
        targets, raw_tokens, embed = self._encode(obs.reshape(B * T, *obs.shape[2:]))
        tokens = self.token_norm(self.token_proj(raw_tokens) + self.token_pos)
        q_tokens, codes, vq_loss = self._quantise(tokens)
        q_tokens, embed = q_tokens.reshape(B, T, *q_tokens.shape[1:]), embed.reshape(B, T, -1)

        init = self.initial_state(B)
        carried = ("h", "c", "z", "context", "memory")
        cur = {k: init[k] for k in carried}
        steps: dict[str, list[torch.Tensor]] = {k: [] for k in (*carried, "post_mean", "post_logvar", "context_prev")}
        for t in range(T):
            first = is_first[:, t]
            cur = {k: _reset(first, init[k], v) for k, v in cur.items()}  # episode start: back to the initial state
            action = torch.where(first[:, None], torch.zeros_like(prev_action[:, t]), prev_action[:, t])
            h, c = self._lstm_step(cur["h"], cur["c"], cur["z"], cur["context"], action)
            steps["context_prev"].append(cur["context"])
            memory, context = self.perceiver.step(cur["memory"], q_tokens[:, t])
            mean, logvar = self.posterior(torch.cat([embed[:, t], context], -1))
            z = mean
            if stochastic:
                eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
                z = mean + torch.exp(0.5 * logvar) * eps
            cur = {"h": h, "c": c, "z": z, "context": context, "memory": memory}
            for key, value in (*cur.items(), ("post_mean", mean), ("post_logvar", logvar)):
                steps[key].append(value)
        out: dict[str, Any] = {k: torch.stack(v, dim=1) for k, v in steps.items()}
        out["targets"] = targets.reshape(B, T, *targets.shape[1:])
        out["raw_tokens"] = raw_tokens.reshape(B, T, *raw_tokens.shape[1:])
        out["tokens"] = tokens.reshape(B, T, *tokens.shape[1:])
        out["codes"] = None if codes is None else codes.reshape(B, T, -1)
        out["vq_loss"] = vq_loss.reshape(B, T, -1)
        return out

    def _one_step(self, out: dict[str, Any], a_norm: torch.Tensor, stochastic: bool, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """What ``imagine(state_t, action_t)`` predicts for every t, batched over [B*T]."""
        B, T = a_norm.shape[:2]
        flat = lambda x: x.reshape(B * T, *x.shape[2:])  # noqa: E731
        h, _ = self._lstm_step(flat(out["h"]), flat(out["c"]), flat(out["z"]), flat(out["context"]), flat(a_norm))
        h_top = h[:, -1]
        prior = self.prior(torch.cat([h_top, flat(out["context"])], -1))
        z = prior.sample(prior.log_weights(stochastic, generator), generator, stochastic)
        feat = torch.cat([h_top, z], -1)
        return {
            "reward_pred": self.reward_head(feat).reshape(B, T),
            "terminal_logit": self.continue_head(feat).reshape(B, T),
        }

    def _lstm_step(self, h: torch.Tensor, c: torch.Tensor, z: torch.Tensor, ctx: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One LSTM step on ``[z, ctx, a]``; states are ``[B, layers, hidden]``."""
        inp = torch.cat([z, ctx, action], -1).unsqueeze(0)
        _, (h, c) = self.lstm(inp, (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()))
        return h.transpose(0, 1), c.transpose(0, 1)

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
            raise ValueError(f"obs must be [B, T, {', '.join(map(str, shape))}] for task {self.task.task_id!r}, got {tuple(obs.shape)}")
        if tuple(actions.shape) != (*obs.shape[:2], self.task.action_dim):
            raise ValueError(f"action must be [B, T, {self.task.action_dim}] matching obs {tuple(obs.shape[:2])}, got {tuple(actions.shape)}")
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


def _reset(first: torch.Tensor, initial: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``initial`` where an episode starts (``first [B]``), ``value`` elsewhere."""
    return torch.where(first.view(-1, *[1] * (value.dim() - 1)), initial, value)
