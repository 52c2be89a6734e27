"""``WorldModelDreamerEnv``: TorchRL's model-based env (``torchrl.envs.model_based.DreamerEnv``) on worldrl modules.

Built from a model's TorchRL modules (``worldrl.models.torchrl_modules``): its ``world_model`` is the imagination
step as TorchRL's ``WorldModelWrapper`` (transition and termination, then reward), so it is what TorchRL's Dreamer losses
(``torchrl.objectives.dreamer.DreamerActorLoss``) roll actors out in. Keys as the modules': ``state`` (the family's
nested state), ``belief`` (``model.latent(state)``, what actors read), ``action``, ``reward [..., 1]``,
``done``/``terminated [..., 1]`` (the model's termination head; imagination rollouts of the Dreamer loss run their
fixed horizon regardless, as DreamerEnv's do).

Reset starts from the ``state``/``belief`` of the reset tensordict (what ``DreamerActorLoss`` passes: posterior
states of real data), from an ``observation`` entry (encoded as episode starts), or else from start observations
drawn from ``start_observations`` (default: the model's ``start_states``, the first observations of its training
episodes) with the env's seeded generator.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs.model_based.dreamer import DreamerEnv

from worldrl.envs.torchrl_env import box_spec, state_spec
from worldrl.errors import EnvError
from worldrl.models import observations as keyed
from worldrl.models.base import WorldModel
from worldrl.models.torchrl_modules import BELIEF, OBSERVATION, STATE, WorldModelModules, torchrl_modules


class WorldModelDreamerEnv(DreamerEnv):
    """A worldrl model as TorchRL's Dreamer env; pass the model (or its ``WorldModelModules``)."""

    def __init__(
        self,
        model: WorldModel | WorldModelModules,
        *,
        start_observations: Any = None,
        generator: torch.Generator | None = None,
        batch_size: torch.Size | None = None,
    ) -> None:
        modules = model if isinstance(model, WorldModelModules) else torchrl_modules(model, generator)
        if modules.reward is None:
            raise EnvError(
                f"{type(modules.model).__name__} predicts no rewards (capabilities.predicts_reward): "
                "TorchRL's model-based env needs a reward head"
            )
        device = modules.model.device
        super().__init__(
            modules.world_model,
            prior_shape=(),
            belief_shape=(modules.model.latent_dim,),
            obs_decoder=modules.decoder,
            device=device,
            batch_size=batch_size,
        )
        self.modules = modules
        self.__dict__["wm"] = modules.model  # the model's weights live in world_model already
        pool = start_observations if start_observations is not None else self.wm.start_states
        if pool is None:
            raise EnvError("the model has no start_states: pass start_observations=")
        self._pool = keyed.to_torch(pool, self.wm.task, device, 1, what="start observations")
        self._start_generator = torch.Generator()
        self._make_specs()

    def _make_specs(self) -> None:
        with torch.no_grad():
            first = self._encode(keyed.row(self._pool, slice(0, 1)))
            action = torch.zeros(1, self.wm.task.action_dim, device=self.device)
            stepped = self.world_model(first.set("action", action))["next", STATE]
        self._state_keys = [key for key in first[STATE].keys(True, True) if key in stepped.keys(True, True)]
        state = state_spec(first[STATE].select(*self._state_keys), self.device)
        belief = Unbounded((self.wm.latent_dim,), dtype=torch.float32, device=self.device)
        self.observation_spec = Composite({STATE: state, BELIEF: belief}, shape=())
        self.state_spec = Composite({STATE: state.clone(), BELIEF: belief.clone()}, shape=())
        space = self.wm.task.action_space
        self.action_spec = box_spec(space.low, space.high, torch.float32, self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        flag = Categorical(2, shape=(1,), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(done=flag, terminated=flag.clone(), shape=())

    def _encode(self, observations: Any) -> TensorDictBase:
        from worldrl.models.torchrl_modules import initial_tensordict

        return initial_tensordict(self.wm, observations)

    def _clean(self, td: TensorDictBase) -> TensorDictBase:
        out = td.select(STATE, BELIEF)
        out.set(STATE, td.get(STATE).select(*self._state_keys))
        return out

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        batch = tensordict.batch_size if tensordict is not None else self.batch_size
        if tensordict is not None and STATE in tensordict.keys():
            if BELIEF not in tensordict.keys():
                tensordict = tensordict.clone(False).set(
                    BELIEF, self.wm.latent(tensordict.get(STATE).reshape(-1)).reshape(*batch, -1)
                )
            return self._clean(tensordict).clone()
        count = math.prod(batch)
        if tensordict is not None and OBSERVATION in tensordict.keys():
            obs = tensordict.get(OBSERVATION)
            keyed_obs = isinstance(obs, TensorDictBase)
            starts = obs.reshape(count) if keyed_obs else obs.reshape(count, *obs.shape[len(batch) :])
        else:
            draw = torch.randint(keyed.batch_size_of(self._pool), (count,), generator=self._start_generator)
            starts = keyed.row(self._pool, draw)
        return self._clean(self._encode(starts)).reshape(batch)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        out = self.world_model(tensordict.clone(False))
        nxt = out.get("next")
        result = self._clean(nxt)
        for key in ("reward", "done", "terminated"):
            result.set(key, nxt.get(key))
        return result

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        self._start_generator.manual_seed(seed)
