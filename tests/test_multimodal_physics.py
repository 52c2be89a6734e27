"""The multimodal physics head: a gated interaction network that integrates its own velocities (a shut gate is
exactly constant-velocity extrapolation), trained on its own open-loop rollouts."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldrl.errors import CheckpointError
from worldrl.models import load_pretrained, save_pretrained
from worldrl.models.multimodal import MultimodalConfig, MultimodalWorldModel, TransformerWorldModel
from worldrl.models.multimodal.physics import (
    CONTACT_FEATURES,
    CONTACT_SCALE,
    STATE_LAYOUTS,
    PhysicsHead,
    StateLayout,
    blocks,
    contact_features,
    gated,
    integrate,
    physics_terms,
    positions,
    velocities,
    velocity_events,
)
from worldrl.models.task_spec import TaskSpec

LAYOUT = STATE_LAYOUTS["worldrl/Playground-v0"]
S = LAYOUT.state_dim
TINY = {k: v for k, v in MultimodalConfig.tiny().items() if k != "context_length"}
# two slots of 7 values (position 3, velocity 3, a presence flag), 10 Hz: small enough to train in a test
SMALL = StateLayout(objects=2, per_object=7, position=(0, 3), velocity=(3, 6), dt=0.1, presence=(6, 7))


def _stats(dim: int = S) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(dim, generator=g), torch.rand(dim, generator=g) + 0.2


def _scene(n: int) -> torch.Tensor:
    """Real-unit Playground-layout states: two present objects with unit quaternions, random motion."""
    state = torch.zeros(n, LAYOUT.objects, LAYOUT.per_object)
    state[:, :2, :3] = torch.randn(n, 2, 3)
    state[:, :2, 3] = 1.0
    state[:, :2, 7:] = torch.randn(n, 2, 6)
    return state.flatten(1)


def _head(layout: StateLayout = LAYOUT, feature: int = 10, hidden: int = 16) -> PhysicsHead:
    torch.manual_seed(0)
    head = PhysicsHead(feature + layout.state_dim, hidden, layout.state_dim, layout)
    head.set_state_stats(*_stats(layout.state_dim))
    return head


def test_zero_change_is_exactly_constant_velocity() -> None:
    real = _scene(5)
    nxt = integrate(real, torch.zeros_like(real), LAYOUT)
    p, v = positions(real, LAYOUT), velocities(real, LAYOUT)
    torch.testing.assert_close(positions(nxt, LAYOUT), p + v * LAYOUT.dt, atol=1e-6, rtol=0)
    torch.testing.assert_close(velocities(nxt, LAYOUT), v, atol=0, rtol=0)
    rest = torch.ones(LAYOUT.per_object, dtype=torch.bool)
    rest[LAYOUT.position[0] : LAYOUT.position[1]] = False
    torch.testing.assert_close(blocks(nxt, LAYOUT)[..., rest], blocks(real, LAYOUT)[..., rest], atol=0, rtol=0)


def test_untrained_head_is_constant_velocity_and_an_open_gate_moves_positions_by_half_dt() -> None:
    head, (mean, std) = _head(), _stats()
    real = _scene(3)
    state, feature = (real - mean) / std, torch.randn(3, 10)
    cv = integrate(real, torch.zeros_like(real), LAYOUT)
    torch.testing.assert_close(head(feature, state) * std + mean, cv, atol=1e-4, rtol=0)
    change = torch.zeros(3, LAYOUT.objects, LAYOUT.per_object)
    change[..., LAYOUT.velocity[0] : LAYOUT.velocity[1]] = 1.0
    shut, open_ = torch.full((3, LAYOUT.objects), -1.0), torch.full((3, LAYOUT.objects), 1.0)
    assert torch.equal(gated(change, shut, LAYOUT), torch.zeros(3, S))  # a shut gate changes no velocity
    moved = integrate(real, gated(change, open_, LAYOUT), LAYOUT) - cv
    torch.testing.assert_close(velocities(moved, LAYOUT), torch.ones(3, LAYOUT.objects, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        positions(moved, LAYOUT), torch.full((3, LAYOUT.objects, 3), 0.5 * LAYOUT.dt), atol=1e-5, rtol=0
    )


def test_empty_slots_send_no_messages_and_stay_empty() -> None:
    head = _head(hidden=8)
    for p in head.parameters():  # an untrained head changes nothing: give every weight a value
        torch.nn.init.normal_(p, std=0.5)
    real = _scene(2)
    change, _ = head.dynamics(real, torch.zeros(2, 10))
    assert torch.equal(change[:, 2:], torch.zeros_like(change[:, 2:]))  # absent objects do not move
    noisy = blocks(real, LAYOUT).clone()
    noisy[:, 3:, 7:10] = 5.0  # velocities in absent slots (quaternion zero: absent) must not reach the others
    again, _ = head.dynamics(noisy.flatten(1), torch.zeros(2, 10))
    torch.testing.assert_close(again[:, :2], change[:, :2])
    moved = blocks(real, LAYOUT).clone()
    moved[:, 1, :3] += 0.3  # but a present neighbour does
    assert not torch.allclose(head.dynamics(moved.flatten(1), torch.zeros(2, 10))[0][:, 0], change[:, 0])


def _friction_windows(n: int, T: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, T, 14]`` real SMALL-layout windows: object 0 slides in x and loses 0.3 m/s per step until it stops
    (sliding friction), object 1 keeps its velocity (free flight)."""
    x = torch.zeros(n, T, 2, 7)
    x[..., 6] = 1.0
    v0 = torch.rand(n, generator=generator) * 2.0 + 0.2
    v1 = torch.randn(n, generator=generator)
    x[:, 0, 0, 0], x[:, 0, 1, 1] = torch.randn(n, generator=generator), 2.0 + torch.randn(n, generator=generator)
    for t in range(T):
        if t:
            x[:, t] = x[:, t - 1]
            speed = (x[:, t - 1, 0, 3] - 0.3).clamp_min(0.0)
            x[:, t, 0, 0] += 0.5 * SMALL.dt * (x[:, t - 1, 0, 3] + speed)
            x[:, t, 0, 3] = speed
            x[:, t, 1, 1] += SMALL.dt * v1
        else:
            x[:, 0, 0, 3], x[:, 0, 1, 4] = v0, v1
    return x.flatten(2)


def _trained_head(
    data: torch.Tensor, g: torch.Generator, steps: int, batch: int, horizon: int, **options: bool
) -> PhysicsHead:
    """A SMALL-layout head (4 feature inputs, all zero) trained ``steps`` Adam steps on random batches of the real
    windows ``data [n, T, 14]`` with ``physics_terms``."""
    head = PhysicsHead(4 + SMALL.state_dim, 32, SMALL.state_dim, SMALL, **options)
    head.set_state_stats(data.flatten(0, 1).mean(0), data.flatten(0, 1).std(0) + 1e-3)
    T = data.shape[1]
    feature, pair = torch.zeros(batch, T, 4), torch.ones(batch, T - 1, dtype=torch.bool)
    opt = torch.optim.Adam(head.parameters(), 3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(data), (batch,), generator=g)
        terms = physics_terms(head, feature, head.normalised(data[idx]), pair, horizon=horizon)
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
    return head


def test_the_head_learns_friction_from_its_rollouts_and_keeps_free_flight_exact() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    head = _trained_head(_friction_windows(256, 6, g), g, steps=300, batch=32, horizon=5)
    test = _friction_windows(64, 8, torch.Generator().manual_seed(1))
    guess, zero = test[:, 0], torch.zeros(64, 4)
    with torch.no_grad():
        for _ in range(7):
            guess = head.real_step(zero, guess)
    cv = integrate(test[:, 0], torch.zeros_like(test[:, 0]), SMALL)
    for _ in range(6):
        cv = integrate(cv, torch.zeros_like(cv), SMALL)
    err = (positions(guess, SMALL) - positions(test[:, 7], SMALL)).norm(dim=-1)
    err_cv = (positions(cv, SMALL) - positions(test[:, 7], SMALL)).norm(dim=-1)
    assert err[:, 0].mean() < 0.3 * err_cv[:, 0].mean()  # the sliding object stops (constant velocity overshoots)
    exact = err[:, 1] < 1e-4  # the free object's gate stays shut: exactly constant velocity
    assert exact.float().mean() > 0.9 and err[:, 1].mean() < 0.1 * err_cv[:, 0].mean()


def test_rollout_term_is_zero_on_constant_velocity_data_for_an_untrained_head() -> None:
    head, (mean, std) = _head(), _stats()
    start = _scene(2)
    window = [start]
    for _ in range(4):
        window.append(integrate(window[-1], torch.zeros_like(start), LAYOUT))
    real = torch.stack(window, 1)
    with torch.no_grad():
        terms = physics_terms(head, torch.zeros(2, 5, 10), (real - mean) / std, torch.ones(2, 4, dtype=torch.bool))
    assert float(terms["physics_rollout"]) < 1e-8 and float(terms["physics_event"]) < 1e-8
    braking = real.clone()
    braking[:, 1:, 7] -= 0.5  # a velocity event at the first step: the gate should have opened
    with torch.no_grad():
        hit = physics_terms(head, torch.zeros(2, 5, 10), (braking - mean) / std, torch.ones(2, 4, dtype=torch.bool))
    assert float(hit["physics_rollout"]) > 1e-3 and float(hit["physics_event"]) > 1e-3
    assert float(hit["physics_gate"]) > float(terms["physics_gate"])


def test_transformer_prediction_with_an_untrained_head_is_constant_velocity() -> None:
    torch.manual_seed(0)
    net = TransformerWorldModel(**TINY, action_dim=2, state_dim=S, state_layout=LAYOUT).eval()
    mean, std = _stats()
    net.physics.set_state_stats(mean, std)
    real = _scene(6).reshape(2, 3, S)
    state = (real - mean) / std
    codes, frames = torch.zeros(2, 3, 16, dtype=torch.long), torch.rand(2, 3, 3, 32, 32)
    h = net.context(net.code_features(codes), frames, torch.randn(2, 3, TINY["audio_dim"]), state)
    pred = net.predict_next(h, torch.randn(2, 3, 2), state)["state"] * std + mean
    cv = positions(real, LAYOUT) + velocities(real, LAYOUT) * LAYOUT.dt
    torch.testing.assert_close(positions(pred, LAYOUT), cv, atol=1e-4, rtol=0)


def test_a_head_with_a_mismatched_layout_is_refused() -> None:
    with pytest.raises(Exception, match="layout covers 78"):
        PhysicsHead(10, 8, 6, LAYOUT)


def test_older_checkpoints_are_refused_with_one_line(tmp_path) -> None:
    spaces = {
        "observation.images.cam": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
        "observation.state": gym.spaces.Box(-np.inf, np.inf, (S,), np.float32),
    }
    task = TaskSpec.keyed(spaces, gym.spaces.Box(-1, 1, (2,), np.float32), task_id="worldrl/Playground-v0")
    model = MultimodalWorldModel(MultimodalConfig(**MultimodalConfig.tiny()), task)
    assert model.layout is not None and model.net.physics.layout is LAYOUT
    model.fit_normalization({"obs/observation.state": {"mean": np.ones(S), "std": np.full(S, 2.0)}})
    assert torch.allclose(model.net.physics.state_std, torch.full((S,), 2.0), atol=1e-5)
    save_pretrained(model, tmp_path / "m")
    assert torch.equal(load_pretrained(tmp_path / "m").net.physics.state_mean, torch.ones(S))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    old = MultimodalConfig.architecture_version - 1
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "architecture_version": old}))
    with pytest.raises(CheckpointError, match=f"architecture version {old}") as err:
        load_pretrained(tmp_path / "m")
    assert "\n" not in str(err.value)


def test_position_and_velocity_axes_share_one_scale_so_a_vertical_error_weighs_as_a_horizontal_one() -> None:
    std = torch.ones(S)
    b = blocks(std[None], LAYOUT)[0]
    b[:, 7], b[:, 8], b[:, 9] = 0.8, 0.8, 0.05  # a wide horizontal and a narrow vertical velocity spread
    b[:, 2] = 0.01
    head = PhysicsHead(10 + S, 16, S, LAYOUT)
    head.set_state_stats(torch.zeros(S), b.flatten())
    scale = head.dynamics.scale
    assert torch.allclose(scale[7:10], torch.full((3,), 0.8)) and torch.allclose(scale[0:3], torch.ones(3))
    assert float(scale[3]) == 1.0  # other entries keep their own spread
    start = _scene(2)
    truth = torch.stack([start, integrate(start, torch.zeros_like(start), LAYOUT)], 1)
    terms = {}
    for axis in (7, 9):  # the same 0.1 m/s velocity event, horizontal then vertical
        hit = truth.clone()
        hit[:, 1, axis] += 0.1
        with torch.no_grad():
            terms[axis] = physics_terms(
                head, torch.zeros(2, 2, 10), head.normalised(hit), torch.ones(2, 1, dtype=torch.bool)
            )
    assert float(terms[7]["physics_event"]) == pytest.approx(float(terms[9]["physics_event"]), rel=1e-5)
    assert float(terms[7]["physics_event"]) > 0


@pytest.mark.parametrize("context", ["feature", "action"])
def test_physics_context_decides_what_the_head_reads_beside_the_state(context: str) -> None:
    torch.manual_seed(0)
    net = TransformerWorldModel(**TINY, action_dim=2, state_dim=S, state_layout=LAYOUT, physics_context=context).eval()
    mean, std = _stats()
    net.physics.set_state_stats(mean, std)
    with torch.no_grad():  # a trained-looking head: every weight non-zero, so any input it reads moves its output
        for p in net.physics.parameters():
            p.normal_(0, 0.3)
    assert net.physics.dynamics.context.in_features == (
        2 if context == "action" else net.config.latent_dim + net.config.embed_dim
    )
    state = (_scene(6).reshape(2, 3, S) - mean) / std
    codes, audio = torch.zeros(2, 3, 16, dtype=torch.long), torch.randn(2, 3, TINY["audio_dim"])
    actions = torch.randn(2, 3, 2)

    def next_state(frames: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        h = net.context(net.code_features(codes), frames, audio, state)
        return net.predict_next(h, acts, state)["state"]

    frames = torch.rand(2, 3, 3, 32, 32)
    base = next_state(frames, actions)
    other_frames = next_state(torch.rand(2, 3, 3, 32, 32), actions)
    assert not torch.allclose(next_state(frames, actions + 1.0), base)  # both read the action
    if context == "action":  # the frames reach the head only through the transformer's latent
        torch.testing.assert_close(other_frames, base)
    else:
        assert not torch.allclose(other_frames, base)


def test_an_unknown_physics_context_is_a_one_line_config_error() -> None:
    with pytest.raises(Exception, match="physics_context") as err:
        MultimodalConfig(**{**MultimodalConfig.tiny(), "physics_context": "pixels"})
    assert "\n" not in str(err.value)


def test_a_contact_radius_keeps_lone_objects_at_constant_velocity_and_out_of_the_gate_loss() -> None:
    torch.manual_seed(0)
    head = PhysicsHead(10 + S, 16, S, LAYOUT, contact_radius=0.3)
    head.set_state_stats(*_stats())
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        head.dynamics.node[-1].bias[-1] = 100.0  # every gate that may open is open
    state = torch.zeros(1, LAYOUT.objects, LAYOUT.per_object)
    state[0, :3, 3] = 1.0  # three present objects: 0 and 1 are 0.2 m apart, 2 is 2 m from both
    state[0, :3, :3] = torch.tensor([[0.0, 0.0, 0.1], [0.2, 0.0, 0.1], [2.0, 0.0, 0.1]])
    state[0, :3, 7:10] = torch.randn(3, 3)
    real = state.flatten(1)
    change, gate = head.dynamics(real, torch.zeros(1, 10))
    assert (gate[0, :2] > 0).all() and gate[0, 2] < 0 and (gate[0, 3:] < 0).all()
    nxt = head.real_step(torch.zeros(1, 10), real)
    cv = integrate(real, torch.zeros_like(real), LAYOUT)
    torch.testing.assert_close(velocities(nxt, LAYOUT)[0, 2], velocities(cv, LAYOUT)[0, 2], atol=0, rtol=0)
    torch.testing.assert_close(positions(nxt, LAYOUT)[0, 2], positions(cv, LAYOUT)[0, 2], atol=1e-6, rtol=0)
    assert not torch.allclose(velocities(nxt, LAYOUT)[0, :2], velocities(cv, LAYOUT)[0, :2])
    # the lone object's velocity event (its change is true but its gate cannot open) is left out of the gate loss
    later = blocks(cv, LAYOUT).clone()
    later[0, 2, 7:10] += 1.0
    window = torch.stack([real[0], later.flatten()])[None]
    mean, std = _stats()
    terms = physics_terms(head, torch.zeros(1, 2, 10), (window - mean) / std, torch.ones(1, 1, dtype=torch.bool), 1)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(gate[0, :2], torch.zeros(2))  # no event there
    torch.testing.assert_close(terms["physics_gate"], expected)  # with object 2 in, the mean would be ~3e3 higher
    with pytest.raises(Exception, match="physics_contact_radius"):
        MultimodalConfig(**{**TINY, "physics_contact_radius": -1.0})


def test_contact_features_measure_the_gap_a_step_ahead_and_the_closing_speed() -> None:
    # two spheres of radius 0.05 resting on the floor (centres at z = 0.05), 0.2 m apart, approaching at 1 m/s each
    p = torch.tensor([[0.0, 0.0, 0.05], [0.2, 0.0, 0.05]])
    v = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    f = contact_features(p, v, dt=0.02)
    assert f.shape == (2, 2, CONTACT_FEATURES)
    gap, gap_next, change, closing, steps = f[0, 1]
    torch.testing.assert_close(gap, torch.tensor(0.1 / CONTACT_SCALE))  # 0.2 m between centres, 0.1 m of radii
    torch.testing.assert_close(gap_next, torch.tensor(0.06 / CONTACT_SCALE))  # 4 cm closer after 0.02 s at 2 m/s
    torch.testing.assert_close(change, torch.tensor(-0.04 / CONTACT_SCALE))
    torch.testing.assert_close(closing, torch.tensor(2.0))
    torch.testing.assert_close(steps, torch.tensor(0.25))  # 0.1 m at 2 m/s: 2.5 steps of 0.02 s, /10
    torch.testing.assert_close(f[1, 0], f[0, 1])  # symmetric in the pair
    apart = contact_features(p, -v, dt=0.02)[0, 1]
    assert apart[3] == -2.0 and apart[1] > apart[0] and apart[4] == 20.0  # receding: never, clamped


def _head_on_windows(n: int, T: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, T, 14]`` real SMALL-layout windows: sphere 0 (radius = its height z) rolls along x into sphere 1 at rest
    and the two swap velocities the step their gap closes (equal masses, elastic)."""
    x = torch.zeros(n, T, 2, 7)
    x[..., 6] = 0.8 + 0.4 * torch.rand(n, 1, 2, generator=generator)  # present (a constant flag would scale to 1e3)
    r = torch.rand(n, 2, generator=generator) * 0.05 + 0.03
    x[:, 0, :, 2] = r
    x[:, 0, 1, 0] = 0.4 + torch.rand(n, generator=generator) * 0.6
    x[:, 0, 0, 3] = 0.5 + torch.rand(n, generator=generator) * 1.5
    for t in range(1, T):
        x[:, t] = x[:, t - 1]
        v = x[:, t - 1, :, 3]
        gap = x[:, t - 1, 1, 0] - x[:, t - 1, 0, 0] - r.sum(-1)
        hit = (gap - SMALL.dt * (v[:, 0] - v[:, 1]) < 0) & (v[:, 0] > v[:, 1])
        new = torch.where(hit[:, None], v.flip(-1), v)
        x[:, t, :, 0] += 0.5 * SMALL.dt * (v + new)
        x[:, t, :, 3] = new
    return x.flatten(2)


def test_contact_features_let_the_gate_time_a_collision() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    head = _trained_head(_head_on_windows(512, 10, g), g, steps=200, batch=64, horizon=4, contact_features=True)
    test = _head_on_windows(256, 10, torch.Generator().manual_seed(1))
    now, nxt = test[:, :-1].flatten(0, 1), test[:, 1:].flatten(0, 1)
    with torch.no_grad():
        _, gate = head.dynamics(now, torch.zeros(len(now), 4))
    event = velocity_events(now, nxt, SMALL)
    opened = gate > 0
    assert (opened & event).sum() > 0.9 * event.sum()  # recall: the step of contact is found
    assert (opened & event).sum() > 0.9 * opened.sum()  # precision: and only it
    assert head.dynamics.edge[0].in_features == 2 * SMALL.per_object + 7 + CONTACT_FEATURES
    plain = PhysicsHead(4 + SMALL.state_dim, 32, SMALL.state_dim, SMALL)  # off (older checkpoints): as before
    assert plain.dynamics.edge[0].in_features == 2 * SMALL.per_object + 7
