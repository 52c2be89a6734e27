"""Log-mel features of the synthetic contact audio, one mel vector per video frame, with ``torch.stft``.

Not torchaudio: torchaudio has no CPU build for this torch (2.13), and its 2.11 wheel is a CUDA build that fails to
import, so the filterbank (HTK mel scale, no normalisation, as ``transformers.audio_utils.mel_filter_bank(...,
norm=None, mel_scale="htk")``) and the power spectrogram are written here.

Framing: a video frame owns ``samples_per_frame`` samples. The waveform is left-padded with ``hop = samples_per_frame
// 2`` zeros and cut into windows of ``n_fft = samples_per_frame`` samples every ``hop`` samples (no centring), so
frame k gets exactly two windows, both ending no later than its last sample, and the mel power of the two is averaged
before the log. Computing it frame by frame (the env, with the previous frame's last ``hop`` samples) and on the whole
waveform (recordings) gives the same numbers.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import numpy as np
import torch

N_MELS = 32
LOG_FLOOR = 1e-10
"""Mel power floor before ``log10``: silence is exactly ``log10(LOG_FLOOR) = -10``."""


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filter_bank(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular HTK-mel filters, ``[n_freqs, n_mels]`` float64, peak 1, unnormalised."""
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_freqs = np.linspace(0, sample_rate / 2, n_freqs)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (fft_freqs[:, None] - lower) / (centre - lower)
    down = (upper - fft_freqs[:, None]) / (upper - centre)
    return torch.from_numpy(np.maximum(0.0, np.minimum(up, down)))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny FFTs (one frame: 480 samples) run ~1000x slower on torch's thread pool when the CPUs are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def mel_power(waveform: torch.Tensor, n_fft: int, hop: int, filters: torch.Tensor) -> torch.Tensor:
    """Mel power per window ``[windows, n_mels]`` (periodic Hann, no centring, power 2)."""
    spec = torch.stft(
        waveform.double(),
        n_fft,
        hop_length=hop,
        window=torch.hann_window(n_fft, dtype=torch.float64),
        center=False,
        return_complex=True,
    )
    return (spec.abs() ** 2).T @ filters


def frame_log_mel(
    waveform: np.ndarray | torch.Tensor,
    samples_per_frame: int,
    sample_rate: int,
    n_mels: int = N_MELS,
    context: np.ndarray | torch.Tensor | None = None,
) -> np.ndarray:
    """One log10-mel vector per video frame, ``[len(waveform) // samples_per_frame, n_mels]`` float32.

    ``context``: the ``samples_per_frame // 2`` samples before ``waveform`` (zeros at the start of an episode).
    """
    hop = samples_per_frame // 2
    wave = torch.as_tensor(np.asarray(waveform, np.float64))
    frames = wave.numel() // samples_per_frame
    if frames == 0:
        return np.zeros((0, n_mels), np.float32)
    before = (
        torch.zeros(hop, dtype=torch.float64) if context is None else torch.as_tensor(np.asarray(context, np.float64))
    )
    wave = torch.cat([before, wave[: frames * samples_per_frame]])
    if not bool(wave.any()):
        return np.tile(silence(n_mels), (frames, 1))
    filters = _filters(samples_per_frame // 2 + 1, n_mels, sample_rate)
    with one_thread():
        power = mel_power(wave, samples_per_frame, hop, filters).reshape(frames, 2, n_mels).mean(1)
        return torch.log10(power.clamp_min(LOG_FLOOR)).float().numpy()


@functools.lru_cache(maxsize=8)
def _filters(n_freqs: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    return mel_filter_bank(n_freqs, n_mels, sample_rate)


def silence(n_mels: int = N_MELS) -> np.ndarray:
    return np.full(n_mels, math.log10(LOG_FLOOR), np.float32)


__all__ = ["LOG_FLOOR", "N_MELS", "frame_log_mel", "hz_to_mel", "mel_filter_bank", "mel_power", "silence"]
