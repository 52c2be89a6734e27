"""The world-model protocol every family implements.

Envs, planners and learners use only this interface. Conventions (batch-first, as TD-MPC2 and Dreamer):

* A *state* is a ``TensorDict`` with batch size ``[B]`` (one step) or ``[B, T]`` (a sequence). Its keys are
  the family's own business, except ``"reward"`` and ``"terminal_logit"``, which ``imagine`` may fill so
  that ``reward(state)`` / ``terminal(state)`` are cheap reads.
* Time alignment follows the LeRobot rows: ``obs[:, t]`` is the observation at step t, ``action[:, t]`` the
  action taken there, and ``reward[:, t]`` / ``terminated[:, t]`` what that action produced. So
  ``imagine(state_t, action_t)`` gives ``state_{t+1}`` and ``reward(state_{t+1})`` predicts ``reward[:, t]``.
* ``observe`` encodes observations up to and including step t; the actions passed alongside are the
  *previous* actions (``prev_action[:, t] = action[:, t-1]``, zero where ``is_first``).
* Observations are in the real task's units (the model normalises internally with its own statistics). A task
  observed through one dataset key exchanges plain tensors; a keyed task (``TaskSpec.is_keyed``) exchanges
  ``TensorDict``s with one entry per ``task.obs_keys`` (``worldrl.models.observations``).
* The roles (``worldrl.models.roles``: ``Dynamics``, ``ObservationDecoder``, ``RewardModel``, ``LatentTargets``,
  ``Trainable``) are the smallest interfaces consumers ask for; ``WorldModel`` is their union.
* Randomness comes only from the ``torch.Generator`` passed in; ``generator=None`` means the mean/mode
  prediction, which makes envs deterministic unless they ask for sampling.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from tensordict import TensorDict
from torch import nn

from worldrl.config_loading import config_from_dict
from worldrl.models.external import ExternalWeights
from worldrl.models.observations import Observation
from worldrl.models.task_spec import TaskSpec


@dataclass
class WorldModelConfig:
    """Base of every family's config. Subclasses add their own documented fields."""

    family: ClassVar[str] = ""
    architecture_version: ClassVar[int] = 1
    """Bumped when a family's weights change layout or meaning; checkpoints record it and older ones are refused
    with a message that says so (instead of a list of mismatching tensor names)."""

    def __post_init__(self) -> None:
        """Subclasses validate their fields here and raise ``ValueError`` naming the field."""

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dataclasses.asdict(self)}

    @classmethod
    def tiny(cls) -> dict[str, Any]:
        """Field overrides for a model small enough that the family contract tests run in seconds on a CPU.

        ``tests/test_family_contract.py`` trains, saves, reloads and serves every registered family with these;
        families whose defaults are large override it.
        """
        return {}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "model") -> WorldModelConfig:
        """The config from ``to_dict`` output or a YAML ``model`` section (strict: ``config_from_dict``)."""
        return config_from_dict(cls, {k: v for k, v in data.items() if k != "family"}, where)


@dataclass(frozen=True)
class Capabilities:
    """What a family can do; the env adapts to it instead of special-casing families.

    ``can_decode`` follows from the class (it overrides ``decode``) unless the class declares its capabilities;
    a class that declares ``can_decode=True`` without implementing ``decode`` is refused when it is defined.
    """

    can_decode: bool = True
    """``decode(state)`` returns observations in the task's space (V-JEPA 2 cannot: latent only)."""
    predicts_reward: bool = True
    """``reward(state)`` is learned; otherwise the env needs ``reward="task"`` or a goal distance."""
    predicts_terminal: bool = True
    """``terminal(state)`` is learned; otherwise the env uses the task's termination function or none."""
    recurrent: bool = False
    """The state carries history (an RNN/transformer context) rather than being Markov in the observation."""
    stochastic: bool = True
    """``imagine`` samples when given a generator."""


class WorldModel(nn.Module, abc.ABC):
    """A learned simulator: encode real observations, step the dynamics, read out reward and termination."""

    config_class: ClassVar[type[WorldModelConfig]]
    capabilities: ClassVar[Capabilities] = Capabilities()
    start_states: Observation | None = None
    """Episode-start observations of the training data ``[N, *obs_shape]`` (a TensorDict ``[N]`` for keyed tasks);
    the trainer sets them, checkpoints keep them (``start_states.safetensors``) and envs reset from them by
    default. Not a buffer: the weights file and its keys stay independent of the dataset."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        decodes = cls.decode is not WorldModel.decode
        declared = cls.__dict__.get("capabilities")
        if declared is None:
            cls.capabilities = dataclasses.replace(cls.capabilities, can_decode=decodes)
        elif declared.can_decode and not decodes:
            raise TypeError(f"{cls.__name__} declares can_decode=True but does not implement decode()")

    def __init__(self, config: WorldModelConfig, task: TaskSpec) -> None:
        super().__init__()
        self.config = config
        self.task = task

    # ----------------------------------------------------------------- what the family reads
    @classmethod
    def observation_keys(cls, features: dict[str, dict[str, Any]], requested: list[str] | None) -> list[str]:
        """The dataset keys this family observes, given a dataset's ``features`` and the keys a config asks for.

        ``worldrl train`` builds windows for exactly these keys. The default: the requested keys, else
        ``observation.state``. Families override it to pick what they can read (all vector keys, all cameras).
        """
        keys = list(requested) if requested else ["observation.state"]
        missing = [key for key in keys if key not in features]
        if missing:
            raise ValueError(
                f"the dataset has no feature(s) {missing}; observation features: "
                f"{sorted(k for k in features if k.startswith('observation'))}"
            )
        return keys

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups (``torch.optim`` format): one group at ``lr`` by default.

        Families give components their own learning rates (TD-MPC2 scales the encoder's) by returning several
        groups with an ``lr`` each; frozen parameters (``requires_grad=False``) never appear.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr, "name": "all"}] if params else []

    def external_weights(self) -> dict[str, ExternalWeights]:
        """Large frozen parts loaded from elsewhere (a pretrained encoder, a language model), by state-dict prefix.

        Checkpoints reference them (source and sha256) instead of storing them again; loading rebuilds the model
        from its config (which names the source), verifies the hash and refuses a mismatch.
        """
        return {}

    # ----------------------------------------------------------------- encoding
    @abc.abstractmethod
    def initial_state(self, batch_size: int) -> TensorDict:
        """The state before any observation, batch size ``[batch_size]``."""

    @abc.abstractmethod
    def observe(self, obs: torch.Tensor, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict:
        """Posterior states for observed sequences ``obs [B, T, *obs_shape]``; returns batch size ``[B, T]``."""

    def observe_last(self, obs: torch.Tensor, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict:
        """The state after the last observed step: what an env starts imagining from."""
        return self.observe(obs, prev_action, is_first)[:, -1]

    # ----------------------------------------------------------------- dynamics
    @abc.abstractmethod
    def imagine(self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None = None) -> TensorDict:
        """One step of the learned dynamics (the prior): ``state [B]``, ``action [B, A]`` -> next ``state [B]``."""

    def rollout(self, state: TensorDict, actions: torch.Tensor, generator: torch.Generator | None = None) -> TensorDict:
        """Open-loop rollout of ``actions [B, H, A]``; returns the H next states stacked as ``[B, H]``."""
        states = []
        for t in range(actions.shape[1]):
            state = self.imagine(state, actions[:, t], generator)
            states.append(state)
        return stack_states(states)

    # ----------------------------------------------------------------- read-outs
    def reward(self, state: TensorDict) -> torch.Tensor:
        """Predicted reward of the transition that led to ``state``; shape = state batch size."""
        if "reward" not in state.keys():
            raise NotImplementedError(f"{type(self).__name__} does not predict rewards (capabilities.predicts_reward)")
        return state["reward"]

    def terminal(self, state: TensorDict) -> torch.Tensor:
        """Probability that the transition that led to ``state`` terminated the episode."""
        if "terminal_logit" not in state.keys():
            return torch.zeros(state.batch_size, device=self.device)
        return torch.sigmoid(state["terminal_logit"])

    def decode(self, state: TensorDict) -> Observation:
        """The observation a state stands for, in the task's units and shape (a TensorDict for keyed tasks)."""
        raise NotImplementedError(f"{type(self).__name__} cannot decode observations (capabilities.can_decode)")

    def latent(self, state: TensorDict) -> torch.Tensor:
        """A flat feature vector of the state (what ``obs_mode="latent"`` shows and actor-critics consume)."""
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        raise NotImplementedError

    # ----------------------------------------------------------------- latent targets
    def embed(self, obs: Observation) -> torch.Tensor:
        """Embeddings ``[B, D]`` of single observations ``[B, ...]`` (a goal image, a real future frame).

        The default encodes each observation as an episode's first step and reads ``state_embedding``; latent-only
        families (V-JEPA 2) override it with their target encoder.
        """
        batch = obs.batch_size[0] if isinstance(obs, TensorDict) else obs.shape[0]
        device = self.device
        seq = obs.unsqueeze(1) if isinstance(obs, TensorDict) else obs[:, None]
        prev_action = torch.zeros(batch, 1, self.task.action_dim, device=device)
        is_first = torch.ones(batch, 1, dtype=torch.bool, device=device)
        return self.state_embedding(self.observe_last(seq, prev_action, is_first))

    def state_embedding(self, state: TensorDict) -> torch.Tensor:
        """The embedding an imagined state predicts, in the space of ``embed`` (default: ``latent``)."""
        return self.latent(state)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance ``[B]`` between embeddings ``[B, D]``: what ``reward="goal"`` negates (default: Euclidean)."""
        return torch.linalg.vector_norm(a - b, dim=-1)

    # ----------------------------------------------------------------- training
    def loss_groups(self, batch: TensorDict) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Scalar losses per group (for gradient balancing such as RGB) and metrics to log.

        ``batch`` holds ``obs [B,T,...]``, ``action [B,T,A]``, ``reward [B,T]``, ``terminated [B,T]``,
        ``is_first [B,T]`` and ``mask [B,T]`` (False on padding), in the task's units.
        """
        raise NotImplementedError

    def loss(self, batch: TensorDict) -> tuple[torch.Tensor, dict[str, float]]:
        """One training step's objective: the sum of the loss groups."""
        groups, metrics = self.loss_groups(batch)
        total = torch.stack(list(groups.values())).sum()
        return total, {**metrics, "loss": float(total.detach())}

    def fit_normalization(self, stats: dict[str, dict[str, Any]]) -> None:
        """Set normalisation buffers from dataset statistics (``meta/stats.json`` layout, keyed by model key)."""

    def on_train_step_end(self, step: int) -> None:
        """Hook for per-step bookkeeping (KL annealing, target networks)."""

    def on_validation_end(self, metrics: dict[str, float]) -> None:
        """Hook called with the validation metrics averaged over the validation set (ensemble elite selection)."""

    # ----------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def save_pretrained(self, directory: str) -> None:
        from worldrl.models.checkpoint import save_pretrained

        save_pretrained(self, directory)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload this model and a model card to the Hugging Face Hub (``worldrl.models.hub.push_to_hub``:
        ``revision``, ``private``, ``token``, ``dataset``, ``fidelity``, ...); returns the ``CommitInfo``."""
        from worldrl.models.hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(
        cls, directory_or_hub_id: str, device: str | torch.device = "cpu", revision: str | None = None
    ) -> WorldModel:
        """A checkpoint directory or a Hub repo id (at ``revision``: a branch, tag or commit; default main)."""
        from worldrl.models.checkpoint import load_pretrained

        model = load_pretrained(directory_or_hub_id, device=device, revision=revision)
        if cls is not WorldModel and not isinstance(model, cls):
            raise TypeError(f"{directory_or_hub_id} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def stack_states(states: list[TensorDict]) -> TensorDict:
    """States ``[B]`` of successive steps stacked as ``[B, H]``.

    A tensor that every step shares (the same object, e.g. the vrnn's last real frame, carried unchanged through
    imagination) becomes one expanded view rather than H copies: a planner's rollout of 12,800 candidates would
    otherwise copy a 96x96 frame per candidate and step (2.8 GB for 8 steps). Read-only like any expanded view.
    """
    first, horizon = states[0], len(states)
    out = TensorDict({}, batch_size=[*first.batch_size[:1], horizon, *first.batch_size[1:]], device=first.device)
    for key in first.keys(include_nested=True, leaves_only=True):
        values = [state.get(key) for state in states]
        if all(value is values[0] for value in values[1:]):
            shared = values[0].unsqueeze(1)
            out.set(key, shared.expand(shared.shape[0], horizon, *shared.shape[2:]))
        else:
            out.set(key, torch.stack(values, dim=1))
    return out


@dataclass
class _Registration:
    config_class: type[WorldModelConfig]
    model_class: type[WorldModel]


_REGISTRY: dict[str, _Registration] = {}
_LAZY_FAMILIES = {
    "ensemble": "worldrl.models.ensemble",
    "multimodal": "worldrl.models.multimodal",
    "vrnn": "worldrl.models.vrnn",
    "vjepa2": "worldrl.models.vjepa2",
}


def register_family(name: str, config_class: type[WorldModelConfig], model_class: type[WorldModel]) -> None:
    """Make a family reachable by name (``config.json``'s ``family`` field, ``worldrl train``'s ``model.family``)."""
    config_class.family = name
    model_class.config_class = config_class
    _REGISTRY[name] = _Registration(config_class, model_class)


def get_family(name: str) -> _Registration:
    if name not in _REGISTRY and name in _LAZY_FAMILIES:
        import importlib

        importlib.import_module(_LAZY_FAMILIES[name])
    if name not in _REGISTRY:
        raise KeyError(f"unknown world-model family {name!r}; known families: {available_families()}")
    return _REGISTRY[name]


def available_families() -> list[str]:
    return sorted(set(_REGISTRY) | set(_LAZY_FAMILIES))


def build_model(family: str, config: dict[str, Any] | WorldModelConfig, task: TaskSpec) -> WorldModel:
    reg = get_family(family)
    if isinstance(config, dict):
        config = reg.config_class.from_dict(config)
    return reg.model_class(config, task)


__all__ = [
    "Capabilities",
    "WorldModel",
    "WorldModelConfig",
    "available_families",
    "build_model",
    "stack_states",
    "field",
    "get_family",
    "register_family",
]
