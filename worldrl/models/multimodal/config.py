"""``MultimodalConfig``: the multimodal transformer family's hyperparameters (defaults = the document's)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from worldrl.config_loading import check_fields
from worldrl.models.base import WorldModelConfig
from worldrl.models.multimodal.audio_mixture import GREEDY_AUDIO

PHYSICS_CONTEXTS = ("feature", "action")
"""What the physics head may read beside the state (``MultimodalConfig.physics_context``)."""


@dataclass
class MultimodalConfig(WorldModelConfig):
    """Video + audio (+ state) transformer world model over the codes of a learned FSQ frame tokenizer."""

    architecture_version: ClassVar[int] = 7
    """7: the next-audio mixture reads the current spectrum beside the features (a ringing contact decays in
    proportion to its level); the physics head scales the three axes of a position or velocity alike.
    6: predictive (P-frame) codes: the tokenizer encodes each frame beside the frame before it, so codes say what
    changed (an optional SKIP code copies a patch exactly, ``skip_threshold``), and the transformer reads each frame's
    pixels beside its codes (``frame_embed``).
    5: the tokenizer's decoder sees the reference frame (the frame before) when it paints over it; the code
    predictor sees each patch's current code and adds a per-patch copy logit to it.
    4: the physics head is a gated interaction network over the objects (``physics.InteractionDynamics``).
    3: frames are decoded over the previous frame with a per-patch copy (a patch whose code equals the previous
    frame's copies its pixels) and the next audio is a mixture (``audio_components``). 2: the physics head
    integrates its own velocities. Older checkpoints are refused with a one-line error."""

    img_size: int = 256
    """Side of the square frames the model sees (dataset frames are resized to it and back)."""
    patch_size: int = 16
    """Side of one image patch = the tokenizer's downsampling factor; (img_size/patch_size)^2 codes per frame."""
    in_channels: int = 3
    """Image channels."""
    audio_dim: int = 128
    """Audio features per frame (mel bins); must equal the dataset's ``observation.audio`` width."""
    audio_seq_len: int = 256
    """Longest sequence (time steps) the temporal positional encoding covers."""
    embed_dim: int = 768
    """Width D of every transformer token."""
    depth: int = 12
    """Blocks of the causal temporal transformer over the per-step latent tokens."""
    num_heads: int = 12
    """Attention heads everywhere; must divide ``embed_dim``."""
    mlp_ratio: float = 4.0
    """Hidden width of the transformer MLPs as a multiple of ``embed_dim``."""
    latent_dim: int = 512
    """Width of the flat state feature (``WorldModel.latent``) read by the reward, terminal and physics heads."""
    num_latent_tokens: int = 32
    """Learned queries that summarise one step's patches, audio and state (cross-attention) for the temporal model."""
    decode_depth: int = 8
    """Blocks of the next-frame predictor: patch queries attend to the step's latent tokens and predict code logits."""
    drop_rate: float = 0.0
    """Dropout on token activations."""
    attn_drop_rate: float = 0.0
    """Dropout on attention weights."""
    use_physics_loss: bool = True
    """Physics head: next object states from the latent, supervised by ``observation.state`` (+ consistency)."""
    physics_embed_dim: int = 128
    """Hidden width of the physics head."""
    physics_context: str = "feature"
    """What the physics head reads beside the state (``PHYSICS_CONTEXTS``): ``feature``, the heads' shared input
    (transformer latent and action embedding, trained by the head's loss too); ``action``, the step's normalised
    action alone, so the head is a state-and-action dynamics model. On Playground scenes the head is level with
    constant velocity either way, and with the latent its gate opened twice as often in held-out rollouts
    (docs/benchmarks.md "Multimodal family")."""
    physics_contact_radius: float = 0.0
    """Metres: with a state layout, the physics head's gate (a velocity change) opens only for objects with another
    present object's centre this close (0: any object). Velocity events among free objects are contacts between
    them; rolled out on its own states, a head without this opened its gate for lone objects (docs/benchmarks.md
    "Multimodal family"). Leave 0 where lone objects change velocity (drops, walls, ramps)."""
    physics_contact_features: bool = False
    """With a state layout, each pair message of the physics head also reads whether the two objects touch within
    the next step (``physics.contact_features``: gaps now and after one step, closing speed, steps to contact; an
    object's extent is its height above a floor at z = 0). On 288 held-out collide starts the CPU preset's head went
    from level with constant velocity (v13) to 26% below it at 20 steps (v14; docs/benchmarks.md "Multimodal
    family"). Off: the edge MLP sees positions and velocities only (older checkpoints)."""
    fsq_levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])
    """Finite scalar quantisation levels per code dimension; the code vocabulary is their product."""
    tokenizer_channels: int = 64
    """Channels of the tokenizer's conv encoder/decoder at full resolution (doubled at each downsampling)."""
    tokenizer_refine_channels: int = 0
    """Channels of a two-conv full-resolution refiner in the tokenizer's decoder (it sees the paint, the keep mask
    and the reference frame); 0 = a single 3x3 conv there."""
    reference_frame: bool = True
    """Predictive codes: each frame is encoded beside the frame before it and decoded over it (observed or generated),
    the decoder's keep mask copying what did not change, so the codes carry what changed (a one-pixel move included).
    Off: each frame is encoded and painted from its codes alone."""
    skip_threshold: float = 0.0
    """With ``reference_frame`` and > 0: a patch none of whose pixels changed by this much (in [0, 1]) since the frame
    before gets the SKIP code (index ``prod(fsq_levels)``, one past the FSQ codes) and is copied exactly, as a video
    codec's skip blocks. Off by default, measured: at 0.02 (above the mp4 noise between identical Playground frames)
    the tokenizer ceiling fell below repeat-last from 10 steps on (35.72 / 33.64 dB against 36.36 / 34.81 at 10 / 20
    steps) where the same preset without it beats repeat-last at every horizon: slow motion that stays under the
    threshold at each step is never painted, and those patches freeze (docs/benchmarks.md, "Multimodal family")."""
    chained_reconstruction: bool = True
    """With ``reference_frame``: the tokenizer's training reconstruction decodes each frame over its own reconstruction
    of the frame before (gradient stopped there), as a rollout decodes over its own frames, instead of over the real
    frame; the codes stay those of the real pair (the predictor's targets). The decoder so learns to paint over
    imperfect frames and errors stop compounding (the tokenizer ceiling at 20 steps, docs/benchmarks.md)."""
    tokenizer_anchor: bool = False
    """With ``reference_frame``: the tokenizer's decoder also reads the chain's anchor (the last real frame a rollout
    continues; in training the window's first frame) and the steps from it to the reference, and what its keep mask
    keeps may come from the anchor instead of the decoded frame before, whose kept pixels have been repainted at
    every step of the chain (``FrameTokenizer``). With it the CPU preset's SSIM at 20 steps went from 0.0018 below
    repeat-last (v14) to 0.0007 above (v18); with ``tokenizer_flow`` as well, above at every horizon (v19;
    docs/benchmarks.md "Multimodal family"). Off: older checkpoints."""
    tokenizer_flow: bool = False
    """With ``reference_frame``: the tokenizer's decoder also paints a motion field (up to ``tokenizer.FLOW_MAX``
    pixels per step) and keeps the reference moved by it (motion compensation, as a video codec's P-frames), so a
    code can move what its patch holds instead of repainting it. With ``tokenizer_anchor`` (the CPU preset, v19) the
    rollouts' PSNR and SSIM are above repeat-last at every horizon, where the anchor alone (v18) was level in SSIM at
    5 and 10 steps (docs/benchmarks.md "Multimodal family"). Off: older checkpoints."""
    audio_components: int = 8
    """Components of the next-audio mixture (each a diagonal Gaussian around the current audio plus a learned
    change); the generator samples the component like a frame code and feeds its mean back."""
    greedy_audio: str = "mean"
    """What a greedy rollout (no generator, temperature 0, beam search) feeds back as the next audio: ``mean``, the
    mixture's mean (the lowest expected squared error), or ``mode``, the most likely component's mean (sharp onsets,
    but a rollout drifts to the likeliest future); ``audio_mixture.GREEDY_AUDIO``. The training rollout
    (``audio_rollout_steps``) feeds back the same."""
    audio_state_cue: bool = False
    """The audio mixture's component logits (not its spectra) also read the physics head's view of the step: the
    normalised state, its predicted successor and, with a state layout, each object's contact-event probability
    (``PhysicsHead.step_with_cue``; detached). When a contact sounds depends on where the objects are, which the shared
    features barely carry (next-frame onsets at chance); only the choice of component reads the cue, so a rollout on
    drifting states can mistime a sound but not invent a spectrum (reading the state in the spectra diverged,
    docs/benchmarks.md "Multimodal family"). Needs the physics head (``use_physics_loss`` and a state)."""
    context_length: int = 8
    """Steps of history the simulator state keeps (the transformer's context when serving as an env)."""
    learnable_positions: bool = True
    """Learned spatio-temporal position embeddings (False: fixed sinusoids)."""
    cross_modal_temperature: float = 1.0
    """Softmax temperature of the audio <-> vision cross-modal attention."""
    recon_weight: float = 1.0
    """Weight of the tokenizer's frame reconstruction error (MultimodalLoss ``reconstruction``)."""
    prediction_weight: float = 1.0
    """Weight of the next-frame code cross-entropy (the generative objective)."""
    audio_weight: float = 1.0
    """Weight of the next-step audio feature error."""
    perceptual_weight: float = 0.1
    """MultimodalLoss ``perceptual_weight`` (active only when a frozen feature network is attached)."""
    temporal_weight: float = 0.05
    """MultimodalLoss ``temporal_weight``: reconstructed frame differences match the real ones."""
    physics_weight: float = 0.1
    """MultimodalLoss ``physics_weight``: next-state error plus the velocity/position consistency term."""
    spectral_weight: float = 0.05
    """MultimodalLoss ``spectral_weight``: log-magnitude error of the predicted audio spectrogram."""
    ssim_weight: float = 0.0
    """MultimodalLoss ``ssim_weight``: 1 - SSIM of the tokenizer's reconstructed frames (over the frame before, as a
    rollout decodes them); 0 = off."""
    consistency_weight: float = 0.1
    """Share of the physics term given to velocity/position consistency (layouts with known positions only)."""
    physics_rollout_steps: int = 8
    """Steps the physics head rolls out on its own predicted states in training (from the window's first step, up
    to the window's end; layouts with known positions only): compounding errors are trained, not only one step."""
    audio_rollout_steps: int = 8
    """Steps the next-audio mixture rolls out on its own greedy audio (``greedy_audio``) in training (from the
    window's first step, on the teacher-forced features): the squared error of that rollout is added to the audio
    term, so a head that reads its own last spectrum learns not to compound its errors; 0 = off."""

    def __post_init__(self) -> None:
        self.fsq_levels = [int(v) for v in self.fsq_levels]
        check_fields(
            self,
            {
                "img_size": (self.img_size >= 4, ">= 4"),
                "patch_size": (
                    self.patch_size >= 1 and self.img_size % self.patch_size == 0,
                    f"a divisor of img_size={self.img_size}",
                ),
                "in_channels": (self.in_channels >= 1, ">= 1"),
                "audio_dim": (self.audio_dim >= 1, ">= 1"),
                "audio_seq_len": (self.audio_seq_len >= 2, ">= 2"),
                "embed_dim": (self.embed_dim >= 8, ">= 8"),
                "depth": (self.depth >= 1, ">= 1"),
                "num_heads": (
                    self.num_heads >= 1 and self.embed_dim % self.num_heads == 0,
                    f"a divisor of embed_dim={self.embed_dim}",
                ),
                "mlp_ratio": (self.mlp_ratio > 0, "> 0"),
                "latent_dim": (self.latent_dim >= 1, ">= 1"),
                "num_latent_tokens": (self.num_latent_tokens >= 1, ">= 1"),
                "decode_depth": (self.decode_depth >= 1, ">= 1"),
                "drop_rate": (0 <= self.drop_rate < 1, "in [0, 1)"),
                "attn_drop_rate": (0 <= self.attn_drop_rate < 1, "in [0, 1)"),
                "physics_embed_dim": (self.physics_embed_dim >= 1, ">= 1"),
                "physics_context": (self.physics_context in PHYSICS_CONTEXTS, f"one of {list(PHYSICS_CONTEXTS)}"),
                "physics_contact_radius": (self.physics_contact_radius >= 0, ">= 0"),
                "fsq_levels": (
                    len(self.fsq_levels) >= 1 and all(v >= 2 for v in self.fsq_levels),
                    "a non-empty list of levels >= 2",
                ),
                "tokenizer_channels": (self.tokenizer_channels >= 4, ">= 4"),
                "tokenizer_refine_channels": (self.tokenizer_refine_channels >= 0, ">= 0"),
                "audio_components": (self.audio_components >= 1, ">= 1"),
                "context_length": (
                    1 <= self.context_length <= self.audio_seq_len,
                    f"in [1, audio_seq_len={self.audio_seq_len}]",
                ),
                "cross_modal_temperature": (self.cross_modal_temperature > 0, "> 0"),
                "consistency_weight": (self.consistency_weight >= 0, ">= 0"),
                "physics_rollout_steps": (self.physics_rollout_steps >= 1, ">= 1"),
                "audio_rollout_steps": (self.audio_rollout_steps >= 0, ">= 0"),
                "greedy_audio": (self.greedy_audio in GREEDY_AUDIO, f"one of {sorted(GREEDY_AUDIO)}"),
                "skip_threshold": (0 <= self.skip_threshold < 1, "in [0, 1)"),
                **{
                    name: (getattr(self, name) >= 0, ">= 0")
                    for name in (
                        "recon_weight",
                        "prediction_weight",
                        "audio_weight",
                        "perceptual_weight",
                        "temporal_weight",
                        "physics_weight",
                        "spectral_weight",
                        "ssim_weight",
                    )
                },
            },
        )

    @property
    def vocab_size(self) -> int:
        """Codes per patch: the FSQ codes, plus SKIP when ``uses_skip``."""
        return math.prod(self.fsq_levels) + int(self.uses_skip)

    @property
    def uses_skip(self) -> bool:
        return self.reference_frame and self.skip_threshold > 0

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_size**2

    @classmethod
    def tiny(cls) -> dict[str, Any]:
        return {
            "img_size": 32,
            "patch_size": 8,
            "audio_dim": 8,
            "audio_seq_len": 16,
            "embed_dim": 32,
            "depth": 1,
            "num_heads": 2,
            "mlp_ratio": 2.0,
            "latent_dim": 16,
            "num_latent_tokens": 2,
            "decode_depth": 1,
            "physics_embed_dim": 16,
            "fsq_levels": [4, 3],
            "tokenizer_channels": 8,
            "audio_components": 3,
            "context_length": 3,
        }


__all__ = ["MultimodalConfig"]
