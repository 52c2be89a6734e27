"""Configuration of the probabilistic MLP ensemble (PETS, Chua et al. 2018; MBPO, Janner et al. 2019)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from worldrl.config_loading import check_fields
from worldrl.models.base import WorldModelConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,  # PETS/MBPO "swish"
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}
"""Activation names a config may use (a registry, so YAML presets stay plain strings)."""


@dataclass
class EnsembleConfig(WorldModelConfig):
    """An ensemble of Gaussian MLPs over (normalised delta obs, reward) plus a terminal logit."""

    num_members: int = 7
    """Ensemble size M; every member is trained on every batch (see ``bootstrap``)."""
    num_elites: int = 5
    """Members with the lowest validation NLL used for prediction (``on_validation_end``); <= num_members."""
    hidden_dims: tuple[int, ...] = (200, 200, 200, 200)
    """Widths of the hidden layers of each member."""
    activation: str = "silu"
    """Hidden activation, a key of ``ACTIVATIONS``."""
    learn_logvar_bounds: bool = True
    """PETS soft bounds: max/min log-variance are learned (softplus-clamped); False keeps them fixed."""
    init_max_logvar: float = 0.5
    """Initial upper log-variance bound (in normalised target units)."""
    init_min_logvar: float = -10.0
    """Initial lower log-variance bound (in normalised target units)."""
    logvar_bound_penalty: float = 0.01
    """Weight of ``sum(max_logvar) - sum(min_logvar)``, which keeps the learned bounds tight."""
    layer_weight_decay: tuple[float, ...] = ()
    """Optional MBPO-style L2 penalty per layer (one per hidden layer plus the output layer); empty = none."""
    predict_delta: bool = True
    """Predict ``next_obs - obs`` (True, as PETS/MBPO) or ``next_obs`` itself."""
    predict_terminal: bool = True
    """Learn a terminal logit per member; False leaves termination to the task's own function."""
    reward_loss_weight: float = 1.0
    """Weight of the reward Gaussian NLL group."""
    terminal_loss_weight: float = 1.0
    """Weight of the terminal binary cross-entropy group."""
    history: int = 0
    """Past steps each member reads besides the current one (as ``obs_t - obs_{t-1}``, ... and ``a_{t-1}``, ...),
    for observations that hide part of the state (PushT's pusher velocity). 0 = Markov (PETS/MBPO). The model
    then counts as recurrent (agents keep a window of observations) and training needs ``data.window >=
    history + 2``."""
    nll_beta: float = 0.0
    """beta-NLL (Seitzer et al. 2022): each element's Gaussian NLL is weighted by its predicted variance to the
    power beta (detached). 0 = plain NLL, which lets a member explain hard targets (a pushed block) by a large
    variance instead of fitting their mean; 0.5 is the paper's recommendation; 1 gives the mean the MSE gradient."""
    bootstrap: bool = False
    """Online bootstrap while training: each member weights each row by a Poisson(1) draw (Oza's online
    bagging), so members see different effective data. False: all members see the same batch and differ
    only by initialisation, which PETS/MBPO report to be enough."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        self.layer_weight_decay = tuple(float(w) for w in self.layer_weight_decay)
        layers = len(self.hidden_dims) + 1
        check_fields(
            self,
            {
                "num_members": (self.num_members >= 1, ">= 1"),
                "num_elites": (1 <= self.num_elites <= self.num_members, f"in [1, num_members={self.num_members}]"),
                "hidden_dims": (
                    bool(self.hidden_dims) and all(h >= 1 for h in self.hidden_dims),
                    "a non-empty sequence of positive widths",
                ),
                "activation": (self.activation in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}"),
                "init_min_logvar": (
                    self.init_min_logvar < self.init_max_logvar,
                    f"below init_max_logvar={self.init_max_logvar}",
                ),
                "logvar_bound_penalty": (self.logvar_bound_penalty >= 0, ">= 0"),
                "history": (self.history >= 0, ">= 0"),
                "nll_beta": (0.0 <= self.nll_beta <= 1.0, "in [0, 1]"),
                "reward_loss_weight": (self.reward_loss_weight >= 0, ">= 0"),
                "terminal_loss_weight": (self.terminal_loss_weight >= 0, ">= 0"),
                "layer_weight_decay": (
                    not self.layer_weight_decay
                    or (len(self.layer_weight_decay) == layers and all(w >= 0 for w in self.layer_weight_decay)),
                    f"empty or {layers} values >= 0 (one per layer)",
                ),
            },
        )

    @classmethod
    def tiny(cls) -> dict:
        """Three small members (the contract tests)."""
        return {"num_members": 3, "num_elites": 2, "hidden_dims": [32, 32]}
