"""Every library family as TorchRL modules: declared keys, the same numbers as the protocol, gradients to actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from worldrl.models import TaskSpec, available_families, build_model, get_family
from worldrl.models.torchrl_modules import initial_tensordict, torchrl_modules

torch.set_num_threads(1)
FAMILIES = [
    name for name in available_families() if get_family(name).model_class.__module__.startswith("worldrl.models.")
]
ACTION = gym.spaces.Box(-1, 1, (1,), np.float32)
TASKS = [  # the first one a family models
    TaskSpec(gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), ACTION, "Pendulum-v1"),
    TaskSpec.keyed(
        {
            "observation.state": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
            "observation.images.front": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
        },
        ACTION,
    ),
]
B, T = 2, 3


def _build(family: str):
    config = get_family(family).config_class.tiny()
    for task in TASKS:
        try:
            torch.manual_seed(0)
            return build_model(family, config, task).eval()
        except ValueError:
            continue
    pytest.fail(f"{family} models none of the test tasks")


def _obs(task: TaskSpec, *batch: int):
    if not task.is_keyed:
        return torch.randn(*batch, *task.obs_shape)
    return TensorDict(
        {
            key: torch.randint(0, 255, (*batch, *space.shape)).float()
            if space.dtype == np.uint8
            else torch.randn(*batch, *space.shape)
            for key, space in task.key_spaces().items()
        },
        batch,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_modules_declare_their_keys_and_match_the_protocol(family: str) -> None:
    model = _build(family)
    mods = torchrl_modules(model)
    assert mods.encoder.in_keys == ["observation", "action", "is_init"]
    assert mods.encoder.out_keys == ["state", "belief"]
    assert mods.transition.in_keys == ["state", "action"]
    assert mods.transition.out_keys == [("next", "state"), ("next", "belief")]
    assert (mods.reward is not None) == model.capabilities.predicts_reward
    assert (mods.decoder is not None) == model.capabilities.can_decode

    obs = _obs(model.task, B, T)
    action = torch.rand(B, T, model.task.action_dim) * 2 - 1
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    is_init[:, 0] = True
    with torch.no_grad():
        td = mods.encoder(TensorDict(observation=obs, action=action, is_init=is_init, batch_size=[B, T]))
        prev = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
        expected = model.observe(obs, prev, is_init[..., 0])
    assert td["belief"].shape == (B, T, model.latent_dim)
    torch.testing.assert_close(td["belief"], model.latent(expected))

    start = td[:, -1].select("state", "belief").clone()
    start["action"] = action[:, -1]
    with torch.no_grad():
        out = mods.step(start)
        nxt = model.imagine(expected[:, -1], action[:, -1])
    for key in mods.step.out_keys:
        assert key in out.keys(True), key
    torch.testing.assert_close(out["next", "belief"], model.latent(nxt))
    assert out["next", "terminated"].shape == (B, 1) and out["next", "terminated"].dtype == torch.bool
    assert torch.equal(out["next", "done"], out["next", "terminated"])
    if mods.reward is not None:
        torch.testing.assert_close(out["next", "reward"], model.reward(nxt).reshape(B, 1))
    if mods.decoder is not None:
        with torch.no_grad():
            decoded = mods.decoder(out["next"].clone())["observation"]
        expected_obs = model.decode(nxt)
        if isinstance(decoded, TensorDict):
            for key in model.task.obs_keys:
                torch.testing.assert_close(decoded[key], expected_obs[key])
        else:
            torch.testing.assert_close(decoded, expected_obs)

    single = initial_tensordict(model, _obs(model.task, B))
    assert single.batch_size == (B,) and single["belief"].shape == (B, model.latent_dim)


@pytest.mark.parametrize("family", [f for f in FAMILIES if get_family(f).model_class.capabilities.predicts_reward])
def test_imagined_rewards_carry_gradients_to_actions(family: str) -> None:
    """What TorchRL's Dreamer actor loss needs: d reward / d action through the learned transition."""
    model = _build(family)
    mods = torchrl_modules(model)
    td = initial_tensordict(model, _obs(model.task, B)).detach()
    action = torch.zeros(B, model.task.action_dim, requires_grad=True)
    td["action"] = action
    mods.step(td)["next", "reward"].sum().backward()
    assert action.grad is not None and action.grad.abs().sum() > 0


def test_sampling_follows_the_generator() -> None:
    model = _build("ensemble")
    td = initial_tensordict(model, torch.randn(B, 3))
    td["action"] = torch.zeros(B, 1)
    draws = [
        torchrl_modules(model, torch.Generator().manual_seed(seed)).step(td.clone())["next", "belief"]
        for seed in (0, 0, 1)
    ]
    torch.testing.assert_close(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


@pytest.mark.parametrize("family", FAMILIES)
def test_is_init_starts_a_new_episode_mid_sequence(family: str) -> None:
    """``InitTracker``'s ``is_init`` inside a [B, T] batch: the steps after it are encoded as a fresh episode (no
    memory of the earlier one, no previous action carried over), exactly as if encoded on their own."""
    model = _build(family)
    encoder = torchrl_modules(model).encoder
    steps, cut = 5, 2
    obs = _obs(model.task, B, steps)
    action = torch.rand(B, steps, model.task.action_dim) * 2 - 1
    is_init = torch.zeros(B, steps, 1, dtype=torch.bool)
    is_init[:, cut] = True
    with torch.no_grad():
        joined = encoder(TensorDict(observation=obs, action=action, is_init=is_init, batch_size=[B, steps]))
        alone = encoder(TensorDict(observation=obs[:, cut:], action=action[:, cut:], batch_size=[B, steps - cut]))
        default = encoder(TensorDict(observation=obs, action=action, batch_size=[B, steps]))
    torch.testing.assert_close(joined["belief"][:, cut:], alone["belief"])
    torch.testing.assert_close(joined["belief"][:, :cut], default["belief"][:, :cut])
    if family == "vrnn":  # without is_init its recurrent state carries memory across the cut (a vjepa2 belief is
        # the current frame's embedding, so there is no memory to check)
        assert not torch.allclose(joined["belief"][:, cut:], default["belief"][:, cut:])
