"""Synthetic audio derived from contacts (not recorded sound): modal impacts plus sliding noise, at 16 kHz.

Each contact onset excites the damped sinusoids of both materials (``Material.modes``), with an amplitude that grows
with the normal force and saturates (``tanh(force / FORCE_SCALE)``); a sliding contact adds low-passed noise for the
duration of the physics step, scaled by force and slip speed. The same idea as ThreeDWorld's PyImpact (modal
synthesis from collision events, Traer et al. 2019), much simplified. ``ContactSynth.render`` is called once per env
step for that step's samples, so the waveform is built chunk by chunk, causally, and a seeded generator makes it
deterministic.
"""

from __future__ import annotations

import math

import numpy as np

from worldrl.tasks.scenes.events import Impact, Slide
from worldrl.tasks.scenes.materials import MATERIALS

SAMPLE_RATE = 16_000
FORCE_SCALE = 50.0
"""Normal force (N) at which an impact reaches ~76% of full amplitude."""
IMPACT_GAIN = 0.2
"""Peak amplitude of one full-strength mode of gain 1."""
SLIDE_GAIN = 0.01
"""Noise amplitude per (N m/s) of sliding, before saturation."""
SILENCE = 1e-4
"""Envelope below which a ringing mode is dropped."""


class ContactSynth:
    """Renders the waveform of an episode chunk by chunk from the impacts and slides the event detector reports."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, seed: int = 0):
        self.sample_rate = sample_rate
        self.rng = np.random.default_rng(seed)
        self.modes: list[tuple[int, float, float, float]] = []  # (start sample, freq, decay, amplitude)
        self.slides: list[tuple[int, int, float]] = []  # (start sample, end sample, amplitude)
        self.lowpass = 0.0
        self.cursor = 0

    def add(self, impacts: list[Impact], slides: list[Slide], step_seconds: float) -> None:
        for imp in impacts:
            amp = math.tanh(imp.force / FORCE_SCALE)
            start = int(round(imp.time * self.sample_rate))
            for mat in imp.materials:
                for freq, decay, gain in MATERIALS[mat].modes:
                    self.modes.append((start, freq, decay, IMPACT_GAIN * amp * gain))
        for s in slides:
            end = int(round(s.time * self.sample_rate))
            start = end - int(round(step_seconds * self.sample_rate))
            self.slides.append((start, end, math.tanh(SLIDE_GAIN * s.force * s.speed)))

    def render(self, n: int) -> np.ndarray:
        """The next ``n`` samples (float32, clipped to [-1, 1])."""
        t0 = self.cursor
        idx = np.arange(t0, t0 + n)
        out = np.zeros(n, np.float64)
        alive = []
        for start, freq, decay, amp in self.modes:
            dt = (idx - start) / self.sample_rate
            on = dt >= 0
            out[on] += amp * np.exp(-dt[on] / decay) * np.sin(2 * math.pi * freq * dt[on])
            if amp * math.exp(-max(0.0, (t0 + n - start) / self.sample_rate) / decay) > SILENCE:
                alive.append((start, freq, decay, amp))
        self.modes = alive
        envelope = np.zeros(n)
        for start, end, amp in self.slides:
            lo, hi = max(start, t0) - t0, min(end, t0 + n) - t0
            if hi > lo:
                envelope[lo:hi] = np.maximum(envelope[lo:hi], amp)
        self.slides = [s for s in self.slides if s[1] > t0 + n]
        if envelope.any():
            noise = self.rng.standard_normal(n)
            filtered = np.empty(n)
            y = self.lowpass
            for i in range(n):  # one-pole low-pass: a rough, rumbling scrape rather than white hiss
                y += 0.2 * (noise[i] - y)
                filtered[i] = y
            self.lowpass = y
            out += envelope * filtered
        self.cursor += n
        return np.clip(out, -1.0, 1.0).astype(np.float32)


__all__ = ["FORCE_SCALE", "SAMPLE_RATE", "ContactSynth"]
