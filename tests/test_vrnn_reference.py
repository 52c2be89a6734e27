"""Reference-frame compositing of the vrnn pixel decoder: which real frame is copied, where, and when not."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import VRNN_TINY

from worldrl.errors import ConfigError
from worldrl.models import TaskSpec, build_model, load_pretrained, save_pretrained
from worldrl.models.vrnn.config import VRNNConfig
from worldrl.models.vrnn.reference import ReferenceRefiner, composite, reference_frames, segment_start_indices
from worldrl.nn.ssim import frame_ssim

A = 2


def _model(side: int = 32, keep_bias: float | None = None, refiner: int = 0, **extra):
    """A tiny pixel vrnn with reference frames (model at 16x16, task at ``side``); ``keep_bias`` forces the mask;
    ``refiner``: hidden channels of the reference refiner (0: none); ``extra``: more config options."""
    torch.manual_seed(0)
    task = TaskSpec(
        gym.spaces.Box(0, 255, (side, side, 3), np.uint8), gym.spaces.Box(-1, 1, (A,), np.float32), task_id="Tiny-v0"
    )
    options = {**VRNN_TINY, "reference_frame": True, "reference_refiner_channels": refiner, **extra}
    model = build_model("vrnn", options, task)
    if keep_bias is not None:
        last = model.decoder.conv.net[-1]
        with torch.no_grad():
            last.weight[-1].zero_()
            last.bias[-1] = keep_bias
    return model.eval()


def _frames(b: int, t: int, side: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, side, side, 3), generator=g, dtype=torch.uint8)


def test_reference_is_the_first_frame_of_the_episode_segment():
    is_first = torch.tensor([[True, False, False, True, False], [False, False, True, False, False]])
    assert segment_start_indices(is_first).tolist() == [[0, 0, 0, 3, 3], [0, 0, 2, 2, 2]]
    frames = torch.arange(10.0).reshape(2, 5, 1)
    ref, has, age = reference_frames(frames, is_first)
    assert ref.squeeze(-1).tolist() == [[0, 0, 0, 3, 3], [5, 5, 7, 7, 7]]
    assert has.tolist() == [[False, True, True, False, True], [False, True, False, True, True]]
    assert age.tolist() == [[0, 1, 2, 0, 1], [0, 1, 0, 1, 2]]


def test_composite_blends_at_the_reference_resolution():
    paint = torch.rand(3, 3, 8, 8)
    reference = torch.rand(3, 3, 16, 16)
    has = torch.tensor([True, True, False])
    keep = torch.tensor([30.0, -30.0, 30.0]).reshape(3, 1, 1, 1).expand(3, 1, 8, 8)
    out = composite(paint, keep, reference, has)
    assert out.shape == (3, 3, 16, 16)
    up = torch.nn.functional.interpolate(paint, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[0], reference[0])  # keep everything: the reference, sharp
    torch.testing.assert_close(out[1], up[1])  # keep nothing: the painted frame
    torch.testing.assert_close(out[2], up[2])  # no reference: painted whatever the mask says


def test_training_copies_the_segment_start_never_the_frame_itself():
    model = _model(keep_bias=50.0)  # the mask keeps the reference everywhere it exists
    obs = _frames(2, 4, 32)
    is_first = torch.zeros(2, 4, dtype=torch.bool)
    is_first[:, 0] = True
    out = model.forward_sequence(obs, torch.zeros(2, 4, A), is_first)
    assert out["reconstructions"].shape == out["targets"].shape == (2, 4, 3, 32, 32)  # scored at task resolution
    first = obs[:, 0].float().div(255).permute(0, 3, 1, 2)
    for t in (1, 2, 3):  # later steps copy frame 0, not their own (different) frame
        torch.testing.assert_close(out["reconstructions"][:, t], first)
    assert not torch.allclose(out["reconstructions"][:, 0], first, atol=0.05)  # frame 0 itself is painted


def test_imagination_carries_the_last_observed_frame():
    model = _model(side=32, keep_bias=50.0)
    obs = _frames(2, 3, 32, seed=1)
    is_first = torch.zeros(2, 3, dtype=torch.bool)
    is_first[:, 0] = True
    with torch.no_grad():
        state = model.observe_last(obs, torch.zeros(2, 3, A), is_first)
        rollout = model.rollout(state, torch.zeros(2, 4, A))
        frames = model.decode(rollout)
    assert frames.shape == (2, 4, 32, 32, 3) and frames.dtype == torch.uint8
    assert torch.equal(frames, obs[:, -1:].expand(2, 4, 32, 32, 3))  # the last real frame, exactly
    start = model.decode(model.initial_state(2))  # nothing observed yet: painted, not the zero reference
    assert start.shape == (2, 32, 32, 3) and start.float().mean() > 0


def test_decoding_many_frames_in_chunks_matches_one_call():
    model = _model(side=16)
    obs = _frames(1, 2, 16, seed=2)
    is_first = torch.tensor([[True, False]])
    with torch.no_grad():
        state = model.observe_last(obs, torch.zeros(1, 2, A), is_first)
        rollout = model.rollout(state.expand(600), torch.rand(600, 2, A) * 2 - 1)  # 1200 frames > one chunk
        whole = model.decode(rollout)
        rows = torch.cat([model.decode(rollout[i : i + 100]) for i in range(0, 600, 100)])
    assert torch.equal(whole, rows)


def test_a_new_refiner_leaves_the_blend_unchanged_and_never_sees_a_missing_reference():
    paint, keep = torch.rand(3, 3, 8, 8), torch.randn(3, 1, 8, 8)
    reference, has, age = torch.rand(3, 3, 16, 16), torch.tensor([True, False, True]), torch.tensor([1, 0, 4])
    refiner = ReferenceRefiner(3, 8)
    torch.testing.assert_close(
        composite(paint, keep, reference, has, refiner, age), composite(paint, keep, reference, has)
    )
    torch.nn.init.normal_(refiner.net[-1].weight)  # a trained refiner: its output depends on the reference
    out = composite(paint, keep, reference, has, refiner, age)
    other = composite(paint, keep, torch.rand(3, 3, 16, 16), has, refiner, age)
    assert not torch.allclose(out[0], other[0]) and not torch.allclose(out[2], other[2])
    torch.testing.assert_close(out[1], other[1])  # no reference: whatever the tensor holds is not read
    older = composite(paint, keep, reference, has, refiner, torch.tensor([9, 7, 9]))
    assert not torch.allclose(out[0], older[0])  # how old the reference is changes the blend...
    torch.testing.assert_close(out[1], older[1])  # ...except where there is none
    with pytest.raises(ValueError, match="age"):
        composite(paint, keep, reference, has, refiner)


def test_a_rollout_shares_the_carried_frame_instead_of_copying_it_per_step():
    model = _model(side=32)
    obs, is_first = _frames(3, 2, 32, seed=2), torch.tensor([[True, False]] * 3)
    with torch.no_grad():
        state = model.observe_last(obs, torch.zeros(3, 2, A), is_first)
        rollout = model.rollout(state, torch.zeros(3, 5, A))
        stepped = [state := model.imagine(state, torch.zeros(3, A)) for _ in range(5)]
    reference = rollout["reference"]
    assert reference.shape == (3, 5, 32, 32, 3) and reference.stride(1) == 0  # one frame per start, viewed 5 times
    assert torch.equal(reference, obs[:, -1:].expand_as(reference))
    for key in ("h", "z", "reward", "reference_age"):  # what changes per step is stacked as before
        assert torch.equal(rollout[key], torch.stack([s[key] for s in stepped], dim=1))
    assert torch.equal(model.decode(rollout[:, -1]), model.decode(stepped[-1]))


def test_planning_scores_rollouts_without_flattening_the_carried_frame():
    from worldrl.agents.planners.step_scores import changing_leaves, step_scores

    model = _model(side=32)
    obs, is_first = _frames(4, 2, 32, seed=3), torch.tensor([[True, False]] * 4)
    actions = torch.rand(4, 6, A) * 2 - 1
    with torch.no_grad():
        start = model.observe_last(obs, torch.zeros(4, 2, A), is_first)
        states = model.rollout(start, actions)
        scored = step_scores(model, start, states, actions, "model", "model")
        copied = step_scores(model, start, states.clone(), actions, "model", "model")  # clone: a real per-step copy
    assert "reference" not in changing_leaves(states).keys() and "reward" in changing_leaves(states).keys()
    assert "reference" in changing_leaves(states.clone()).keys()
    for a, b in zip(scored, copied):
        assert a.shape == (4, 6) and torch.equal(a, b)


def test_the_reference_ages_one_step_per_imagined_step():
    model = _model(side=16, refiner=4)
    obs, is_first = _frames(2, 3, 16, seed=4), torch.tensor([[True, False, False]] * 2)
    with torch.no_grad():
        assert model.initial_state(2)["reference_age"].tolist() == [0, 0]
        state = model.observe_last(obs, torch.zeros(2, 3, A), is_first)
        assert state["reference_age"].tolist() == [0, 0]  # the frame just observed
        rollout = model.rollout(state, torch.zeros(2, 4, A))
    assert rollout["reference_age"].tolist() == [[1, 2, 3, 4]] * 2


def _round_trip(model, obs, is_first, tmp_path):
    """Save ``model``, load it back, and check that both imagine and decode the same next frame; the loaded model."""
    save_pretrained(model.eval(), tmp_path / "vrnn")
    loaded = load_pretrained(tmp_path / "vrnn").eval()
    prev = torch.zeros(*obs.shape[:2], A)
    with torch.no_grad():
        state, again = model.observe_last(obs, prev, is_first), loaded.observe_last(obs, prev, is_first)
        assert torch.equal(
            model.decode(model.imagine(state, torch.zeros(obs.shape[0], A))),
            loaded.decode(loaded.imagine(again, torch.zeros(obs.shape[0], A))),
        )
    return loaded


def test_refiner_trains_and_round_trips_through_a_checkpoint(tmp_path):
    model = _model(side=16, refiner=4).train()
    obs, is_first = _frames(2, 3, 16, seed=3), torch.tensor([[True, False, False]] * 2)
    out = model.forward_sequence(obs, torch.zeros(2, 3, A), is_first)
    (out["reconstructions"] - out["targets"]).pow(2).mean().backward()
    assert model.refiner.net[-1].weight.grad.abs().sum() > 0  # the blend's loss reaches the refiner
    with torch.no_grad():
        torch.nn.init.normal_(model.refiner.net[-1].weight, std=0.1)
    _round_trip(model, obs, is_first, tmp_path)
    with pytest.raises(ConfigError, match="reference_refiner_channels"):
        VRNNConfig(reference_refiner_channels=8)  # without reference_frame there is nothing to refine against


def test_open_loop_ssim_adds_the_weighted_structure_loss_of_each_imagined_frame():
    frames = torch.rand(2, 3, 3, 16, 16)
    assert frame_ssim(frames, frames).shape == (2, 3)
    torch.testing.assert_close(frame_ssim(frames, frames), torch.ones(2, 3))
    assert frame_ssim(frames.flip(-1), frames).max() < 0.5
    obs, is_first = _frames(2, 6, 16, seed=5), torch.tensor([[True] + [False] * 5] * 2)
    mask, actions = torch.ones(2, 6, dtype=torch.bool), torch.rand(2, 6, A) * 2 - 1
    loss = {}
    for weight in (0.0, 2.0, 5.0):  # the same weights (seed 0) and deterministic starts: only the term differs
        model = _model(side=16, refiner=4, lambda_open_loop=1.0, open_loop_horizon=3, open_loop_ssim=weight)
        out = model.forward_sequence(obs, actions, is_first, stochastic=False)
        rollout = model._open_loop_rollout(out, is_first, mask, stochastic=False, generator=None)
        loss[weight] = model._open_loop_reconstruction(out, rollout)
    per_unit = (loss[2.0] - loss[0.0]) / 2.0  # the mean of 1 - SSIM over the imagined frames
    assert 0 < float(per_unit) < 2
    torch.testing.assert_close((loss[5.0] - loss[0.0]) / 5.0, per_unit, rtol=0, atol=1e-3)  # float32 sums of ~1e3
    loss[5.0].backward()
    assert model.refiner.net[-1].weight.grad.abs().sum() > 0  # the term trains the blend
    with pytest.raises(ConfigError, match="open_loop_ssim"):
        VRNNConfig(open_loop_ssim=1.0)  # without the open-loop loss there are no imagined frames to score
    vector = TaskSpec(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (A,), np.float32), task_id="V")
    with pytest.raises(ValueError, match="open_loop_ssim"):
        build_model("vrnn", {**VRNN_TINY, "lambda_open_loop": 1.0, "open_loop_ssim": 1.0}, vector)


def test_prior_recon_ssim_adds_the_weighted_structure_loss_of_each_one_step_frame():
    obs, is_first = _frames(2, 6, 16, seed=6), torch.tensor([[True] + [False] * 5] * 2)
    mask, actions = torch.ones(2, 6, dtype=torch.bool), torch.rand(2, 6, A) * 2 - 1
    loss = {}
    for weight in (0.0, 3.0):  # the same weights (seed 0), deterministic one-step states: only the term differs
        model = _model(side=16, refiner=4, lambda_prior_recon=1.0, prior_recon_ssim=weight)
        out = model.forward_sequence(obs, actions, is_first, stochastic=False)
        loss[weight] = model._one_step_reconstruction(out, is_first, mask)
    per_unit = (loss[3.0] - loss[0.0]) / 3.0  # the mean of 1 - SSIM over the one-step frames
    assert 0 < float(per_unit) < 2
    loss[3.0].backward()
    assert model.refiner.net[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="prior_recon_ssim"):
        VRNNConfig(prior_recon_ssim=1.0)  # without the one-step reconstruction there are no frames to score
    vector = TaskSpec(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (A,), np.float32), task_id="V")
    with pytest.raises(ValueError, match="prior_recon_ssim"):
        build_model("vrnn", {**VRNN_TINY, "lambda_prior_recon": 1.0, "prior_recon_ssim": 1.0}, vector)


def test_reference_features_let_the_paint_read_the_reference_but_never_a_missing_one():
    model = _model(side=32, reference_features=True)
    feat = torch.randn(2, model.latent_dim)
    maps = model.schema.predict_log_maps(torch.zeros(2, model.config.hidden_dim)).exp()
    ref_a, ref_b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        paint = {
            (name, present): model.decoder(feat, maps, model._reference_features(ref, torch.tensor([present] * 2)))
            for name, ref in (("a", ref_a), ("b", ref_b))
            for present in (True, False)
        }
    assert not torch.allclose(paint["a", True], paint["b", True])  # the paint reads the reference it is given
    torch.testing.assert_close(paint["a", False], paint["b", False])  # and nothing where there is none
    with pytest.raises(ConfigError, match="reference_features"):
        VRNNConfig(**{**VRNN_TINY, "reference_features": True})


def test_reference_features_train_and_round_trip_through_a_checkpoint(tmp_path):
    model = _model(side=16, reference_features=True).train()
    obs, is_first = _frames(2, 3, 16, seed=3), torch.tensor([[True, False, False]] * 2)
    out = model.forward_sequence(obs, torch.zeros(2, 3, A), is_first)
    (out["reconstructions"][:, 1:] - out["targets"][:, 1:]).pow(2).mean().backward()
    reads_reference = model.decoder.conv.net[0].weight.grad[:, -(model.encoder.token_features + 1) :]
    assert reads_reference.abs().sum() > 0  # the later steps' loss reaches the encoded-reference planes
    loaded = _round_trip(model, obs, is_first, tmp_path)
    assert loaded.config.reference_features
