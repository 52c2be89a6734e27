"""``VRNNConfig``: the DPGMM-VRNN family's hyperparameters (defaults = the AIME document's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from worldrl.config_loading import check_fields, require
from worldrl.models.base import WorldModelConfig


@dataclass
class VRNNConfig(WorldModelConfig):
    """DPGMM variational recurrent autoencoder with Perceiver context and attention schema."""

    architecture_version: ClassVar[int] = 2
    """2: decoder and heads read (h, z), decoder conditioned on predicted maps (the issue-12 rewiring)."""

    latent_dim: int = 36
    """Size of the stochastic latent z_t."""
    hidden_dim: int = 512
    """LSTM hidden size (the deterministic state h_t) and width of the MLPs."""
    context_dim: int = 256
    """Width of the Perceiver latent array and of the context vector c_t."""
    max_components: int = 15
    """Truncation K of the Dirichlet-process mixture prior (K-1 Kumaraswamy sticks, remainder to the last)."""
    n_lstm_layers: int = 1
    """Stacked LSTM layers of the dynamics."""
    use_orthogonal: bool = True
    """Orthogonal weights / zero biases for the LSTM (``worldrl.nn.orthogonal_init_``)."""
    num_latents: int = 8
    """Rows of the Perceiver latent array that reads each step's window of frame tokens."""
    num_heads: int = 4
    """Attention heads of the Perceiver cross-attention and read-out; must divide ``context_dim``."""
    context_window: int = 4
    """Frames the causal Perceiver reads for the context c_t: t-W+1 .. t of the same episode."""
    use_codebook: bool = False
    """Vector-quantise the Perceiver's frame tokens (nearest codebook entry, straight-through, commitment loss,
    dead-code restarts). Off by default: the context is a posterior feature and needs no finite vocabulary."""
    codebook_size: int = 256
    """Entries of the frame-token codebook."""
    commitment_weight: float = 0.25
    """Weight of the commitment term ||e - sg(q)||^2 in the codebook loss."""
    codebook_dead_fraction: float = 0.03
    """A code whose EMA usage share falls below this fraction of 1/codebook_size is restarted on a batch token."""
    use_attention_schema: bool = True
    """Slot-attention maps over frame tokens (image positions, or observation dimensions for vector obs)."""
    num_slots: int = 5
    """Slots of the attention schema."""
    slot_dim: int = 64
    """Width of one slot."""
    slot_iterations: int = 3
    """Slot-attention refinement iterations."""
    token_dim: int = 64
    """Embedding width of one observation dimension when vector observations are tokenised."""
    encoder_base_channels: int = 32
    """Channels of the first conv layer of the pixel encoder (doubled at each downsampling)."""
    decoder_base_channels: int = 32
    """Channels of the last conv layer of the pixel decoder (doubled towards its input)."""
    image_size: int = 64
    """Square side the pixel model works at; frames of another size are resized in and out."""
    feature_grid: int = 8
    """Side of the conv feature map = resolution of the attention maps (8x8 at 64x64 in the document)."""
    reference_frame: bool = False
    """Pixel models: the decoder paints a frame and a keep-mask at ``image_size`` that are blended, at the task's
    resolution, with the last real frame observed (``worldrl.models.vrnn.reference``), so the static background
    is copied sharp instead of re-generated. Off by default (checkpoints without the mask plane keep loading)."""
    reference_refiner_channels: int = 0
    """With ``reference_frame``: hidden channels of a conv net at the task's resolution that sees the upsampled
    paint and keep-mask beside the reference frame and its age (steps since that frame) and corrects both
    (``reference.ReferenceRefiner``); 0 = off, the mask is then decided from the latent alone."""
    reference_features: bool = False
    """With ``reference_frame``: the decoder also reads the reference frame, encoded by the model's own frame
    encoder, as extra channels of its ``feature_grid`` map (plus a plane that says whether there is a reference).
    The latent then says how the scene changed since that frame, and the convs move what the reference shows
    where it is; a decoder from a vector alone has to learn to draw small objects at every position, which on
    PushT stayed on the recording's mean frame (docs/benchmarks.md, "Robot-learning suites")."""
    beta: float = 1.0
    """Final weight of all KL terms (mixture, sticks, Gamma)."""
    free_nats: float = 1.0
    """Free bits of the mixture KL per step: each balanced KL term is max(free_nats, KL) (no gradient below)."""
    kl_dyn_weight: float = 0.5
    """KL balancing (DreamerV3): weight of KL(sg(q) || p), which trains the prior towards the posterior."""
    kl_rep_weight: float = 0.1
    """KL balancing: weight of KL(q || sg(p)), which pulls the posterior towards the prior (the price of coding)."""
    recon_std: float = 0.1
    """Std of the Gaussian observation likelihood, in model units (normalised vectors, [0, 1] pixels):
    reconstruction NLL = sum of squared errors / (2 recon_std^2). Small = precise codes are worth their KL."""
    kl_anneal_steps: int = 0
    """Linear warm-up of beta from 0 over this many training steps (0 = no annealing)."""
    lambda_recon: float = 1.0
    """Weight of the reconstruction NLL."""
    lambda_prior_recon: float = 0.0
    """Weight of the one-step prior reconstruction: o_{t+1} decoded from the prior's mixture mean after one
    imagined step from the posterior state of t (what open-loop imagination decodes). Trains the prior and the
    decoder on the states imagination produces; 0 = off (the plain ELBO)."""
    prior_recon_ssim: float = 0.0
    """Pixel models with ``lambda_prior_recon``: weight of 1 - SSIM of each one-step imagined frame against the real
    one, added to that frame's Gaussian NLL, as ``open_loop_ssim`` does for the open-loop frames. It scores the
    frame a one-step prediction shows (the open-loop loss reaches it once per window, this at every step). 0 = off."""
    lambda_open_loop: float = 0.0
    """Weight of the open-loop reconstruction (latent overshooting, PlaNet): from the posterior state of one step
    per window the model imagines ``open_loop_horizon`` steps under the recorded actions, taking the prior's
    mixture mean as z (what the mean prediction of ``imagine`` does), and every imagined state is decoded against
    the real frame (pixel models with ``reference_frame``: blended with the frame of the start step, as after
    ``observe``). Trains the dynamics, the prior and the decoder on open-loop rollouts; 0 = off."""
    open_loop_ssim: float = 0.0
    """Pixel models with ``lambda_open_loop``: weight of 1 - SSIM of each open-loop imagined frame against the real
    one, added to that frame's Gaussian NLL (same units, nats per frame). The Gaussian's best guess where the
    future is uncertain is a blur (the moving arms of ALOHA), which SSIM scores as lost structure; this term makes
    the blend keep structure there. 0 = off."""
    open_loop_horizon: int = 10
    """Imagined steps of the open-loop reconstruction (at most window - 1); its start step is drawn uniformly
    among the steps that leave this many steps in the window."""
    supervision_keys: list[str] = field(default_factory=list)
    """Dataset keys (vectors) the model learns to predict from its latent but never observes: privileged
    supervision, e.g. PushT's block keypoints ``observation.environment_state`` for a model that sees only frames.
    A head on (h, z) is scored on the filtered states, the one-step prior states and, with ``lambda_open_loop``,
    the open-loop rollouts, so the dynamics have to carry what these keys measure (a small object's motion is a
    few pixels of the frame loss). ``worldrl train`` loads them into the windows and records their sizes in the
    task (``TaskSpec.extra["supervision_dims"]``); planning and the env still read frames only. Empty = off."""
    supervision_motion: bool = False
    """With ``supervision_keys``: the heads predict how far each key moved since the last real observation (the
    one-step state of t: since step t; the open-loop rollout: since its start), in units of a running RMS of those
    motions, instead of the key's value; the filtered states are then not scored (nothing moved since their own
    frame). A small object's pushes are a rounding error of its position's spread, so in absolute units the loss
    barely sees them; on its own scale the motion is the whole target. ``predict_supervision`` then returns motions."""
    lambda_supervision: float = 1.0
    """Weight of the supervision heads' squared error (normalised units; predictive group)."""
    lambda_reward: float = 1.0
    """Weight of the reward-head MSE (predictive group)."""
    heads_read_reference: bool = False
    """Pixel models with ``reference_features``: the reward and continuation heads also read an embedding of the
    reference frame (the last real frame, encoded as the decoder reads it). With the reference in the decoder the
    latent holds how the scene changed since that frame, not where things are, so a reward that depends on where
    they are (PushT's coverage of the goal) cannot be read from (h, z) alone."""
    lambda_open_loop_reward: float = 0.0
    """Weight of the reward MSE and continuation BCE along the open-loop rollout (``lambda_open_loop``; reference:
    the start's frame). One-step training alone leaves the heads unscored on the imagined states that planning
    reads several steps out; 0 = off. On PushT from pixels the two options halved the 5- and 10-step reward error
    but MPC did not improve (docs/benchmarks.md, "Robot-learning suites")."""
    lambda_continue: float = 1.0
    """Weight of the continuation-head BCE (predictive group)."""
    lambda_token: float = 1.0
    """Weight of the frame-token prediction loss: h_t (before o_t is seen) predicts the Perceiver's next tokens."""
    lambda_att_dyn: float = 0.1
    """Weight of the attention-dynamics loss (predict the maps of step t from h_t; the decoder reads these)."""
    lambda_gram: float = 0.05
    """Weight of the Gram (slot-overlap) penalty on the attention maps."""
    entropy_weight: float = 0.1
    """Weight of the normalised spatial entropy of each slot's map (lower = focused slots)."""
    gamma_prior_shape: float = 1.0
    """Shape of the Gamma hyperprior on the DP concentration alpha."""
    gamma_prior_rate: float = 1.0
    """Rate of the Gamma hyperprior on alpha."""
    logvar_min: float = -10.0
    """Lower clamp of every Gaussian log-variance."""
    logvar_max: float = 2.0
    """Upper clamp of every Gaussian log-variance."""
    stick_kl_terms: int = 50
    """Terms of the Taylor series in the Kumaraswamy-Beta KL."""

    def __post_init__(self) -> None:
        positive = (
            "latent_dim hidden_dim context_dim n_lstm_layers num_latents num_heads codebook_size num_slots "
            "slot_dim slot_iterations token_dim encoder_base_channels decoder_base_channels image_size "
            "feature_grid stick_kl_terms context_window open_loop_horizon"
        ).split()
        for name in positive:
            value = getattr(self, name)
            require(self, name, isinstance(value, int) and value >= 1, "an integer >= 1")
        non_negative = (
            "beta free_nats kl_dyn_weight kl_rep_weight commitment_weight lambda_recon lambda_prior_recon lambda_open_loop "
            "lambda_supervision lambda_reward lambda_open_loop_reward lambda_continue "
            "lambda_token lambda_att_dyn lambda_gram entropy_weight kl_anneal_steps"
        ).split()
        for name in non_negative:
            require(self, name, getattr(self, name) >= 0, ">= 0")
        ratio = self.image_size // self.feature_grid
        check_fields(
            self,
            {
                "max_components": (self.max_components >= 2, ">= 2 (K-1 sticks)"),
                "num_heads": (self.context_dim % self.num_heads == 0, f"a divisor of context_dim={self.context_dim}"),
                "image_size": (
                    self.image_size % self.feature_grid == 0 and ratio & (ratio - 1) == 0,
                    f"feature_grid={self.feature_grid} times a power of two",
                ),
                "recon_std": (self.recon_std > 0, "> 0"),
                "reference_refiner_channels": (
                    self.reference_refiner_channels >= 0
                    and (self.reference_frame or not self.reference_refiner_channels),
                    ">= 0, and 0 unless reference_frame is on",
                ),
                "reference_features": (
                    self.reference_frame or not self.reference_features,
                    "false unless reference_frame is on",
                ),
                "heads_read_reference": (
                    self.reference_features or not self.heads_read_reference,
                    "false unless reference_features is on",
                ),
                "lambda_open_loop_reward": (
                    self.lambda_open_loop > 0 or not self.lambda_open_loop_reward,
                    "0 unless lambda_open_loop is on",
                ),
                "prior_recon_ssim": (
                    self.prior_recon_ssim >= 0 and (self.lambda_prior_recon > 0 or not self.prior_recon_ssim),
                    ">= 0, and 0 unless lambda_prior_recon is on",
                ),
                "open_loop_ssim": (
                    self.open_loop_ssim >= 0 and (self.lambda_open_loop > 0 or not self.open_loop_ssim),
                    ">= 0, and 0 unless lambda_open_loop is on",
                ),
                "supervision_keys": (
                    isinstance(self.supervision_keys, list | tuple)
                    and all(isinstance(k, str) and k for k in self.supervision_keys)
                    and len(set(self.supervision_keys)) == len(self.supervision_keys),
                    "a list of distinct dataset keys",
                ),
                "supervision_motion": (
                    bool(self.supervision_keys) or not self.supervision_motion,
                    "false unless supervision_keys are given",
                ),
                "codebook_dead_fraction": (0 <= self.codebook_dead_fraction < 1, "in [0, 1)"),
                "gamma_prior_shape": (self.gamma_prior_shape > 0, "> 0"),
                "gamma_prior_rate": (self.gamma_prior_rate > 0, "> 0"),
                "logvar_min": (self.logvar_min < self.logvar_max, f"< logvar_max={self.logvar_max}"),
            },
        )

    @classmethod
    def tiny(cls) -> dict[str, Any]:
        """A few thousand parameters (the contract tests)."""
        return {
            "latent_dim": 4,
            "hidden_dim": 16,
            "context_dim": 8,
            "max_components": 3,
            "num_latents": 2,
            "num_heads": 1,
            "num_slots": 2,
            "slot_dim": 8,
            "token_dim": 8,
            "codebook_size": 8,
        }
