"""``MultimodalLoss``: the document's weighted multi-task objective, every term returned for logging.

Terms (masked means; ``pair_mask [B, T-1]`` marks steps t whose successor t+1 is in the same episode):

* ``reconstruction``: frame MSE of the tokenizer's reconstruction + audio MSE of the audio read back from the latent;
* ``prediction``: cross-entropy of the next frame's codes (the generative objective), weight ``prediction_weight``;
* ``audio``: negative log-likelihood (per feature) of the next audio features under the predicted mixture
  (``audio_logits``/``audio_components``/``audio_log_scales``), or their MSE without one, weight ``audio_weight``;
  ``audio_mse`` (logged) is the MSE of the predicted mean; + ``outputs["audio_rollout"]`` when given (the squared
  error of the mixture's own open-loop rollout, ``audio_mixture.rollout_error``, logged as ``audio_rollout``);
* ``perceptual``: feature MSE of reconstructed vs real frames through a frozen network the user passes
  (``feature_net``: any local module mapping ``[N, C, H, W]`` in [0, 1] to features; never downloaded); 0 without;
* ``temporal``: frame differences of the reconstruction match the real ones (motion is kept, not averaged away);
* ``ssim``: 1 - SSIM of each reconstructed frame against the real one, weight ``ssim_weight`` (0 = off, the
  document's five weights alone): the squared error lets a decoder trade edges for a blur that SSIM scores as lost
  structure, and a rollout decodes each frame over the one before, so the blur compounds;
* ``physics``: next-state MSE (normalised), or the head's own terms when ``outputs["physics_terms"]`` is given (a
  physics head with a state layout: gate, event and open-loop rollout errors, ``physics.physics_terms``), +
  ``consistency_weight`` x velocity/position consistency;
* ``spectral``: log-magnitude L1 between predicted and real next audio spectrograms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldrl.models.multimodal.audio_mixture import mixture_nll
from worldrl.nn.ssim import frame_ssim

LOG_FLOOR = 1e-10


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [B, T, ...]`` over the steps where ``mask [B, T]`` is True (and over trailing dims)."""
    per_step = values.reshape(*mask.shape, -1).mean(-1)
    m = mask.to(per_step.dtype)
    return (per_step * m).sum() / m.sum().clamp_min(1.0)


def log_magnitude_l1(pred: torch.Tensor, target: torch.Tensor, is_log: bool = True) -> torch.Tensor:
    """Elementwise ``|log|S_pred| - log|S_target||``; spectrogram features already in log units pass through."""
    if not is_log:
        pred, target = torch.log(pred.abs() + LOG_FLOOR), torch.log(target.abs() + LOG_FLOOR)
    return (pred - target).abs()


class MultimodalLoss(nn.Module):
    """``loss(outputs, targets) -> (total, {term: value})``; see the module docstring for the terms.

    ``outputs``: ``recon_video [B,T,C,H,W]``, ``recon_audio [B,T,F]``, ``logits [B,T-1,N,V]``,
    ``next_audio [B,T-1,F]``, optional ``next_state [B,T-1,S]``, ``consistency`` (a scalar) and the audio mixture
    ``audio_logits [B,T-1,K]``, ``audio_components``/``audio_log_scales [B,T-1,K,F]``.
    ``targets``: ``video``, ``audio``, ``codes [B,T-1,N]`` (of frames 1..T-1), ``next_audio``, optional
    ``next_state``, and the masks ``mask [B,T]`` and ``pair_mask [B,T-1]``.
    """

    def __init__(
        self,
        reconstruction_weight: float = 1.0,
        perceptual_weight: float = 0.1,
        temporal_weight: float = 0.05,
        physics_weight: float = 0.1,
        spectral_weight: float = 0.05,
        prediction_weight: float = 1.0,
        audio_weight: float = 1.0,
        consistency_weight: float = 0.1,
        ssim_weight: float = 0.0,
        feature_net: nn.Module | None = None,
        audio_is_log: bool = True,
    ) -> None:
        super().__init__()
        self.weights = {
            "reconstruction": reconstruction_weight,
            "perceptual": perceptual_weight,
            "temporal": temporal_weight,
            "physics": physics_weight,
            "spectral": spectral_weight,
            "prediction": prediction_weight,
            "audio": audio_weight,
            "ssim": ssim_weight,
        }
        self.consistency_weight, self.audio_is_log = consistency_weight, audio_is_log
        # kept out of the module tree: a frozen, user-supplied network is not part of the model's weights
        self.__dict__["feature_net"] = feature_net
        if feature_net is not None:
            feature_net.requires_grad_(False).eval()

    def terms(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        mask, pair = targets["mask"], targets["pair_mask"]
        video, recon = targets["video"], outputs["recon_video"]
        terms = {
            "reconstruction": masked_mean((recon - video).pow(2), mask)
            + masked_mean((outputs["recon_audio"] - targets["audio"]).pow(2), mask),
            "prediction": masked_mean(
                F.cross_entropy(
                    outputs["logits"].flatten(0, 2).float(), targets["codes"].flatten(), reduction="none"
                ).reshape(targets["codes"].shape),
                pair,
            ),
            "audio": self._audio_term(outputs, targets["next_audio"], pair) + outputs.get("audio_rollout", 0.0),
            "audio_mse": masked_mean((outputs["next_audio"] - targets["next_audio"]).pow(2), pair),
            "spectral": masked_mean(
                log_magnitude_l1(outputs["next_audio"], targets["next_audio"], self.audio_is_log), pair
            ),
            "temporal": masked_mean(((recon[:, 1:] - recon[:, :-1]) - (video[:, 1:] - video[:, :-1])).pow(2), pair),
            "perceptual": self._perceptual(recon, video, mask),
            "ssim": self._ssim(recon, video, mask),
        }
        if "audio_rollout" in outputs:
            terms["audio_rollout"] = outputs["audio_rollout"]
        physics = torch.zeros((), device=video.device)
        if "next_state" in outputs and "next_state" in targets:
            physics = masked_mean((outputs["next_state"] - targets["next_state"]).pow(2), pair)
            terms["physics_state"] = physics
            if "physics_terms" in outputs:  # a layout head's own objective replaces the one-step state error
                terms.update(outputs["physics_terms"])
                physics = sum(outputs["physics_terms"].values())
            if "consistency" in outputs:
                terms["physics_consistency"] = outputs["consistency"]
                physics = physics + self.consistency_weight * outputs["consistency"]
        terms["physics"] = physics
        return terms

    @staticmethod
    def _audio_term(outputs: dict, target: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        if "audio_logits" not in outputs:
            return masked_mean((outputs["next_audio"] - target).pow(2), pair)
        nll = mixture_nll(outputs["audio_logits"], outputs["audio_components"], outputs["audio_log_scales"], target)
        return masked_mean(nll, pair)

    def _ssim(self, recon: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.weights["ssim"] == 0:  # torchmetrics' SSIM costs a few convs per frame: skip it when unused
            return torch.zeros((), device=video.device)
        return masked_mean(1.0 - frame_ssim(recon, video), mask)

    def _perceptual(self, recon: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        net = self.__dict__["feature_net"]
        if net is None or self.weights["perceptual"] == 0:
            return torch.zeros((), device=video.device)
        rows = mask.reshape(-1)
        real, fake = video.flatten(0, 1)[rows], recon.flatten(0, 1)[rows]
        with torch.no_grad():
            target = net(real)
        return F.mse_loss(net(fake), target)

    def forward(self, outputs: dict, targets: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = self.terms(outputs, targets)
        total = sum(self.weights[name] * terms[name] for name in self.weights)
        return total, terms


__all__ = ["MultimodalLoss", "log_magnitude_l1", "masked_mean"]
