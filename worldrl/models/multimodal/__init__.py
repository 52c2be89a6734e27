"""The ``multimodal`` family: a video + audio (+ state) transformer world model over learned frame codes.

Public pieces: ``TransformerWorldModel`` (the document's ``nn.Module``), its components ``MultiheadAttention``,
``CrossModalAttention``, ``SpatioTemporalEncoding``, the ``FrameTokenizer`` (conv autoencoder + FSQ), the
``PhysicsHead``, ``MultimodalLoss`` and the worldrl family ``MultimodalWorldModel`` (``WorldModel-v0`` serves it).

Sampling interface (what a generator calls; all on ``TransformerWorldModel``, reachable from the family as
``family_model.net``):

* ``net.encode_frames(video [B, T, C, H, W] float in [0, 1], reference=None) -> (codes [B, T, N] long, quantized
  [B, T, N, d])`` with ``N = net.tokens_per_frame = (img_size / patch_size)^2`` and codes in ``[0, net.vocab_size)``.
  Codes are predictive (``config.reference_frame``): frame t's say how each patch changed since frame t-1; the first
  frame's are relative to ``reference [B, C, H, W]`` (the frame before the clip) or to itself when None.
* ``net.next_token_logits(codes [B, T, N], frames [B, T, C, H, W], audio [B, T, F], actions=None [B, T, A],
  state=None [B, T, S]) -> NextStep(logits [B, N, V], audio [B, F], audio_logits [B, K], audio_components [B, K, F],
  state [B, S] | None, latent [B, latent_dim])``: the categorical distribution of each patch's code in frame T given
  the codes and the frames they code (observed, or decoded: ``decode_step``); the N codes are independent given the
  context, so a frame's log-likelihood is the sum of the chosen codes' log-softmax; keeping the current code (the
  same change again) carries a learned per-patch copy logit; plus the next audio as a mixture of K spectra (its mean
  ``audio``; ``sample_audio`` picks a component or the greedy audio) and next normalised state. ``actions[:, t]`` is
  the action taken at step t (so ``actions[:, -1]`` drives the predicted frame); None means zeros. Contexts longer
  than ``config.audio_seq_len`` steps must be cropped.
* ``net.decode_step(codes [B, N], prev_frame [B, C, H, W], anchor=None, age=None) -> frame [B, C, H, W]`` and
  ``net.decode_codes(codes [B, T, N], reference=None) -> video [B, T, C, H, W]`` in [0, 1]: each frame painted over
  the one before it by a decoder that sees it (keep mask; with ``config.tokenizer_flow`` the frame before moved by
  a decoded motion field), the first over ``reference``, the last real frame before the codes; with
  ``config.tokenizer_anchor`` the decoder may also keep that real frame's pixels (``anchor``, ``age`` steps before
  ``prev_frame``); without a reference frames are painted from their codes alone.
* ``sample_codes(logits, generator)`` / ``sample_audio(audio_logits, audio_components, generator, greedy)``:
  without a generator the argmax code / the greedy audio (rule ``greedy``: the mixture's mean by default, or the
  most likely component's mean), with one a categorical draw (of a code / of a component).
* ``net(video, audio, future_steps=K)`` rolls K frames out greedily (``future_video``, ``future_audio``).

The family's normalisation: ``family_model.frames_to_model(uint8 [.., H, W, C]) -> [.., C, img, img]`` and
``family_model.model_to_frames`` invert each other; audio features are fed as recorded (log10 mel); states are
normalised with ``family_model.state_norm``.
"""

from worldrl.models.base import register_family
from worldrl.models.multimodal.attention import CrossModalAttention, MultiheadAttention
from worldrl.models.multimodal.config import MultimodalConfig
from worldrl.models.multimodal.loss import MultimodalLoss
from worldrl.models.multimodal.model import MultimodalWorldModel
from worldrl.models.multimodal.physics import PhysicsHead
from worldrl.models.multimodal.positional import SpatioTemporalEncoding
from worldrl.models.multimodal.tokenizer import FrameTokenizer
from worldrl.models.multimodal.transformer_world_model import NextStep, TransformerWorldModel, sample_codes

register_family("multimodal", MultimodalConfig, MultimodalWorldModel)

__all__ = [
    "CrossModalAttention",
    "FrameTokenizer",
    "MultiheadAttention",
    "MultimodalConfig",
    "MultimodalLoss",
    "MultimodalWorldModel",
    "NextStep",
    "PhysicsHead",
    "SpatioTemporalEncoding",
    "TransformerWorldModel",
    "sample_codes",
]
