"""TorchRL's Dreamer actor and value losses on a worldrl model, and world-model fitting from TorchRL replay buffers.

The usual TorchRL model-based script with worldrl's pieces in place of ``torchrl.modules.models.model_based``'s:

1. ``fit_from_torchrl(model, replay_buffer, out_dir)``: fit the world model on what a ``torchrl.collectors.Collector``
   wrote into a ``torchrl.data.ReplayBuffer`` (``worldrl.data.torchrl_replay`` reads TorchRL's layout);
2. ``dreamer_actor_value(model)``: a TorchRL ``ProbabilisticActor`` (TanhNormal over the action bounds) and a value
   ``TensorDictModule``, both reading ``belief`` (``worldrl.models.torchrl_modules``' key table);
3. ``DreamerLearner``: ``torchrl.objectives.dreamer.DreamerActorLoss`` / ``DreamerValueLoss`` in
   ``worldrl.envs.torchrl_model_based.WorldModelDreamerEnv``, started from posterior states of real slices
   (``slice_starts``: a ``torchrl.data.SliceSampler`` batch filtered through the model's posterior);
4. ``real_env_policy(model, actor)``: encoder + actor, a policy for the real env (``torchrl.envs.GymEnv``) that
   filters observations exactly as ``slice_starts`` did.

The world model is frozen while the actor learns (``hold_out_net`` inside TorchRL's loss, and no optimiser holds
its parameters). On the real env a Markov family (``ensemble``) encodes each observation on its own; a recurrent
family (``vrnn``) carries its posterior along the episode (``RecurrentRealEnvPolicy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.data import Bounded
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal
from torchrl.objectives.dreamer import DreamerActorLoss, DreamerValueLoss

from worldrl.data.torchrl_replay import replay_from_torchrl
from worldrl.envs.torchrl_model_based import WorldModelDreamerEnv
from worldrl.models.base import WorldModel
from worldrl.models.torchrl_modules import (
    ACTION,
    BELIEF,
    IS_INIT,
    OBSERVATION,
    STATE,
    encoder_module,
    initial_tensordict,
)


def fit_from_torchrl(
    model: WorldModel,
    buffer: Any,
    output_dir: str | Path,
    window: int = 8,
    obs_key: Any = "observation",
    **trainer_options: Any,
) -> Any:
    """Fit ``model`` in place on a TorchRL replay buffer's rows (``TrainerConfig`` fields as keyword options)."""
    from worldrl.training import Trainer, TrainerConfig

    replay = replay_from_torchrl(buffer, obs_key)
    model.fit_normalization(replay.stats())
    options = {
        "progress": False,
        "checkpoint_every": 0,
        "keep_last": 1,
        "loggers": ["jsonl"],
        "device": str(model.device),
        **trainer_options,
    }
    windows = replay.windows(window)
    trainer = Trainer(model, windows, windows, TrainerConfig.from_dict(options), output_dir)
    result = trainer.fit()
    model.start_states = torch.as_tensor(replay.arrays()["obs"][replay.windows(1).is_first])
    model.eval()
    return result


def dreamer_actor_value(model: WorldModel, hidden: int = 64) -> tuple[ProbabilisticActor, TensorDictModule]:
    """A TanhNormal actor over the task's action bounds and a value network, both reading ``belief``."""
    space = model.task.action_space
    dim = model.task.action_dim
    low, high = torch.as_tensor(space.low, dtype=torch.float32), torch.as_tensor(space.high, dtype=torch.float32)
    net = nn.Sequential(
        MLP(in_features=model.latent_dim, out_features=2 * dim, num_cells=[hidden, hidden], activation_class=nn.ELU),
        NormalParamExtractor(),
    )
    actor = ProbabilisticActor(
        TensorDictModule(net, in_keys=[BELIEF], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        out_keys=["action"],
        spec=Bounded(low, high, shape=(dim,)),
        distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high},
    )
    value = TensorDictModule(
        MLP(in_features=model.latent_dim, out_features=1, num_cells=[hidden, hidden], activation_class=nn.ELU),
        in_keys=[BELIEF],
        out_keys=["state_value"],
    )
    return actor.to(model.device), value.to(model.device)


@dataclass
class DreamerLearner:
    """TorchRL's Dreamer actor and value losses on ``model``, one optimiser step each per ``update``.

    Imagination starts where the actor will act: ``slice_starts`` filters real slices through the posterior as the
    real-env policy does (recurrent families); ``starts`` encodes single observations as episode starts (enough for
    a Markov family, whose belief is the observation).

    ``gamma`` 0.9 (not Dreamer's 0.99): TorchRL's Dreamer losses are DreamerV1's, with no return normalisation and no
    slow critic. With Pendulum's rewards (-16..0 per step) and 0.99 the critic's targets keep growing towards -600
    over the first hundreds of updates and the actor follows the lagging critic's gradients into spinning the
    pendulum (measured in a vrnn whose imagined rewards track the real ones: imagined reward fell -5.6 -> -6.6,
    real return -1590 against random's -1380); with 0.9 the targets settle within ~100 updates and the actor learns
    swing-up and balance (scripts/benchmark_torchrl_dreamer.py, docs/benchmarks.md "TorchRL modules").
    """

    model: WorldModel
    actor: ProbabilisticActor
    value: TensorDictModule
    horizon: int = 15
    gamma: float = 0.9
    lmbda: float = 0.95
    actor_lr: float = 3e-4
    value_lr: float = 1e-3
    grad_clip: float = 100.0

    def __post_init__(self) -> None:
        self.model.requires_grad_(False)
        self.env = WorldModelDreamerEnv(self.model)
        self.actor_loss = DreamerActorLoss(self.actor, self.value, self.env, imagination_horizon=self.horizon)
        self.actor_loss.make_value_estimator(gamma=self.gamma, lmbda=self.lmbda)
        self.value_loss = DreamerValueLoss(self.value, gamma=self.gamma)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.actor_lr)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=self.value_lr)

    def starts(self, observations: Any) -> TensorDictBase:
        """Posterior ``state``/``belief`` of real observations ``[N, ...]``: where imagination starts."""
        with torch.no_grad():
            return initial_tensordict(self.model, observations).select(STATE, BELIEF)

    def slice_starts(self, slices: TensorDictBase) -> TensorDictBase:
        """Posterior ``state``/``belief`` after filtering real slices ``[B, T]`` (``observation``, ``action``,
        optionally ``is_init``: a TorchRL ``SliceSampler`` batch reshaped to ``[B, T]``), at their last step.

        The encoder filters each slice from the initial state, as the family's trainer does its windows and as
        ``RecurrentRealEnvPolicy(memory=T)`` does on the real env: the actor learns on the beliefs it will read.
        """
        if slices.batch_dims != 2:
            raise ValueError(f"slice_starts reads slices [B, T], got a tensordict of batch {tuple(slices.batch_size)}")
        keys = [key for key in (OBSERVATION, ACTION, IS_INIT) if key in slices.keys()]
        with torch.no_grad():
            filtered = encoder_module(self.model)(slices.select(*keys).to(self.model.device))
        return filtered.select(STATE, BELIEF)[:, -1]

    def update(self, starts: TensorDictBase) -> dict[str, float]:
        loss_actor, fake = self.actor_loss(starts)
        self.actor_opt.zero_grad()
        loss_actor["loss_actor"].backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), self.grad_clip)
        self.actor_opt.step()
        loss_value, _ = self.value_loss(fake.detach())
        self.value_opt.zero_grad()
        loss_value["loss_value"].backward()
        nn.utils.clip_grad_norm_(self.value.parameters(), self.grad_clip)
        self.value_opt.step()
        return {
            "loss_actor": float(loss_actor["loss_actor"].detach()),
            "loss_value": float(loss_value["loss_value"].detach()),
            "imagined_reward": float(fake.get(("next", "reward")).mean()),
        }


def real_env_policy(model: WorldModel, actor: ProbabilisticActor, memory: int = 16) -> TensorDictModuleBase:
    """``observation`` -> ``action`` on the real env (``GymEnv.rollout`` or collectors).

    A Markov family (``ensemble``): the encoder reads each observation on its own, then the actor. A recurrent
    family (``vrnn``): a ``RecurrentRealEnvPolicy``, which filters the model's posterior along the episode over
    windows of ``memory`` steps (the slice length of ``DreamerLearner.slice_starts``)."""
    if getattr(model.capabilities, "recurrent", False):
        return RecurrentRealEnvPolicy(model, actor, memory)
    return TensorDictSequential(encoder_module(model), actor)


class RecurrentRealEnvPolicy(TensorDictModuleBase):
    """A recurrent world model's posterior carried along real episodes, and the actor acting on its ``belief``.

    Each call appends the observation (and the action the policy took before it) to a window of the last
    ``memory`` steps per batch row and runs ``model.observe_last`` over it, so the actor reads the same kind of
    belief it was trained on in imagination. The window is filtered from the initial state, as the family's trainer
    filters its training windows and ``DreamerLearner.slice_starts`` its slices: with ``memory`` equal to the slice
    length, the belief here is exactly the one imagination started from on the same real steps. Episodes restart
    where ``is_init`` is set (``torchrl.envs.InitTracker``), at the first call, and after ``reset()``. Writes
    ``action`` and ``belief``. Memory older than ``memory`` steps is forgotten (a window, not an unbounded history).
    """

    in_keys = [OBSERVATION, IS_INIT]
    out_keys = ["action", BELIEF]

    def __init__(self, model: WorldModel, actor: ProbabilisticActor, memory: int = 16) -> None:
        super().__init__()
        if memory < 1:
            raise ValueError(f"memory must be >= 1, got {memory}")
        if model.task.is_keyed:
            raise NotImplementedError("RecurrentRealEnvPolicy reads single-key observations")
        self.model, self.actor, self.memory = model, actor, memory
        self.reset()

    def reset(self) -> None:
        """Forget every row's episode: the next call starts new ones."""
        self._window: dict[str, torch.Tensor] | None = None

    def _start(self, rows: int, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        steps, action_dim = self.memory, self.model.task.action_dim
        return {
            "obs": obs.new_zeros(rows, steps, *obs.shape[1:]),
            "prev_action": obs.new_zeros(rows, steps, action_dim),
            "is_first": torch.ones(rows, steps, dtype=torch.bool, device=obs.device),  # padding: one-step episodes
            "last_action": obs.new_zeros(rows, action_dim),
        }

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        batch = tensordict.batch_size
        obs_shape = self.model.task.obs_shape
        obs = tensordict.get(OBSERVATION).reshape(-1, *obs_shape).to(self.model.device).float()
        rows = obs.shape[0]
        fresh = self._window is None or self._window["obs"].shape[0] != rows
        window = self._start(rows, obs) if fresh else self._window
        init = torch.full((rows,), fresh, dtype=torch.bool, device=obs.device)
        if IS_INIT in tensordict.keys():
            init = init | tensordict.get(IS_INIT).reshape(rows).to(obs.device).bool()
        window = {
            "obs": torch.cat([window["obs"][:, 1:], obs[:, None]], 1),
            "prev_action": torch.cat(
                [window["prev_action"][:, 1:], (window["last_action"] * (~init)[:, None])[:, None]], 1
            ),
            "is_first": torch.cat([window["is_first"][:, 1:], init[:, None]], 1),
        }
        starts = window["is_first"].clone()
        starts[:, 0] = True  # the window starts from the initial state, as the trainer's windows and slice_starts' do
        with torch.no_grad():
            belief = self.model.latent(self.model.observe_last(window["obs"], window["prev_action"], starts))
        acting = self.actor(TensorDict({BELIEF: belief}, batch_size=[rows], device=belief.device))
        action = acting.get("action")
        self._window = {**window, "last_action": action.detach()}
        tensordict.set("action", action.reshape(*batch, -1))
        tensordict.set(BELIEF, belief.reshape(*batch, -1))
        return tensordict


__all__ = ["DreamerLearner", "RecurrentRealEnvPolicy", "dreamer_actor_value", "fit_from_torchrl", "real_env_policy"]
