"""The ``ensemble`` family: protocol shapes, sampling semantics, learning, elites, checkpoints, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from worldrl.models import TaskSpec, build_model, get_family, load_pretrained, save_pretrained
from worldrl.models.ensemble import EnsembleConfig, EnsembleWorldModel
from worldrl.models.ensemble.layers import EnsembleMLP, forward_routed, soft_clamp

OBS, ACT = 3, 2


def make_task(obs_dim: int = OBS, act_dim: int = ACT, high: float = np.inf) -> TaskSpec:
    return TaskSpec(
        observation_space=gym.spaces.Box(-high, high, (obs_dim,), np.float32),
        action_space=gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32),
        task_id="Synthetic-v0",
    )


def make_model(**overrides) -> EnsembleWorldModel:
    torch.manual_seed(0)
    config = {"num_members": 4, "num_elites": 2, "hidden_dims": (16, 16), **overrides}
    return build_model("ensemble", config, make_task())


def make_batch(b: int = 6, t: int = 4, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        obs=torch.randn(b, t, OBS, generator=g),
        action=torch.rand(b, t, ACT, generator=g) * 2 - 1,
        reward=torch.randn(b, t, generator=g),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        is_first=torch.zeros(b, t, dtype=torch.bool),
        mask=torch.ones(b, t, dtype=torch.bool),
        batch_size=[b, t],
    )


# ----------------------------------------------------------------------------- registry and config
def test_registered_and_built_through_registry():
    reg = get_family("ensemble")
    assert reg.config_class is EnsembleConfig and reg.model_class is EnsembleWorldModel
    model = make_model()
    assert isinstance(model, EnsembleWorldModel) and model.config.family == "ensemble"
    assert model.capabilities.stochastic and model.capabilities.can_decode and not model.capabilities.recurrent
    assert make_model(predict_terminal=False).capabilities.predicts_terminal is False


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_elites", 9),
        ("num_members", 0),
        ("activation", "swishy"),
        ("hidden_dims", ()),
        ("logvar_bound_penalty", -1.0),
        ("layer_weight_decay", (1e-4,)),
        ("init_min_logvar", 1.0),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        EnsembleConfig(**{field: value})


def test_config_dict_round_trip_restores_tuples():
    config = EnsembleConfig(hidden_dims=(8, 8), layer_weight_decay=(1e-5, 2e-5, 3e-5))
    again = EnsembleConfig.from_dict(config.to_dict())
    assert again == config and isinstance(again.hidden_dims, tuple)


def test_pixel_task_is_refused():
    task = TaskSpec(gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), gym.spaces.Box(-1, 1, (2,), np.float32))
    with pytest.raises(ValueError, match="flat state vectors"):
        build_model("ensemble", {}, task)


# ----------------------------------------------------------------------------- protocol shapes
def test_shapes_through_observe_imagine_rollout():
    model = make_model()
    init = model.initial_state(5)
    assert init.batch_size == torch.Size([5]) and torch.equal(init["obs"], torch.zeros(5, OBS))
    assert (init["member"] == -1).all()
    obs, prev_action = torch.randn(5, 7, OBS), torch.zeros(5, 7, ACT)
    states = model.observe(obs, prev_action, torch.zeros(5, 7, dtype=torch.bool))
    assert states.batch_size == torch.Size([5, 7]) and torch.equal(model.decode(states), obs)
    last = model.observe_last(obs, prev_action, torch.zeros(5, 7, dtype=torch.bool))
    assert torch.equal(last["obs"], obs[:, -1])
    nxt = model.imagine(last, torch.zeros(5, ACT))
    assert nxt.batch_size == torch.Size([5]) and nxt["obs"].shape == (5, OBS)
    assert model.reward(nxt).shape == (5,) and model.terminal(nxt).shape == (5,)
    assert ((model.terminal(nxt) >= 0) & (model.terminal(nxt) <= 1)).all()
    traj = model.rollout(last, torch.zeros(5, 6, ACT), torch.Generator().manual_seed(0))
    assert traj.batch_size == torch.Size([5, 6]) and traj["obs"].shape == (5, 6, OBS)
    assert model.latent(traj).shape == (5, 6, model.latent_dim) and model.latent_dim == OBS


def test_bad_shapes_are_refused():
    model = make_model()
    with pytest.raises(ValueError, match="obs must be"):
        model.observe(torch.randn(2, OBS), torch.zeros(2, ACT), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="prev_action"):
        model.observe(torch.randn(2, 3, OBS), torch.zeros(2, 3, ACT + 1), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="action must be"):
        model.imagine(model.initial_state(2), torch.zeros(2, ACT + 1))


def test_imagined_obs_stay_inside_a_bounded_space():
    torch.manual_seed(0)
    model = build_model("ensemble", {"num_members": 2, "num_elites": 1, "hidden_dims": (8,)}, make_task(high=0.5))
    with torch.no_grad():
        model.net.layers[-1].bias.fill_(50.0)  # pushes every delta far outside the box
    out = model.imagine(model.initial_state(4), torch.zeros(4, ACT))
    assert (out["obs"].abs() <= 0.5).all()


# ----------------------------------------------------------------------------- sampling semantics
def test_without_generator_prediction_is_deterministic_mean_of_elites():
    model = make_model()
    state = model.observe_last(torch.randn(8, 1, OBS), torch.zeros(8, 1, ACT), torch.ones(8, 1, dtype=torch.bool))
    action = torch.rand(8, ACT)
    a, b = model.imagine(state, action), model.imagine(state, action)
    assert torch.equal(a["obs"], b["obs"]) and torch.equal(a["reward"], b["reward"])
    mean, _, _ = model.predict(state["obs"], action)  # all members
    expected_delta = model.delta_norm.denormalize(mean[model.elite_idx, :, :OBS].mean(0))
    torch.testing.assert_close(a["obs"], state["obs"] + expected_delta)


def test_same_generator_seed_gives_same_samples_and_members_persist():
    model = make_model()
    state = model.initial_state(64)
    actions = torch.rand(64, 5, ACT)
    one = model.rollout(state, actions, torch.Generator().manual_seed(3))
    two = model.rollout(state, actions, torch.Generator().manual_seed(3))
    other = model.rollout(state, actions, torch.Generator().manual_seed(4))
    assert torch.equal(one["obs"], two["obs"]) and torch.equal(one["member"], two["member"])
    assert not torch.equal(one["obs"], other["obs"])
    # TS-inf: a trajectory keeps the member drawn at its first step, and members come from the elites.
    assert (one["member"] == one["member"][:, :1]).all()
    assert set(one["member"].unique().tolist()) <= set(model.elite_idx.tolist())
    assert len(one["member"][:, 0].unique()) == model.config.num_elites  # 64 draws hit both elites


def test_different_members_give_different_samples():
    model = make_model()
    state = model.initial_state(4)
    action = torch.rand(4, ACT)
    samples = []
    for member in range(model.num_members):
        state["member"] = torch.full((4,), member)
        out = model.imagine(state, action, torch.Generator().manual_seed(0))
        assert torch.equal(out["member"], torch.full((4,), member))  # an assigned member is kept
        samples.append(out["obs"])
    for i in range(len(samples)):
        for j in range(i + 1, len(samples)):
            assert not torch.allclose(samples[i], samples[j])


def test_routed_forward_matches_running_every_member():
    torch.manual_seed(0)
    net = EnsembleMLP(5, 4, (8, 8), 3)
    x = torch.randn(37, 4)
    members = torch.randint(5, (37,))
    all_members = net(x.expand(5, 37, 4))  # [M, N, out]
    expected = all_members[members, torch.arange(37)]
    torch.testing.assert_close(forward_routed(net, x, members), expected)


# ----------------------------------------------------------------------------- learning
def linear_system_batch(g: torch.Generator, b: int = 64, t: int = 3) -> TensorDict:
    """obs' = obs + 0.1 * (A obs + B a), reward = c . obs' ... with a fixed A, B, c."""
    a_mat = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.5], [0.0, -0.5, -0.2]])
    b_mat = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    c_vec = torch.tensor([1.0, -0.5, 0.25])
    obs = [torch.randn(b, OBS, generator=g)]
    actions = torch.rand(b, t, ACT, generator=g) * 2 - 1
    rewards = []
    for k in range(t):
        rewards.append(obs[-1] @ c_vec + 0.5 * actions[:, k, 0])
        obs.append(obs[-1] + 0.1 * (obs[-1] @ a_mat.T + actions[:, k] @ b_mat.T))
    return TensorDict(
        obs=torch.stack(obs[:t], 1),
        action=actions,
        reward=torch.stack(rewards, 1),
        terminated=torch.stack(obs[:t], 1)[..., 0] > 1.0,
        is_first=torch.zeros(b, t, dtype=torch.bool),
        mask=torch.ones(b, t, dtype=torch.bool),
        batch_size=[b, t],
    ), torch.stack(obs[1 : t + 1], 1)


def test_training_on_linear_dynamics_lowers_loss_and_predicts_well():
    model = make_model(hidden_dims=(32, 32), num_members=3, num_elites=2)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(250):
        batch, _ = linear_system_batch(g)
        loss, metrics = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert bool(model.stats_fitted.all())  # delta/reward stats came from the first batch
    assert np.mean(losses[-20:]) < np.mean(losses[:5]) - 5.0
    model.eval()
    batch, next_obs = linear_system_batch(torch.Generator().manual_seed(99))
    state = model.observe(batch["obs"], batch["action"], batch["is_first"])[:, 0]
    pred = model.imagine(state, batch["action"][:, 0])
    true_delta = next_obs[:, 0] - batch["obs"][:, 0]
    err = (pred["obs"] - next_obs[:, 0]).pow(2).mean() / true_delta.var()
    assert err < 0.01, f"relative one-step error {err:.3f}"
    reward_err = (pred["reward"] - batch["reward"][:, 0]).pow(2).mean() / batch["reward"][:, 0].var()
    assert reward_err < 0.02, f"relative reward error {reward_err:.3f}"
    assert metrics["mse/dynamics"] < 0.1 and all(f"member_nll/{i}" in metrics for i in range(3))


def test_loss_uses_only_valid_pairs_and_groups():
    model = make_model()
    batch = make_batch()
    groups, metrics = model.loss_groups(batch)
    assert set(groups) == {"dynamics", "reward", "terminal"} and all(v.dim() == 0 for v in groups.values())
    # Garbage after the mask must not change the loss (it is padding).
    padded = batch.clone()
    padded["mask"][:, -1] = False
    base, _ = model.loss_groups(padded)
    padded["obs"][:, -1] = 1e3
    padded["reward"][:, -1] = -1e3
    again, _ = model.loss_groups(padded)
    for key in base:
        torch.testing.assert_close(base[key], again[key])
    assert "terminal" not in make_model(predict_terminal=False).loss_groups(batch)[0]


def test_bootstrap_gives_members_different_data():
    model = make_model(bootstrap=True)
    batch = make_batch(b=32)
    model.train()
    torch.manual_seed(0)
    one = model.loss(batch)[0]
    two = model.loss(batch)[0]
    assert not torch.equal(one, two)  # Poisson weights are redrawn each step
    model.eval()
    assert torch.equal(model.loss(batch)[0], model.loss(batch)[0])  # no resampling at validation


# ----------------------------------------------------------------------------- elites and normalisation
def test_elites_picked_from_validation_metrics_and_used_for_prediction():
    model = make_model()
    model.on_validation_end(
        {
            "val/member_nll/0": 3.0,
            "val/member_nll/1": -1.0,
            "val/member_nll/2": 0.5,
            "val/member_nll/3": float("nan"),
            "val/loss": 1.0,
        }
    )
    assert model.elite_idx.tolist() == [1, 2]
    state, action = model.initial_state(3), torch.rand(3, ACT)
    before = model.imagine(state, action)["obs"]
    with torch.no_grad():  # wreck a non-elite member: the deterministic prediction must not move
        for layer in model.net.layers:
            layer.weight[0].mul_(100.0)
    torch.testing.assert_close(model.imagine(state, action)["obs"], before)
    model.on_validation_end({"loss": 1.0})  # no per-member metrics: elites unchanged
    assert model.elite_idx.tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"member\(s\) \[3\]"):
        model.on_validation_end({f"member_nll/{i}": 0.0 for i in range(3)})


def test_fit_normalization_sets_buffers_and_rejects_bad_stats():
    model = make_model()
    model.fit_normalization(
        {
            "obs": {"mean": [1.0, 2.0, 3.0], "std": [2.0, 2.0, 2.0], "min": [0, 0, 0]},
            "action": {"mean": [0.0, 0.0], "std": [0.5, 0.5]},
            "reward": {"mean": [1.0], "std": [3.0]},
            "next.done": {"mean": [0.0], "std": [1.0]},
        }
    )
    assert model.obs_norm.mean.tolist() == [1.0, 2.0, 3.0] and model.reward_norm.std.item() == 3.0
    assert model.stats_fitted.tolist() == [True, True, False, True]
    model.loss(make_batch())
    assert model.stats_fitted.all() and model.obs_norm.mean.tolist() == [1.0, 2.0, 3.0]  # given stats kept
    with pytest.raises(ValueError, match="'obs'"):
        model.fit_normalization({"obs": {"mean": [0.0] * 5, "std": [1.0] * 5}})
    with pytest.raises(ValueError, match="'action'"):
        model.fit_normalization({"action": {"mean": [0.0, 0.0]}})


# ----------------------------------------------------------------------------- checkpoints
def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for seed in range(3):
        loss, _ = model.loss(make_batch(seed=seed))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.on_validation_end({f"member_nll/{i}": float(-i) for i in range(4)})
    model.eval()
    save_pretrained(model, tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, EnsembleWorldModel) and loaded.elite_idx.tolist() == [2, 3]
    state, actions = model.initial_state(6), torch.rand(6, 4, ACT)
    for make_gen in (lambda: None, lambda: torch.Generator().manual_seed(7)):
        expected = model.rollout(state, actions, make_gen())
        got = loaded.rollout(state, actions, make_gen())
        for key in ("obs", "member", "reward", "terminal_logit"):
            assert torch.equal(expected[key], got[key]), key


# ----------------------------------------------------------------------------- bad input and bounds
@pytest.mark.parametrize("key", ["obs", "action", "reward"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_batch_is_rejected_naming_the_key(key, bad):
    batch = make_batch()
    batch[key][1, 2] = bad
    with pytest.raises(ValueError, match=f"batch\\['{key}'\\] holds non-finite"):
        make_model().loss(batch)


def test_missing_key_and_wrong_feature_shape_are_rejected():
    batch = make_batch()
    del batch["terminated"]
    with pytest.raises(ValueError, match="terminated"):
        make_model().loss(batch)
    batch = make_batch()
    batch["action"] = torch.zeros(6, 4, ACT + 1)
    with pytest.raises(ValueError, match="batch\\['action'\\] has shape"):
        make_model().loss(batch)


def test_logvar_stays_within_its_bounds():
    model = make_model()
    x = torch.cat([torch.randn(100, OBS) * 1e4, torch.zeros(1, OBS)])
    _, logvar, _ = model.predict(x, torch.randn(101, ACT) * 1e4)
    low, high = model.min_logvar.detach(), model.max_logvar.detach()
    assert (logvar >= low - 1e-4).all() and (logvar <= high + 1e-4).all()
    # Extreme raw values saturate at the bounds instead of running away.
    raw = torch.tensor([-1e6, 0.0, 1e6])
    clamped = soft_clamp(raw, torch.tensor(-10.0), torch.tensor(0.5))
    torch.testing.assert_close(clamped[[0, 2]], torch.tensor([-10.0, 0.5]), atol=1e-3, rtol=0)
    # The bound penalty pulls max_logvar down and min_logvar up (gradient descent direction).
    model._regularisers().backward()
    torch.testing.assert_close(model.max_logvar.grad, torch.full((OBS + 1,), 0.01))
    torch.testing.assert_close(model.min_logvar.grad, torch.full((OBS + 1,), -0.01))


def test_fixed_logvar_bounds_are_buffers():
    model = make_model(learn_logvar_bounds=False)
    names = {n for n, _ in model.named_parameters()}
    assert "max_logvar" not in names and "max_logvar" in model.state_dict()


# ----------------------------------------------------------------------------- gradients, precision, properties
def test_gradients_reach_actions_through_a_sampled_rollout():
    model = make_model()
    actions = torch.rand(16, 3, ACT, requires_grad=True)
    traj = model.rollout(model.initial_state(16), actions, torch.Generator().manual_seed(0))
    traj["reward"].sum().backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0 and torch.isfinite(actions.grad).all()


def test_state_without_member_is_treated_as_unassigned():
    model = make_model()
    state = TensorDict(obs=torch.randn(8, OBS), batch_size=[8])
    out = model.imagine(state, torch.rand(8, ACT), torch.Generator().manual_seed(0))
    assert set(out["member"].tolist()) <= set(model.elite_idx.tolist())


def test_bf16_autocast_loss_is_finite_and_float32():
    model = make_model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model.loss(make_batch())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@settings(max_examples=25, deadline=None)
@given(
    key=st.sampled_from(["obs", "action", "reward", "terminated"]),
    b=st.integers(0, 5),
    t=st.integers(0, 3),
    bad=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
)
def test_property_any_non_finite_entry_is_rejected(key, b, t, bad):
    batch = make_batch()
    if key == "terminated":
        batch[key] = batch[key].float()
    batch[key][b, t] = bad
    with pytest.raises(ValueError, match=key):
        make_model(hidden_dims=(4,)).loss_groups(batch)


def test_cached_elite_weights_follow_parameter_updates():
    """Inference caches the gathered elite weights; an optimizer step or a state-dict load must invalidate it."""
    from worldrl.models.ensemble.layers import EnsembleLinear

    torch.manual_seed(0)
    layer = EnsembleLinear(4, 3, 2)
    members = torch.tensor([1, 3])
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        before = layer(x, members)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x, members).sum().backward()
    opt.step()
    with torch.no_grad():
        after = layer(x, members)
        expected = torch.baddbmm(layer.bias[members], x, layer.weight[members])
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected)
    other = EnsembleLinear(4, 3, 2)
    layer.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(layer(x, members), other(x, members))
        torch.testing.assert_close(layer(x, torch.tensor([0, 2])), other(x, torch.tensor([0, 2])))
