"""Onset detection in per-frame log-mel audio and its precision/recall against contacts, on synthetic and real
Playground audio."""

from __future__ import annotations

import numpy as np
import pytest

from worldrl.errors import ConfigError
from worldrl.evaluation.audio_onsets import (
    OnsetScores,
    contact_frames,
    detect_onsets,
    match_onsets,
    random_onsets,
    spectral_flux,
)

SILENCE = -10.0


def ringing(num_frames: int, hits: list[int], bins: int = 8, decay: float = 0.15) -> np.ndarray:
    """Log-mel frames: silence, and at each hit a loud onset that decays over the following frames."""
    power = np.zeros((num_frames, bins))
    for hit in hits:
        t = np.arange(num_frames - hit)
        power[hit:] += 100.0 * np.exp(-decay * t)[:, None]
    return np.log10(np.maximum(power, 1e-10))


def test_flux_is_the_mean_positive_rise_above_the_floor():
    mel = np.array([[-10.0, -10.0], [0.0, -10.0], [-1.0, 2.0], [-1.0, 2.0]])
    assert spectral_flux(mel, floor=-10.0).tolist() == pytest.approx([0.0, 5.0, 6.0, 0.0])
    assert spectral_flux(mel, floor=-4.0).tolist() == pytest.approx([0.0, 2.0, 3.0, 0.0])
    assert spectral_flux(mel[1:], previous=mel[0], floor=-10.0).tolist() == pytest.approx([5.0, 6.0, 0.0])
    with pytest.raises(ConfigError, match=r"\[T, F\]"):
        spectral_flux(np.zeros(5))


def test_onsets_of_decaying_hits_are_found_and_tails_ignored():
    mel = ringing(40, [3, 10, 11, 25])
    onsets = detect_onsets(mel)
    assert onsets.tolist() == [3, 10, 25]  # 10 and 11 are one frame apart: one onset (min_gap 1)
    assert detect_onsets(mel, threshold=0.2, min_gap=0).tolist() == [3, 10, 11, 25]  # +0.27 at 11
    faint = np.full((10, 8), SILENCE)
    faint[4:] = -6.0  # a rise that stays below the quiet floor
    assert detect_onsets(faint).size == 0


def test_matching_is_one_to_one_within_the_tolerance():
    scores = match_onsets(np.array([2, 3, 9, 20]), np.array([3, 10, 15]), tolerance=1)
    assert (scores.matched, scores.predicted, scores.true) == (2, 4, 3)
    assert scores.precision == 0.5 and scores.recall == pytest.approx(2 / 3)
    assert match_onsets(np.array([5]), np.array([7]), tolerance=1).matched == 0
    assert match_onsets(np.array([5]), np.array([7]), tolerance=2).matched == 1
    empty = match_onsets(np.array([]), np.array([]))
    assert empty.precision is None and empty.recall is None and empty.f1 is None
    total = OnsetScores(1, 2, 2) + OnsetScores(1, 1, 3)
    assert total.to_dict()["precision"] == pytest.approx(2 / 3) and total.recall == pytest.approx(0.4)


def test_chance_onsets_fire_at_the_rate_and_score_the_fraction_of_frames_near_a_contact():
    rng = np.random.default_rng(0)
    assert len(random_onsets(100, 0.0, rng)) == 0 and np.array_equal(random_onsets(5, 1.0, rng), np.arange(5))
    contacts = np.arange(0, 100_000, 20)  # one contact every 20 frames: 3 of 20 frames lie within one of a contact
    guess = random_onsets(100_000, 0.05, rng)
    assert len(guess) == pytest.approx(5000, rel=0.05)
    assert match_onsets(guess, contacts).precision == pytest.approx(0.15 * 0.95, abs=0.02)  # few double claims
    with pytest.raises(ConfigError, match="rate"):
        random_onsets(10, 1.5, rng)


def test_contact_times_map_to_the_frame_whose_step_holds_them():
    # row t holds the audio of the step ((t-1) dt, t dt]
    frames = contact_frames([0.002, 0.02, 0.0201, 0.1, 0.5], dt=0.02, num_frames=10)
    assert frames.tolist() == [1, 2, 5]
    assert contact_frames([0.1, 0.12], dt=0.02, num_frames=4, start=4).tolist() == [1, 2]


def test_onsets_of_real_playground_audio_fall_on_its_contacts():
    """The detector on the scenes' true synthetic audio (the upper bound a model's audio is compared with)."""
    from worldrl.tasks.scenes.env import PlaygroundEnv

    total = OnsetScores(0, 0, 0)
    for seed in range(2):
        env = PlaygroundEnv("drop", pixels=False)
        obs, _ = env.reset(seed=seed)
        mel = [obs["audio"]]
        for _ in range(40):
            mel.append(env.step(np.zeros(2, np.float32))[0]["audio"])
        true = contact_frames([e.time for e in env.events if e.kind == "contact"], env.dt, len(mel))
        total = total + match_onsets(detect_onsets(np.stack(mel)), true)
        env.close()
    assert total.true >= 3
    assert total.recall >= 0.6 and total.precision >= 0.6, total
    silent = match_onsets(detect_onsets(np.full((41, 32), SILENCE)), np.arange(3))
    assert silent.recall == 0.0
