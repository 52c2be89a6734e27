"""The vjepa2 family: 3D RoPE, masked latent prediction with an EMA target, the block-causal action-conditioned
predictor, latent-only serving with goal rewards, and one-line errors on bad input."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from worldrl.envs import WorldModelTorchRLEnv
from worldrl.models import TaskSpec, build_model, load_pretrained
from worldrl.models.vjepa2 import VJEPA2Config, VJEPA2WorldModel
from worldrl.models.vjepa2.action_predictor import block_causal_mask
from worldrl.models.vjepa2.momentum import ema_momentum
from worldrl.models.vjepa2.rope import apply_rope_3d, grid_positions

IMG = 16


def make_task(state: bool = True) -> TaskSpec:
    spaces = {"observation.images.front": gym.spaces.Box(0, 255, (IMG, IMG, 3), np.uint8)}
    if state:
        spaces["observation.state"] = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    return TaskSpec.keyed(spaces, gym.spaces.Box(-1, 1, (2,), np.float32))


def make_model(state: bool = True, **overrides) -> VJEPA2WorldModel:
    torch.manual_seed(0)
    return build_model("vjepa2", {**VJEPA2Config.tiny(), **overrides}, make_task(state))


def activate(model: VJEPA2WorldModel) -> VJEPA2WorldModel:
    """Random output layers for the AC predictor (its residual outputs start at zero: it repeats the last frame)."""
    with torch.no_grad():
        for layer in (model.action_predictor.out, model.action_predictor.state_out):
            torch.nn.init.normal_(layer.weight, std=0.5)
    return model


def make_obs(batch: int, steps: int, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        {
            "observation.images.front": torch.randint(
                0, 256, (batch, steps, IMG, IMG, 3), generator=g, dtype=torch.uint8
            ),
            "observation.state": torch.randn(batch, steps, 4, generator=g),
        },
        batch_size=[batch, steps],
    )


def make_batch(batch: int = 3, steps: int = 4) -> TensorDict:
    return TensorDict(
        {
            "obs": make_obs(batch, steps),
            "action": torch.rand(batch, steps, 2) * 2 - 1,
            "mask": torch.ones(batch, steps, dtype=torch.bool),
            "is_first": torch.zeros(batch, steps, dtype=torch.bool),
            "reward": torch.zeros(batch, steps),
            "terminated": torch.zeros(batch, steps, dtype=torch.bool),
        },
        batch_size=[batch, steps],
    )


def test_rope_3d_scores_depend_only_on_relative_positions() -> None:
    q, k = torch.randn(1, 2, 1, 12), torch.randn(1, 2, 1, 12)
    a, b = torch.tensor([[[1, 2, 3]]]), torch.tensor([[[0, 0, 1]]])
    shift = torch.tensor([[[4, -1, 2]]])

    def score(pa, pb):
        return (apply_rope_3d(q, pa) * apply_rope_3d(k, pb)).sum()

    assert torch.allclose(score(a, b), score(a + shift, b + shift), atol=1e-5)
    assert not torch.allclose(score(a, b), score(a, b + shift), atol=1e-3)
    assert torch.allclose(apply_rope_3d(q, a).norm(), q.norm(), atol=1e-5)  # a rotation
    assert grid_positions(2, 3, 4).tolist()[5] == [0, 1, 1]  # raster order, time slowest


def test_masked_prediction_setup_follows_v_jepa_2() -> None:
    model = make_model()
    assert torch.count_nonzero(model.predictor.mask_token) == 0  # zero-initialised mask tokens
    assert model.config.ema_momentum == 0.99925
    assert not any(p.requires_grad for p in model.target_encoder.parameters())
    names = {g["name"] for g in model.parameter_groups(1e-3)}
    assert names == {"encoder", "predictor", "action_predictor"}
    # the target never gets gradients; the context encoder and predictor do
    groups, _ = model.loss_groups(make_batch())
    groups["jepa"].backward()
    assert model.encoder.patch_embed.weight.grad is not None and model.predictor.mask_token.grad is not None
    assert model.action_predictor.out.weight.grad is None  # the AC loss reads the frozen target latents


def test_target_encoder_follows_by_ema() -> None:
    model = make_model()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = model.target_encoder.patch_embed.weight.clone()
    online = model.encoder.patch_embed.weight.clone()
    model.on_train_step_end(1)
    m = 0.99925
    assert torch.allclose(model.target_encoder.patch_embed.weight, m * before + (1 - m) * online, atol=1e-6)
    assert ema_momentum(0, 0.996, 1.0, 100) == 0.996 and ema_momentum(50, 0.996, 1.0, 100) == pytest.approx(0.998)
    assert ema_momentum(500, 0.996, 1.0, 100) == 1.0 and ema_momentum(500, 0.99925, None, 0) == 0.99925


def test_block_causal_predictor_changes_only_the_last_frame_for_the_last_action() -> None:
    model = make_model()
    tokens = torch.randn(2, 4, model.tokens_per_frame, model.dim)
    actions, states = torch.randn(2, 4, 2), torch.randn(2, 4, 4)
    with torch.no_grad():  # untrained, the residual predictor repeats each frame
        same, same_s = model.action_predictor(tokens, actions, states)
        assert torch.equal(same, tokens) and torch.equal(same_s, states)
    activate(model)
    with torch.no_grad():
        out, out_s = model.action_predictor(tokens, actions, states)
        changed = actions.clone()
        changed[:, -1] += 1.0
        out2, out2_s = model.action_predictor(tokens, changed, states)
    assert torch.allclose(out[:, :-1], out2[:, :-1], atol=1e-6) and torch.allclose(out_s[:, :-1], out2_s[:, :-1])
    assert not torch.allclose(out[:, -1], out2[:, -1], atol=1e-4)
    mask = block_causal_mask(3, 2)
    assert mask[2, :4].all() and not mask[2, 4:].any() and mask.sum() == 2 * (2 + 4 + 6)


def test_imagine_continues_the_observed_history() -> None:
    model = activate(make_model(context_frames=3))
    obs, prev = make_obs(2, 5), torch.rand(2, 5, 2) * 2 - 1
    is_first = torch.zeros(2, 5, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 3] = True  # a new episode starts in the second row
    with torch.no_grad():
        states = model.observe(obs, prev, is_first)
        assert states["valid"][0, 4].all() and states["valid"][1, 4].tolist() == [False, True, True]
        action = torch.rand(2, 2)
        nxt = model.imagine(states[:, -1], action)
        # the same prediction as the predictor run directly on the last three frames of row 0
        tokens = model.encode_frames(obs)[:, 2:5]
        acts = torch.cat([prev[:, 3:5], action[:, None]], dim=1)
        direct, _ = model.action_predictor(tokens, model._norm_action(acts), model._proprio(obs, 2)[:, 2:5])
    assert torch.allclose(nxt["tokens"][0, -1], direct[0, -1], atol=1e-5)
    assert torch.equal(nxt["tokens"][:, :-1], states[:, -1]["tokens"][:, 1:])
    assert model.latent(nxt).shape == (2, model.latent_dim)


def test_the_ac_predictor_learns_moving_shapes(tmp_path: Path) -> None:
    """Seconds of CPU on the synthetic dataset with a frozen random encoder: the AC predictor learns the dynamics."""
    from worldrl.cli import main as worldrl_main

    config = tmp_path / "c.yaml"
    config.write_text(f"""
output_dir: {tmp_path / "run"}
seed: 0
data: {{root: {tmp_path / "shapes"}, window: 4, synthetic: {{episodes: 6, steps: 16, image_size: 16, square: 4}}}}
model: {{family: vjepa2, encoder: {{image_size: 16, patch_size: 4, dim: 24, depth: 1, num_heads: 2}},
        predictor: {{dim: 12, depth: 1, num_heads: 2}}, action_predictor: {{dim: 24, depth: 1, num_heads: 2}},
        masking: {{strategy: random, mask_ratio: 0.5}}, ema_momentum: 0.99, train_encoder: false}}
trainer: {{max_steps: 150, batch_size: 8, lr: 3.0e-3, eval_every: 150, log_every: 10, progress: false}}
""")
    assert worldrl_main(["train", "--config", str(config)]) == 0
    import json

    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r["metrics"] for r in rows if r["split"] == "train"]
    assert train[-1]["ac_teacher_l1"] < train[0]["ac_teacher_l1"]
    model = load_pretrained(tmp_path / "run" / "model")
    assert isinstance(model, VJEPA2WorldModel)
    # the AC predictor beats repeating the last frame's latents on the same windows (teacher forcing, one step)
    from worldrl.data import LeRobotDatasetReader, WindowDataset

    reader = LeRobotDatasetReader(tmp_path / "shapes")
    keys = {f"obs/{k}": k for k in model.task.obs_keys} | {"action": "action"}
    ds = WindowDataset(reader, keys=keys, window=4)
    items = [ds[i] for i in range(0, len(ds), 3)]
    obs = TensorDict(
        {k: torch.stack([torch.as_tensor(it[f"obs/{k}"]) for it in items]) for k in model.task.obs_keys},
        batch_size=[len(items), 4],
    )
    action = torch.stack([torch.as_tensor(it["action"]) for it in items])
    with torch.no_grad():
        tokens = model.encode_frames(obs)
        proprio = model._proprio(obs, 2)
        pred, pred_state = model.action_predictor(tokens[:, :-1], model._norm_action(action[:, :-1]), proprio[:, :-1])
    # the state token learns the pushed square's motion; the patch latents stay near repeating the last frame
    # (few patches change per step: a budget of seconds does not get below that baseline)
    assert (pred_state - proprio[:, 1:]).abs().mean() < 0.6 * (proprio[:, :-1] - proprio[:, 1:]).abs().mean()
    assert (pred - tokens[:, 1:]).abs().mean() < 1.15 * (tokens[:, :-1] - tokens[:, 1:]).abs().mean()


def test_latent_env_with_a_goal_passes_the_checks(tmp_path: Path) -> None:
    model = make_model()
    model.start_states = make_obs(3, 1)[:, 0]
    model.save_pretrained(str(tmp_path / "ckpt"))
    goal = {k: v[0].numpy() for k, v in make_obs(1, 1, seed=3)[:, 0].items()}
    env = gym.make("WorldModel-v0", model=str(tmp_path / "ckpt"), obs_mode="latent", reward="goal", goal=goal)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (model.latent_dim,)
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward) and reward <= 0
    check_env_specs(WorldModelTorchRLEnv(load_pretrained(tmp_path / "ckpt"), goal=goal))


def test_bad_input_gives_one_line_errors() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="shorter than a tubelet"):
        model.jepa_loss(make_obs(2, 1), torch.Generator())
    wrong = TensorDict(
        {
            "observation.images.front": torch.zeros(2, 2, 8, 8, 3, dtype=torch.uint8),
            "observation.state": torch.zeros(2, 2, 4),
        },
        batch_size=[2, 2],
    )
    with pytest.raises(ValueError, match=r"'observation.images.front' has shape \(8, 8, 3\)"):
        model.observe(wrong, torch.zeros(2, 2, 2), torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="has shape"):
        model.embed(wrong[:, 0])
    with pytest.raises(ValueError, match="lacks key"):
        model.embed(TensorDict({"observation.state": torch.zeros(2, 4)}, batch_size=[2]))
    with pytest.raises(ValueError, match="mask_ratio"):
        VJEPA2Config.from_dict({"masking": {"mask_ratio": 1.5}})
    with pytest.raises(ValueError, match="camera"):
        build_model(
            "vjepa2",
            VJEPA2Config.tiny(),
            TaskSpec(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (1,), np.float32)),
        )


def test_a_checkpoint_of_another_family_is_refused(tmp_path: Path) -> None:
    model = make_model()
    model.save_pretrained(str(tmp_path / "ckpt"))
    from worldrl.models.ensemble import EnsembleWorldModel

    with pytest.raises(TypeError, match="not a EnsembleWorldModel|VJEPA2WorldModel"):
        EnsembleWorldModel.from_pretrained(str(tmp_path / "ckpt"))


def test_without_a_state_key_the_tokens_alone_carry_the_state() -> None:
    model = make_model(state=False)
    assert model.state_dim == 0 and model.action_predictor.num_conditions == 1
    obs = make_obs(2, 3)["observation.images.front"]
    with torch.no_grad():
        states = model.observe(obs, torch.zeros(2, 3, 2), torch.zeros(2, 3, dtype=torch.bool))
        nxt = model.imagine(states[:, -1], torch.zeros(2, 2))
    assert "proprio" not in nxt.keys() and model.latent(nxt).shape == (2, model.latent_dim)


def test_masked_prediction_learns_without_collapsing(tmp_path: Path) -> None:
    """JEPA's L1 falls on moving shapes while the EMA target's latents keep varying across frames (a collapsed
    encoder would make the loss trivially small with identical latents for every frame)."""
    import json

    from worldrl.cli import main as worldrl_main
    from worldrl.data import LeRobotDatasetReader

    config = tmp_path / "c.yaml"
    config.write_text(f"""
output_dir: {tmp_path / "run"}
seed: 0
data: {{root: {tmp_path / "shapes"}, window: 4, synthetic: {{episodes: 6, steps: 16, image_size: 16, square: 4}}}}
model: {{family: vjepa2, encoder: {{image_size: 16, patch_size: 4, dim: 24, depth: 1, num_heads: 2}},
        predictor: {{dim: 12, depth: 1, num_heads: 2}}, action_predictor: {{dim: 24, depth: 1, num_heads: 2}},
        masking: {{strategy: random, mask_ratio: 0.5}}}}
trainer: {{max_steps: 100, batch_size: 8, lr: 3.0e-3, eval_every: 100, log_every: 10, progress: false}}
""")
    assert worldrl_main(["train", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r["metrics"]["jepa_l1"] for r in rows if r["split"] == "train"]
    assert train[-1] < 0.5 * train[0]
    model = load_pretrained(tmp_path / "run" / "model")
    frames = torch.as_tensor(
        LeRobotDatasetReader(tmp_path / "shapes").frames("observation.images.front", list(range(0, 90, 3)))
    )[:, None]
    obs = TensorDict({"observation.images.front": frames}, batch_size=frames.shape[:2])
    torch.manual_seed(0)
    untrained = build_model("vjepa2", model.config.to_dict(), model.task)
    with torch.no_grad():
        spread = model.encode_frames(obs)[:, 0].std(0).mean()
        spread_untrained = untrained.encode_frames(obs)[:, 0].std(0).mean()
    assert spread > 0.5 * spread_untrained


def test_several_cameras_are_encoded_separately_and_tagged() -> None:
    spaces = {
        "observation.images.top": gym.spaces.Box(0, 255, (IMG, IMG, 3), np.uint8),
        "observation.images.wrist": gym.spaces.Box(0, 255, (20, 24, 3), np.uint8),
        "observation.state": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
    }
    task = TaskSpec.keyed(spaces, gym.spaces.Box(-1, 1, (2,), np.float32))
    model = build_model("vjepa2", VJEPA2Config.tiny(), task)
    assert model.cameras == ["observation.images.top", "observation.images.wrist"]
    assert model.tokens_per_frame == 2 * model.encoder.grid_hw**2
    assert model.action_predictor.camera_embed.shape[0] == 2
    g = torch.Generator().manual_seed(0)
    obs = TensorDict(
        {
            "observation.images.top": torch.randint(0, 256, (2, 4, IMG, IMG, 3), generator=g, dtype=torch.uint8),
            "observation.images.wrist": torch.randint(0, 256, (2, 4, 20, 24, 3), generator=g, dtype=torch.uint8),
            "observation.state": torch.randn(2, 4, 4, generator=g),
        },
        batch_size=[2, 4],
    )
    batch = TensorDict(
        {
            "obs": obs,
            "action": torch.zeros(2, 4, 2),
            "mask": torch.ones(2, 4, dtype=torch.bool),
            "is_first": torch.zeros(2, 4, dtype=torch.bool),
        },
        batch_size=[2, 4],
    )
    groups, _ = model.loss_groups(batch)
    assert set(groups) == {"jepa", "ac"} and all(torch.isfinite(v) for v in groups.values())
    with torch.no_grad():
        top_only = model.encode_frames(obs)[:, :, : model.encoder.grid_hw**2]
        alone = model.frozen_encoder(model._clips(obs, "observation.images.top")[:, :1].expand(-1, 2, -1, -1, -1))
    assert torch.allclose(top_only[:, 0], torch.nn.functional.layer_norm(alone, alone.shape[-1:]), atol=1e-5)
    chosen = build_model("vjepa2", {**VJEPA2Config.tiny(), "cameras": ["observation.images.wrist"]}, task)
    assert chosen.cameras == ["observation.images.wrist"]
    with pytest.raises(ValueError, match="not camera keys"):
        build_model("vjepa2", {**VJEPA2Config.tiny(), "cameras": ["observation.images.side"]}, task)


def test_surprise_is_the_masked_prediction_error_of_the_later_slots() -> None:
    model = make_model()
    obs = make_obs(3, 4)
    surprise = model.surprise(obs)
    assert surprise.shape == (3,) and torch.isfinite(surprise).all() and (surprise > 0).all()
    assert torch.equal(surprise, model.surprise(obs))  # no randomness: fixed temporal masks
    with torch.no_grad():  # by hand: context = slot 0, target = slot 1 of the 2-slot clip
        x = model._clips(obs, "observation.images.front")
        per_slot = model.encoder.grid_hw**2
        ctx = torch.arange(per_slot)[None].expand(3, -1)
        tgt = torch.arange(per_slot, 2 * per_slot)[None].expand(3, -1)
        pred = model.predictor(model.encoder(x, keep=ctx), ctx, tgt, model.encoder.grid(4))
        target = torch.nn.functional.layer_norm(model.target_encoder(x), (model.dim,))[:, per_slot:]
    assert torch.allclose(surprise, (pred - target).abs().mean((1, 2)), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 tubelets"):
        model.surprise(make_obs(2, 3))
    with pytest.raises(ValueError, match="context_slots"):
        model.surprise(obs, context_slots=2)
    with pytest.raises(ValueError, match="train_encoder"):
        make_model(train_encoder=False).surprise(obs)
