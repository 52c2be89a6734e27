"""Probabilistic MLP ensemble world model (PETS / MBPO): the yardstick every other family is compared with.

Each of M members maps normalised ``(obs_t, action_t)`` to a diagonal Gaussian over the normalised targets
``[delta obs (or next obs), reward_t]`` plus a terminal logit. By default the model is Markov: a state is just
the observation, the ensemble member that a sampled trajectory follows (TS-inf), and the read-outs. With
``history`` H > 0 the members also read the H previous observations and actions (``history.py``), which the
state then carries.

Normalisation statistics are buffers (saved in ``model.safetensors``): ``fit_normalization`` sets those it
is given; any still unset (delta stats are not in ``meta/stats.json``) are fitted from the first batch that
reaches ``loss_groups`` and then frozen.

Keyed tasks: the ensemble observes every vector key of the task (``observation.state``,
``observation.environment_state``, ...) as one flat vector, concatenated in ``task.obs_keys`` order, and decodes
it back into one entry per key. Images are for pixel families.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

from worldrl.models import observations as keyed
from worldrl.models.base import Capabilities, WorldModel
from worldrl.models.ensemble.config import ACTIVATIONS, EnsembleConfig
from worldrl.models.ensemble.history import history_complete, past_steps
from worldrl.models.ensemble.layers import EnsembleMLP, forward_routed, soft_clamp
from worldrl.models.task_spec import TaskSpec
from worldrl.nn.normalizer import Normalizer

UNSET_MEMBER = -1
"""``state["member"]`` before a trajectory has been assigned an ensemble member."""
NEVER_TERMINAL_LOGIT = -20.0
"""Terminal logit of observed / initial states and of models that do not predict termination (p ~ 2e-9)."""
_NORMALIZERS = ("obs", "action", "delta", "reward")
"""Order of the entries of the ``stats_fitted`` buffer."""


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor, beta: float = 0.0) -> torch.Tensor:
    """Element-wise Gaussian negative log-likelihood without the constant ``0.5 log(2 pi)``.

    ``beta > 0``: beta-NLL (Seitzer et al. 2022), each element weighted by its detached variance ** beta.
    """
    nll = 0.5 * ((target - mean).pow(2) * torch.exp(-logvar) + logvar)
    return nll * torch.exp(beta * logvar.detach()) if beta else nll


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [..., N]`` over the last dim weighted by ``weights`` (0 where nothing is valid)."""
    return (values * weights).sum(-1) / weights.sum(-1).clamp_min(1e-8)


def mean_probability_logit(logits: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Logit of the average probability across ``dim`` (how an ensemble's members vote on termination)."""
    return torch.logit(torch.sigmoid(logits).mean(dim), eps=1e-6)


class EnsembleWorldModel(WorldModel):
    """M Gaussian MLPs as one batched network; the elites predict, trajectories sample one member each."""

    capabilities = Capabilities(
        can_decode=True, predicts_reward=True, predicts_terminal=True, recurrent=False, stochastic=True
    )

    def __init__(self, config: EnsembleConfig, task: TaskSpec) -> None:
        super().__init__(config, task)
        if task.image_keys or any(len(space.shape) != 1 for space in task.key_spaces().values()):
            shapes = {key: space.shape for key, space in task.key_spaces().items()}
            raise ValueError(
                f"the ensemble family models flat state vectors, but task {task.task_id!r} observes {shapes}; "
                "use a pixel family (vrnn) for images"
            )
        self.capabilities = dataclasses.replace(
            type(self).capabilities, predicts_terminal=config.predict_terminal, recurrent=config.history > 0
        )
        self.obs_dim, self.action_dim = keyed.flat_obs_dim(task), task.action_dim
        self.target_dim = self.obs_dim + 1  # [delta obs, reward]
        out_dim = 2 * self.target_dim + int(config.predict_terminal)
        self.net = EnsembleMLP(
            config.num_members,
            self.latent_dim + self.action_dim,
            config.hidden_dims,
            out_dim,
            ACTIVATIONS[config.activation],
        )
        self._init_logvar_bounds(config)
        self.obs_norm = Normalizer((self.obs_dim,))
        self.action_norm = Normalizer((self.action_dim,))
        self.delta_norm = Normalizer((self.obs_dim,))
        self.reward_norm = Normalizer((1,))
        self.register_buffer("stats_fitted", torch.zeros(len(_NORMALIZERS), dtype=torch.bool))
        self.register_buffer("elite_idx", torch.arange(config.num_elites, dtype=torch.long))
        # Real dynamics never leave the observation space, so neither do imagined observations.
        spaces = task.key_spaces().values()
        low = torch.cat([torch.as_tensor(space.low, dtype=torch.float32).reshape(-1) for space in spaces])
        high = torch.cat([torch.as_tensor(space.high, dtype=torch.float32).reshape(-1) for space in spaces])
        self.register_buffer("obs_low", low, persistent=False)
        self.register_buffer("obs_high", high, persistent=False)
        self._stats_complete = False

    def _init_logvar_bounds(self, config: EnsembleConfig) -> None:
        max_logvar = torch.full((self.target_dim,), float(config.init_max_logvar))
        min_logvar = torch.full((self.target_dim,), float(config.init_min_logvar))
        if config.learn_logvar_bounds:
            self.max_logvar = nn.Parameter(max_logvar)
            self.min_logvar = nn.Parameter(min_logvar)
        else:
            self.register_buffer("max_logvar", max_logvar)
            self.register_buffer("min_logvar", min_logvar)

    @classmethod
    def observation_keys(cls, features: dict[str, dict], requested: list[str] | None) -> list[str]:
        """The requested keys, else every vector ``observation.*`` feature of the dataset (state first)."""
        if requested:
            return super().observation_keys(features, requested)
        vectors = sorted(
            key
            for key, f in features.items()
            if key.startswith("observation.") and f.get("dtype") not in ("image", "video")
        )
        return vectors or super().observation_keys(features, None)

    # ----------------------------------------------------------------- network
    @property
    def num_members(self) -> int:
        return self.config.num_members

    def _features(self, obs: torch.Tensor, past_obs: torch.Tensor | None, past_action: torch.Tensor | None):
        """What the members read besides the action: the normalised observation, then (with a history) each
        step's change ``obs_{t-k} - obs_{t-k-1}`` in delta units and the past actions, most recent first."""
        features = [self.obs_norm(obs)]
        if self.config.history:
            if past_obs is None or past_action is None:
                past_obs, past_action = self._at_rest(obs)
            newer = torch.cat([obs.unsqueeze(-2), past_obs[..., :-1, :]], dim=-2)
            features.append(((newer - past_obs) / self.delta_norm.std).flatten(-2))
            features.append(self.action_norm(past_action).flatten(-2))
        return torch.cat(features, dim=-1)

    def _at_rest(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The history of a state built from one observation: that observation before it, no actions."""
        lead, history = obs.shape[:-1], self.config.history
        return obs.unsqueeze(-2).expand(*lead, history, self.obs_dim), obs.new_zeros(*lead, history, self.action_dim)

    def _inputs(self, obs: torch.Tensor, action: torch.Tensor, past_obs=None, past_action=None) -> torch.Tensor:
        return torch.cat([self._features(obs, past_obs, past_action), self.action_norm(action)], dim=-1)

    def _heads(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split raw outputs into (mean, bounded logvar, terminal logit) over normalised targets."""
        out = out.to(self.obs_low.dtype)  # under bf16/fp16 autocast, keep exp(-logvar) in full precision
        g = self.target_dim
        mean, raw_logvar = out[..., :g], out[..., g : 2 * g]
        logvar = soft_clamp(raw_logvar, self.min_logvar, self.max_logvar)
        if self.config.predict_terminal:
            terminal_logit = out[..., 2 * g]
        else:
            terminal_logit = torch.full_like(out[..., 0], NEVER_TERMINAL_LOGIT)
        return mean, logvar, terminal_logit

    def predict(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        members: torch.Tensor | None = None,
        past_obs: torch.Tensor | None = None,
        past_action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every selected member on every row: ``obs [N, D]`` -> mean, logvar ``[M', N, D+1]``, logit ``[M', N]``.

        ``past_obs [N, H, D]`` / ``past_action [N, H, A]``: the history of a ``history > 0`` model (at rest if None).
        """
        x = self._inputs(obs, action, past_obs, past_action)
        count = self.num_members if members is None else members.numel()
        return self._heads(self.net(x.expand(count, *x.shape), members))

    def _targets_to_state(self, obs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ``[delta obs, reward]`` -> (next obs in task units, clipped to the space; reward)."""
        step = self.delta_norm.denormalize(target[..., : self.obs_dim])
        next_obs = obs + step if self.config.predict_delta else step
        next_obs = torch.clamp(next_obs, self.obs_low, self.obs_high)
        reward = self.reward_norm.denormalize(target[..., self.obs_dim :]).squeeze(-1)
        return next_obs, reward

    def _float(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.obs_low.device, dtype=self.obs_low.dtype)

    # ----------------------------------------------------------------- encoding
    def _state(
        self, obs: torch.Tensor, member: torch.Tensor, reward: torch.Tensor, logit: torch.Tensor, past=None
    ) -> TensorDict:
        entries = {"obs": obs, "member": member, "reward": reward, "terminal_logit": logit}
        if past is not None:
            entries["past_obs"], entries["past_action"] = past
        return TensorDict(entries, batch_size=obs.shape[:-1], device=obs.device)

    def _markov_state(self, obs: torch.Tensor, past=None) -> TensorDict:
        batch = obs.shape[:-1]
        member = torch.full(batch, UNSET_MEMBER, dtype=torch.long, device=obs.device)
        zeros = torch.zeros(batch, dtype=obs.dtype, device=obs.device)
        return self._state(obs, member, zeros, torch.full_like(zeros, NEVER_TERMINAL_LOGIT), past)

    def _past(self, state: TensorDict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """A state's history (None for a Markov model or a state built by hand without one)."""
        if not self.config.history or "past_obs" not in state.keys():
            return None, None
        return self._float(state["past_obs"]), self._float(state["past_action"])

    def predict_state(self, state: TensorDict, action: torch.Tensor, members: torch.Tensor | None = None):
        """``predict`` from a model state (its observation and, with a history, its past)."""
        return self.predict(self._float(state["obs"]), self._float(action), members, *self._past(state))

    def initial_state(self, batch_size: int) -> TensorDict:
        return self._markov_state(self._float(torch.zeros(batch_size, self.obs_dim)))

    def observe(self, obs: keyed.Observation, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict:
        """The state at step t is the observation at step t (Markov), plus the window's ``history`` steps before
        it (the actions are needed only then)."""
        obs = keyed.flatten_observation(obs, self.task, 2) if self.task.is_keyed else obs
        if obs.dim() != 3 or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observe: obs must be [B, T, {self.obs_dim}], got {tuple(obs.shape)}")
        if prev_action.shape != (*obs.shape[:2], self.action_dim):
            raise ValueError(
                f"observe: prev_action must be [B, T, {self.action_dim}] = {(*obs.shape[:2], self.action_dim)}, "
                f"got {tuple(prev_action.shape)}"
            )
        if is_first.shape != obs.shape[:2]:
            raise ValueError(f"observe: is_first must be [B, T] = {tuple(obs.shape[:2])}, got {tuple(is_first.shape)}")
        obs = self._float(obs)
        if not self.config.history:
            return self._markov_state(obs)
        return self._markov_state(obs, past_steps(obs, self._float(prev_action), is_first, self.config.history))

    # ----------------------------------------------------------------- dynamics
    def imagine(self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None = None) -> TensorDict:
        """Mean of the elites' means without a generator; TS-inf sampling (one member per row) with one."""
        obs = self._float(state["obs"])
        batch = obs.shape[0]
        if action.shape != (batch, self.action_dim):
            raise ValueError(f"imagine: action must be [B, A] = {(batch, self.action_dim)}, got {tuple(action.shape)}")
        action = self._float(action)
        member = state.get("member", None)  # states built by hand may omit it: treat as unassigned
        member = torch.full((batch,), UNSET_MEMBER, device=obs.device) if member is None else member.to(obs.device)
        past_obs, past_action = self._past(state)
        if generator is None:
            mean, _, logits = self.predict(obs, action, self.elite_idx, past_obs, past_action)
            target, terminal_logit = mean.mean(0), mean_probability_logit(logits)
        else:
            member = self._assign_members(member, generator)
            out = forward_routed(self.net, self._inputs(obs, action, past_obs, past_action), member)
            mean, logvar, terminal_logit = self._heads(out)
            noise = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype)
            target = mean + torch.exp(0.5 * logvar) * noise.to(mean.device)
        next_obs, reward = self._targets_to_state(obs, target)
        return self._state(next_obs, member, reward, terminal_logit, self._shifted_past(obs, action, state))

    def _shifted_past(self, obs: torch.Tensor, action: torch.Tensor, state: TensorDict):
        """The next state's history: this step's observation and action in front, the oldest step dropped."""
        if not self.config.history:
            return None
        past_obs, past_action = self._past(state)
        if past_obs is None:
            past_obs, past_action = self._at_rest(obs)
        return (
            torch.cat([obs.unsqueeze(-2), past_obs[..., :-1, :]], dim=-2),
            torch.cat([action.unsqueeze(-2), past_action[..., :-1, :]], dim=-2),
        )

    def _assign_members(self, member: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Give rows without a member one drawn uniformly from the elites; kept for the whole trajectory."""
        draw = torch.randint(self.config.num_elites, member.shape, generator=generator, device=generator.device)
        return torch.where(member < 0, self.elite_idx[draw.to(member.device)], member)

    # ----------------------------------------------------------------- read-outs
    def decode(self, state: TensorDict) -> keyed.Observation:
        return keyed.unflatten_observation(state["obs"], self.task) if self.task.is_keyed else state["obs"]

    def latent(self, state: TensorDict) -> torch.Tensor:
        """The members' inputs besides the action: the normalised observation (and history features)."""
        return self._features(self._float(state["obs"]), *self._past(state))

    @property
    def latent_dim(self) -> int:
        return (self.obs_dim + self.action_dim) * self.config.history + self.obs_dim

    # ----------------------------------------------------------------- training
    def loss_groups(self, batch: TensorDict) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        obs, action, reward, terminated, is_first, mask = self._checked_batch(batch)
        # Pairs (t, t+1) inside one episode give the obs target at t; the last step has none.
        pair = torch.zeros_like(mask)
        pair[:, :-1] = mask[:, :-1] & mask[:, 1:] & ~is_first[:, 1:]
        step = torch.zeros_like(obs)
        step[:, :-1] = obs[:, 1:] - obs[:, :-1] if self.config.predict_delta else obs[:, 1:]
        self._fit_missing_stats(obs, action, reward, step, pair, mask)

        n = mask.numel()
        past_obs, past_action = self._window_history(obs, action, is_first)
        if past_obs is not None:  # rows whose history the window cuts off teach nothing true
            complete = history_complete(is_first, self.config.history)
            pair, mask = pair & complete, mask & complete
            past_obs, past_action = (
                past_obs.reshape(n, *past_obs.shape[2:]),
                past_action.reshape(n, *past_action.shape[2:]),
            )
        mean, logvar, logits = self.predict(obs.reshape(n, -1), action.reshape(n, -1), None, past_obs, past_action)
        target = torch.cat([self.delta_norm(step), self.reward_norm(reward.unsqueeze(-1))], -1).reshape(n, -1)
        w_pair, w_step = self._row_weights(pair.reshape(n), mask.reshape(n))

        nll = gaussian_nll(mean, logvar, target, self.config.nll_beta)
        d = self.obs_dim
        dyn_nll = masked_mean(nll[..., :d].mean(-1), w_pair)  # [M]
        rew_nll = masked_mean(nll[..., d], w_step)
        dynamics = dyn_nll.sum() + self._regularisers()
        groups = {"dynamics": dynamics, "reward": self.config.reward_loss_weight * rew_nll.sum()}
        term_bce = None
        if self.config.predict_terminal:
            labels = terminated.reshape(1, n).to(logits.dtype).expand_as(logits)
            term_bce = masked_mean(F.binary_cross_entropy_with_logits(logits, labels, reduction="none"), w_step)
            groups["terminal"] = self.config.terminal_loss_weight * term_bce.sum()
        return groups, self._metrics(mean, target, dyn_nll + rew_nll, term_bce, pair.reshape(n), mask.reshape(n))

    def _window_history(self, obs: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor):
        """Each window step's past observations and actions (None, None for a Markov model)."""
        history = self.config.history
        if not history:
            return None, None
        if obs.shape[1] < history + 2:
            raise ValueError(
                f"ensemble with history={history} needs training windows of at least {history + 2} steps "
                f"(data.window), got {obs.shape[1]}"
            )
        prev_action = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], dim=1)
        prev_action = prev_action * (~is_first).unsqueeze(-1).to(action.dtype)
        return past_steps(obs, prev_action, is_first, history)

    def _regularisers(self) -> torch.Tensor:
        cfg = self.config
        total = cfg.logvar_bound_penalty * (self.max_logvar.sum() - self.min_logvar.sum())
        if cfg.layer_weight_decay:
            total = total + self.net.weight_l2(cfg.layer_weight_decay)
        return total

    def _row_weights(self, pair: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member row weights ``[M or 1, N]``: the validity masks, times Poisson(1) counts when bootstrapping."""
        w_pair, w_step = pair.float().unsqueeze(0), mask.float().unsqueeze(0)
        if self.config.bootstrap and self.training:
            counts = torch.poisson(torch.ones(self.num_members, mask.numel(), device=mask.device))
            w_pair, w_step = w_pair * counts, w_step * counts
        return w_pair, w_step

    @torch.no_grad()
    def _metrics(
        self,
        mean: torch.Tensor,
        target: torch.Tensor,
        member_nll: torch.Tensor,
        term_bce: torch.Tensor | None,
        pair: torch.Tensor,
        mask: torch.Tensor,
    ) -> dict[str, float]:
        d = self.obs_dim
        sq = (mean - target).pow(2)
        values = {
            "mse/dynamics": masked_mean(sq[..., :d].mean(-1), pair.float()).mean(),
            "mse/reward": masked_mean(sq[..., d], mask.float()).mean(),
            "logvar/max": self.max_logvar.mean(),
            "logvar/min": self.min_logvar.mean(),
        }
        if term_bce is not None:
            values["bce/terminal"] = term_bce.mean()
        names = list(values) + [f"member_nll/{i}" for i in range(self.num_members)]
        flat = torch.cat([torch.stack(list(values.values())), member_nll]).tolist()  # one device sync
        return dict(zip(names, flat))

    def _checked_batch(self, batch: TensorDict) -> tuple[torch.Tensor, ...]:
        keys = ("obs", "action", "reward", "terminated", "is_first", "mask")
        missing = [k for k in keys if k not in batch.keys()]
        if missing:
            raise ValueError(f"ensemble loss: batch is missing key(s) {missing}; it has {sorted(batch.keys())}")
        if self.task.is_keyed:
            batch = batch.clone(False).set("obs", keyed.flatten_observation(batch["obs"], self.task, 2))
        if batch.batch_dims != 2:
            raise ValueError(f"ensemble loss: batch must have batch size [B, T], got {list(batch.batch_size)}")
        expected = {"obs": (self.obs_dim,), "action": (self.action_dim,)}
        for key in keys:
            value = batch[key]
            if value.shape[2:] != expected.get(key, ()):
                raise ValueError(
                    f"ensemble loss: batch[{key!r}] has shape {tuple(value.shape)}, expected "
                    f"{(*batch.batch_size, *expected.get(key, ()))}"
                )
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"ensemble loss: batch[{key!r}] holds non-finite values (NaN or inf)")
        obs, action, reward, terminated = (self._float(batch[k]) for k in keys[:4])
        return obs, action, reward, terminated, batch["is_first"].bool(), batch["mask"].bool()

    # ----------------------------------------------------------------- normalisation and elites
    def fit_normalization(self, stats: dict[str, dict]) -> None:
        """Fit from ``{"obs": {"mean", "std", ...}, "action": ..., "reward": ..., ["delta": ...]}``.

        Keys the model does not use (``"next.done"``, ...) are ignored; normalisers left unset here are
        fitted from the first training batch.
        """
        sources = keyed.flat_stats(stats, self.task, "obs")
        if not self.config.predict_delta and "obs" in sources and "delta" not in sources:
            sources["delta"] = sources["obs"]  # the obs-part target is the next observation itself
        for i, key in enumerate(_NORMALIZERS):
            if key not in sources:
                continue
            entry, norm = sources[key], getattr(self, f"{key}_norm")
            if not isinstance(entry, dict) or "mean" not in entry or "std" not in entry:
                raise ValueError(f"fit_normalization: stats[{key!r}] needs 'mean' and 'std' entries")
            try:
                norm.fit_stats(entry)
            except RuntimeError as err:
                raise ValueError(
                    f"fit_normalization: stats[{key!r}] does not fit the model's shape {tuple(norm.mean.shape)} ({err})"
                ) from None
            if not (torch.isfinite(norm.mean).all() and torch.isfinite(norm.std).all()):
                raise ValueError(f"fit_normalization: stats[{key!r}] holds non-finite values")
            self.stats_fitted[i] = True

    @torch.no_grad()
    def _fit_missing_stats(self, obs, action, reward, step, pair, mask) -> None:
        if self._stats_complete:
            return
        sources = {
            "obs": (obs, mask),
            "action": (action, mask),
            "delta": (step, pair),
            "reward": (reward.unsqueeze(-1), mask),
        }
        for i, key in enumerate(_NORMALIZERS):
            values, valid = sources[key]
            if not bool(self.stats_fitted[i]) and bool(valid.any()):
                rows = values[valid]
                getattr(self, f"{key}_norm").fit(rows.mean(0).cpu(), rows.std(0, unbiased=False).cpu())
                self.stats_fitted[i] = True
        self._stats_complete = bool(self.stats_fitted.all())

    def on_validation_end(self, metrics: dict[str, float]) -> None:
        """Keep the ``num_elites`` members with the lowest validation ``member_nll/{i}`` (any key prefix)."""
        losses = [_find_metric(metrics, f"member_nll/{i}") for i in range(self.num_members)]
        if all(v is None for v in losses):
            return  # validation without per-member metrics (another family's trainer hook): nothing to select
        if any(v is None for v in losses):
            missing = [i for i, v in enumerate(losses) if v is None]
            raise ValueError(f"on_validation_end: metrics lack member_nll for member(s) {missing}")
        scores = torch.nan_to_num(torch.tensor(losses, dtype=torch.float64), nan=float("inf"))
        elites = torch.argsort(scores)[: self.config.num_elites].sort().values
        self.elite_idx.copy_(elites.to(self.elite_idx.device))


def _find_metric(metrics: dict[str, float], name: str) -> float | None:
    """``metrics[name]`` or ``metrics["<prefix>/" + name]`` (trainers prefix validation metrics, e.g. ``val/``)."""
    if name in metrics:
        return float(metrics[name])
    for key, value in metrics.items():
        if key.endswith("/" + name):
            return float(value)
    return None
