"""The vrnn family through the world-model protocol, on tiny state and pixel configs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import VRNN_TINY
from tensordict import TensorDict

from worldrl.models import TaskSpec, build_model, get_family, load_pretrained, save_pretrained
from worldrl.models.vrnn import DPGMMVRNNWorldModel, VRNNConfig

TINY = VRNN_TINY
B, T, A = 2, 5, 2


def _task(pixel: bool, side: int = 16) -> TaskSpec:
    obs = (
        gym.spaces.Box(0, 255, (side, side, 3), np.uint8)
        if pixel
        else gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    )
    return TaskSpec(obs, gym.spaces.Box(-1, 1, (A,), np.float32), task_id="Tiny-v0")


def _model(pixel: bool, side: int = 16, **overrides) -> DPGMMVRNNWorldModel:
    torch.manual_seed(0)
    return build_model("vrnn", {**TINY, **overrides}, _task(pixel, side))


def _batch(pixel: bool, side: int = 16, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    obs = (
        torch.randint(0, 256, (B, T, side, side, 3), generator=g, dtype=torch.uint8)
        if pixel
        else torch.randn(B, T, 3, generator=g)
    )
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    return TensorDict(
        obs=obs,
        action=torch.rand(B, T, A, generator=g) * 2 - 1,
        reward=torch.randn(B, T, generator=g),
        terminated=torch.zeros(B, T, dtype=torch.bool),
        is_first=is_first,
        mask=torch.ones(B, T, dtype=torch.bool),
        batch_size=[B, T],
    )


@pytest.mark.parametrize("pixel,side", [(False, 0), (True, 16), (True, 32)])
def test_forward_sequence_shapes(pixel, side):
    model = _model(pixel, side, use_codebook=True)
    batch = _batch(pixel, side)
    out = model.forward_sequence(batch["obs"], batch["action"], batch["is_first"])
    n_tok = 64 if pixel else 3
    recon_shape = (B, T, 3, 16, 16) if pixel else (B, T, 3)  # pixels at the model's image_size, channels first
    assert out["reconstructions"].shape == out["targets"].shape == recon_shape
    assert out["z"].shape == out["post_mean"].shape == out["post_logvar"].shape == (B, T, 4)
    assert out["h"].shape == (B, T, 1, 32) and out["context"].shape == (B, T, 16)
    assert out["pi"].shape == (B, T, 4) and out["prior"].means.shape == (B, T, 4, 4)
    assert out["prior"].stick_a.shape == (B, T, 3) and out["prior"].alpha_shape.shape == (B, T)
    assert out["attention_maps"].shape == out["attention_log_pred"].shape == (B, T, 3, n_tok)
    torch.testing.assert_close(out["attention_maps"].sum(-2), torch.ones(B, T, n_tok))
    assert out["codes"].shape == (B, T, n_tok) and out["reward_pred"].shape == out["terminal_logit"].shape == (B, T)
    groups, metrics = model.loss_groups(batch)
    assert set(groups) == {"elbo", "context", "predictive"} and all(torch.isfinite(v) for v in groups.values())
    assert 1.0 <= metrics["effective_components"] <= 4.0 + 1e-4
    assert {"kl_mixture", "kl_dyn", "kl_rep", "kl_sticks", "kl_gamma", "z_used", "posterior_std"} <= set(metrics)


def test_vector_model_without_schema_or_codebook():
    model = _model(False, use_attention_schema=False, use_codebook=False)
    losses, out = model.compute_total_loss(_batch(False))
    assert "attention_maps" not in out and "attention_dynamics" not in losses and out["codes"] is None
    assert "attention" not in model.initial_state(2).keys()


@pytest.mark.parametrize("pixel", [False, True])
def test_optimizer_steps_lower_the_loss(pixel):
    model = _model(pixel)
    batch = _batch(pixel)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def evaluate() -> float:
        torch.manual_seed(123)  # same posterior/stick noise before and after training
        with torch.no_grad():
            return float(model.loss(batch)[0])

    before = evaluate()
    for _ in range(10):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert evaluate() < 0.9 * before


@pytest.mark.parametrize("pixel", [False, True])
def test_padding_is_masked_out_of_every_loss_term(pixel):
    model = _model(pixel)
    batch = _batch(pixel)
    padded = batch.clone()
    padded["mask"][:, 3:] = False  # garbage on padding must change no term (causality: no leak backwards in time)
    padded["obs"][:, 3:] = 255 if pixel else 1e3
    padded["reward"][:, 3:] = -1e3
    padded["terminated"][:, 3:] = True
    with torch.no_grad():
        ref, _ = model.compute_total_loss(batch[:, :3], stochastic=False)
        pad, _ = model.compute_total_loss(padded, stochastic=False)
    assert set(ref) == set(pad)
    for key in ref:
        torch.testing.assert_close(pad[key], ref[key], msg=key)


def test_is_first_resets_the_recurrent_state():
    model = _model(False)
    batch = _batch(False)
    is_first = batch["is_first"].clone()
    is_first[:, 2] = True
    with torch.no_grad():
        full = model.observe(batch["obs"], batch["action"], is_first)
        tail = model.observe(batch["obs"][:, 2:], batch["action"][:, 2:], is_first[:, 2:])
        no_reset = model.observe(batch["obs"], batch["action"], batch["is_first"])
    for key in ("h", "c", "z"):
        torch.testing.assert_close(full[:, 2:][key], tail[key])
    assert not torch.allclose(no_reset[:, 2]["h"], full[:, 2]["h"])


@pytest.mark.parametrize("pixel", [False, True])
def test_imagine_rollout_shapes_and_determinism(pixel):
    model = _model(pixel).eval()
    batch = _batch(pixel)
    prev = torch.cat([torch.zeros_like(batch["action"][:, :1]), batch["action"][:, :-1]], 1)
    with torch.no_grad():
        start = model.observe_last(batch["obs"], prev, batch["is_first"])
        actions = torch.rand(B, 4, A) * 2 - 1
        mode_a, mode_b = model.rollout(start, actions), model.rollout(start, actions)
        s1 = model.rollout(start, actions, torch.Generator().manual_seed(1))
        s1b = model.rollout(start, actions, torch.Generator().manual_seed(1))
        s2 = model.rollout(start, actions, torch.Generator().manual_seed(2))
        obs = model.decode(s1)
    assert tuple(mode_a.batch_size) == (B, 4) and set(mode_a.keys()) == set(start.keys())
    assert model.latent(mode_a).shape == (B, 4, model.latent_dim) == (B, 4, 32 + 4)
    assert model.reward(mode_a).shape == model.terminal(mode_a).shape == (B, 4)
    assert ((model.terminal(mode_a) >= 0) & (model.terminal(mode_a) <= 1)).all()
    for key in mode_a.keys():
        torch.testing.assert_close(mode_a[key], mode_b[key])
        torch.testing.assert_close(s1[key], s1b[key])
    assert not torch.allclose(s1["z"], s2["z"]) and not torch.allclose(s1["z"], mode_a["z"])
    if pixel:
        assert obs.shape == (B, 4, 16, 16, 3) and obs.dtype == torch.uint8
    else:
        assert obs.shape == (B, 4, 3) and obs.dtype == torch.float32


@pytest.mark.parametrize("pixel", [False, True])
def test_decoder_reads_only_h_z_and_maps_predicted_from_h(pixel):
    """No side channel: the reconstruction is decode(h, z, maps(h)), the same function imagination decodes with."""
    model = _model(pixel).eval()
    batch = _batch(pixel)
    with torch.no_grad():
        out = model.forward_sequence(batch["obs"], batch["action"], batch["is_first"], stochastic=False)
        prev = torch.cat([torch.zeros_like(batch["action"][:, :1]), batch["action"][:, :-1]], 1)
        state = model.observe(batch["obs"], prev, batch["is_first"])
        torch.testing.assert_close(state["attention"], model.schema.predict_log_maps(state["h"][..., -1, :]).exp())
        recon = model.decoder(model.latent(state).flatten(0, 1), state["attention"].flatten(0, 1))
        torch.testing.assert_close(recon.reshape(out["reconstructions"].shape), out["reconstructions"])
        swapped = state.clone()
        swapped["z"] = state["z"].flip(0)  # another sequence's latent: the decoded frame must follow z
        assert not torch.allclose(model.decode(swapped).float(), model.decode(state).float())


def test_free_nats_stop_the_prior_gradient_below_the_threshold():
    batch = _batch(False)
    grads = {}
    for free in (0.0, 1e4):
        model = _model(False, free_nats=free)
        losses, _ = model.compute_total_loss(batch)
        assert float(losses["kl_dyn"].detach()) >= free and float(losses["kl_rep"].detach()) >= free
        model.zero_grad()
        losses["total_elbo"].backward()
        grads[free] = model.prior.components[0].weight.grad.abs().sum()  # reached by the mixture KL only
    assert grads[0.0] > 0 and grads[1e4] == 0


def test_fit_normalization_decodes_in_task_units():
    model = _model(False)
    model.fit_normalization(
        {
            "obs": {"mean": [10.0, -5.0, 0.0], "std": [2.0, 2.0, 2.0]},
            "action": {"mean": [0.0, 0.0], "std": [1.0, 1.0]},
            "reward": {"mean": [3.0], "std": [0.5]},
        }
    )
    state = model.initial_state(3)
    with torch.no_grad():
        z_norm = model.decoder(model.latent(state), state["attention"])
        torch.testing.assert_close(
            model.decode(state), z_norm * 2.0 + torch.tensor([10.0, -5.0, 0.0]), atol=1e-4, rtol=1e-4
        )
        assert model.reward_norm.mean.item() == 3.0


def test_pixel_model_resizes_other_frame_sizes_and_returns_them():
    model = _model(True, 32)  # task frames 32x32, model works at image_size=16
    with torch.no_grad():
        out = model.decode(model.imagine(model.initial_state(2), torch.zeros(2, A)))
    assert out.shape == (2, 32, 32, 3) and out.dtype == torch.uint8


@pytest.mark.parametrize("pixel", [False, True])
def test_save_load_round_trip_identical_outputs(pixel, tmp_path):
    model = _model(pixel)
    model.fit_normalization(
        {"action": {"mean": [0.1, 0.2], "std": [0.5, 0.5]}, "reward": {"mean": [1.0], "std": [2.0]}}
    )
    model.on_train_step_end(0)
    model.eval()
    save_pretrained(model, tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, DPGMMVRNNWorldModel) and loaded.config == model.config
    batch = _batch(pixel)
    with torch.no_grad():
        a = model.observe(batch["obs"], batch["action"], batch["is_first"])
        b = loaded.observe(batch["obs"], batch["action"], batch["is_first"])
        ra = model.rollout(a[:, -1], batch["action"][:, :3], torch.Generator().manual_seed(5))
        rb = loaded.rollout(b[:, -1], batch["action"][:, :3], torch.Generator().manual_seed(5))
    for key in a.keys():
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        torch.testing.assert_close(ra[key], rb[key], rtol=0, atol=0)
    torch.testing.assert_close(model.decode(ra), loaded.decode(rb), rtol=0, atol=0)


def test_kl_annealing_and_registry():
    model = _model(False, kl_anneal_steps=10)
    assert float(model.kl_scale) == 0.0
    model.on_train_step_end(4)
    assert float(model.kl_scale) == pytest.approx(0.5)
    model.on_train_step_end(100)
    assert float(model.kl_scale) == 1.0
    _, metrics = model.loss_groups(_batch(False))
    assert metrics["beta"] == 1.0
    assert get_family("vrnn").model_class is DPGMMVRNNWorldModel and DPGMMVRNNWorldModel.capabilities.recurrent


@pytest.mark.parametrize(
    "field,value",
    [
        ("latent_dim", 0),
        ("max_components", 1),
        ("num_heads", 3),
        ("image_size", 24),
        ("logvar_min", 5.0),
        ("beta", -1.0),
        ("free_nats", -0.5),
        ("kl_rep_weight", -1.0),
        ("recon_std", 0.0),
        ("context_window", 0),
        ("codebook_dead_fraction", 1.0),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        VRNNConfig(**{**TINY, field: value})


def test_bad_inputs_are_named():
    model = _model(False)
    batch = _batch(False)
    with pytest.raises(ValueError, match="obs"):
        model.observe(torch.randn(B, T, 4), batch["action"], batch["is_first"])
    with pytest.raises(ValueError, match="action"):
        model.imagine(model.initial_state(B), torch.zeros(B, A + 1))
    with pytest.raises(ValueError, match="mask"):
        model.loss_groups(batch.exclude("mask"))
    with pytest.raises(ValueError, match="vector"):
        build_model(
            "vrnn", TINY, TaskSpec(gym.spaces.Box(0, 1, (2, 3), np.float32), gym.spaces.Box(-1, 1, (A,), np.float32))
        )


def test_one_step_prior_reconstruction_trains_the_prior_on_the_next_observation():
    model = _model(False, lambda_prior_recon=1.0)
    batch = _batch(False)
    losses, _ = model.compute_total_loss(batch)
    losses["prior_recon"].backward()
    components = model.prior.components[-1].weight.grad  # the plain reconstruction never reaches the prior
    assert components is not None and components.abs().sum() > 0
    batch["mask"][:, 1:] = False  # no successor inside the data: nothing to score
    assert float(model.compute_total_loss(batch)[0]["prior_recon"]) == 0.0
    batch["mask"][:] = True
    batch["is_first"][:, 1:] = True  # every successor starts a new episode: nothing to score either
    assert float(model.compute_total_loss(batch)[0]["prior_recon"]) == 0.0
    assert "prior_recon" not in _model(False).compute_total_loss(_batch(False))[0]  # off by default


def _imagined_nll(model: DPGMMVRNNWorldModel, batch: TensorDict, steps: int) -> torch.Tensor:
    """What the open-loop loss should be at start 0: observe step 0, imagine under the recorded actions with the
    mean prediction, decode, Gaussian NLL of the first ``steps`` real successors (normalised units)."""
    state = model.observe_last(batch["obs"][:, :1], torch.zeros(B, 1, A), batch["is_first"][:, :1])
    horizon = model.config.open_loop_horizon
    decoded = model.decode(model.rollout(state, batch["action"][:, :horizon]))
    sq_err = (model.obs_norm(decoded) - model.obs_norm(batch["obs"][:, 1 : horizon + 1])).pow(2).sum(-1)
    return sq_err[:, :steps].mean() / (2.0 * model.config.recon_std**2)


def test_open_loop_reconstruction_scores_what_imagination_decodes():
    model = _model(False, lambda_open_loop=1.0, open_loop_horizon=T - 1)
    batch = _batch(False)
    model.obs_norm.fit_stats({"mean": np.array([0.5, -0.5, 0.0]), "std": np.array([2.0, 1.0, 0.5])})
    with torch.no_grad():
        losses, _ = model.compute_total_loss(batch, stochastic=False)  # start step 0
        assert float(losses["open_loop_recon"]) == pytest.approx(float(_imagined_nll(model, batch, T - 1)), rel=1e-4)
        batch["is_first"][:, 2] = True  # a new episode at step 2: only step 1 lies in the start's segment
        losses, _ = model.compute_total_loss(batch, stochastic=False)
        assert float(losses["open_loop_recon"]) == pytest.approx(float(_imagined_nll(model, batch, 1)), rel=1e-4)
    assert "open_loop_recon" not in _model(False).compute_total_loss(_batch(False))[0]  # off by default


def test_open_loop_reconstruction_trains_the_prior_and_the_keep_mask_of_pixel_models():
    model = _model(True, 16, lambda_open_loop=1.0, open_loop_horizon=3, reference_frame=True)
    losses, _ = model.compute_total_loss(_batch(True, 16))
    assert torch.isfinite(losses["open_loop_recon"]) and float(losses["open_loop_recon"].detach()) > 0
    losses["open_loop_recon"].backward()
    for weight in (model.prior.components[-1].weight, model.decoder.conv.net[-1].weight):
        assert weight.grad is not None and weight.grad.abs().sum() > 0
