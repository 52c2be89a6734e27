"""A latent-only family (no decoder, no reward head), as V-JEPA 2 is: ``obs_mode="latent"``, ``reward="goal"`` in
every env front end and in the planners, and a frozen encoder referenced by its checkpoint instead of copied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from safetensors.torch import load_file, save_file
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from worldrl.agents.planners import CEMConfig, CEMPlanner
from worldrl.envs import WorldModelTorchRLEnv
from worldrl.envs.world_model_env import WorldModelEnv
from worldrl.models import CheckpointError, TaskSpec, WorldModel, WorldModelConfig, load_pretrained, register_family
from worldrl.models.base import _REGISTRY, Capabilities
from worldrl.models.external import ExternalWeights


@dataclass
class LatentPointConfig(WorldModelConfig):
    encoder_path: str = ""
    """Directory holding the frozen encoder's ``encoder.safetensors`` (a stand-in for a pretrained ViT)."""
    latent_dim: int = 4
    """Width of the latent."""


class LatentPoint(WorldModel):
    """Frozen linear encoder z = W o; learned dynamics z' = z + B a. No decoder, no reward: latent only."""

    capabilities = Capabilities(can_decode=False, predicts_reward=False, predicts_terminal=False, stochastic=False)

    def __init__(self, config: LatentPointConfig, task: TaskSpec) -> None:
        super().__init__(config, task)
        self.encoder = torch.nn.Linear(task.obs_shape[0], config.latent_dim, bias=False)
        self.encoder.weight.data = load_file(str(Path(config.encoder_path) / "encoder.safetensors"))["weight"]
        self.encoder.requires_grad_(False)
        self.action_map = torch.nn.Linear(task.action_dim, config.latent_dim, bias=False)

    def external_weights(self) -> dict[str, ExternalWeights]:
        path = self.config.encoder_path
        return {"encoder": ExternalWeights("encoder.", source=path, local_dir=path)}

    def initial_state(self, batch_size):
        return TensorDict({"z": torch.zeros(batch_size, self.config.latent_dim)}, batch_size=[batch_size])

    def observe(self, obs, prev_action, is_first):
        return TensorDict({"z": self.encoder(obs)}, batch_size=obs.shape[:2])

    def imagine(self, state, action, generator=None):
        return TensorDict({"z": state["z"] + self.action_map(action)}, batch_size=state.batch_size)

    def latent(self, state):
        return state["z"]

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def embed(self, obs):
        return self.encoder(obs.float())

    def distance(self, a, b):
        return (a - b).abs().mean(-1)


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_family("test-latent-point", LatentPointConfig, LatentPoint)
    yield
    _REGISTRY.pop("test-latent-point", None)


def encoder_dir(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_file({"weight": torch.eye(4, 3) + 0.1 * torch.randn(4, 3)}, str(tmp / "encoder.safetensors"))
    return tmp


def make_model(tmp: Path) -> LatentPoint:
    task = TaskSpec(gym.spaces.Box(-5, 5, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32), task_id=None)
    model = LatentPoint(LatentPointConfig(encoder_path=str(encoder_dir(tmp / "encoder"))), task)
    with torch.no_grad():  # actions move the point in the first two observation dims
        model.action_map.weight.copy_(model.encoder.weight[:, :2] * 0.5)
    model.start_states = torch.zeros(4, 3)
    return model


GOAL = np.array([1.0, -1.0, 0.0], np.float32)


def test_capabilities_follow_what_the_class_implements() -> None:
    assert LatentPoint.capabilities.can_decode is False

    with pytest.raises(TypeError, match="does not implement decode"):

        class Liar(LatentPoint):  # noqa: F841
            capabilities = Capabilities(can_decode=True)

    class Derived(WorldModel):  # declares nothing: can_decode is derived (False: no decode)
        def initial_state(self, batch_size): ...
        def observe(self, obs, prev_action, is_first): ...
        def imagine(self, state, action, generator=None): ...

    class DerivedDecoding(Derived):
        def decode(self, state):
            return state["obs"]

    assert Derived.capabilities.can_decode is False and DerivedDecoding.capabilities.can_decode is True


def test_latent_env_rewards_reaching_the_goal(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    env = WorldModelEnv(model, goal=GOAL)
    assert env.sim.obs_mode == "latent" and env.sim.reward_source == "goal"
    check_env(env, skip_render_check=True)
    env.reset(seed=0, options={"observation": np.zeros(3, np.float32)})
    _, toward, *_ = env.step(np.array([1.0, -1.0], np.float32))  # one step of 0.5 toward the goal
    env.reset(options={"observation": np.zeros(3, np.float32)})
    _, away, *_ = env.step(np.array([-1.0, 1.0], np.float32))
    assert toward > away
    env.reset(options={"observation": np.zeros(3, np.float32), "goal": np.zeros(3, np.float32)})
    _, at_goal, *_ = env.step(np.zeros(2, np.float32))
    assert at_goal == pytest.approx(0.0, abs=1e-6)


def test_goal_reward_needs_a_goal_and_a_goal_needs_goal_rewards(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    with pytest.raises(ValueError, match="needs a goal"):
        WorldModelEnv(model).reset(seed=0)
    with pytest.raises(ValueError, match="cannot decode"):
        WorldModelEnv(model, obs_mode="observation")
    with pytest.raises(ValueError, match="shape"):
        WorldModelEnv(model, goal=GOAL).reset(options={"goal": np.zeros(5)})


def test_vector_and_torchrl_envs_carry_per_episode_goals(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    vec = gym.make_vec("WorldModel-v0", num_envs=2, model=model, reward="goal")
    goals = np.stack([GOAL, np.zeros(3, np.float32)])
    vec.reset(seed=0, options={"goal": goals, "observation": np.zeros((2, 3), np.float32)})
    _, reward, *_ = vec.step(np.zeros((2, 2), np.float32))
    assert reward[1] == pytest.approx(0.0, abs=1e-6) and reward[0] < -0.1

    env = WorldModelTorchRLEnv(model, goal=GOAL)
    check_env_specs(env)
    td = env.reset(TensorDict({"goal_observation": torch.as_tensor(goals)}, batch_size=[2]))
    assert td["goal_embedding"].shape == (2, 4)
    td["action"] = torch.zeros(2, 2)
    out = env.step(td)
    assert torch.allclose(out["next", "goal_embedding"], td["goal_embedding"])


def test_cem_plans_toward_a_goal_in_latent_space(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    planner = CEMPlanner(
        CEMConfig(horizon=3, num_samples=64, num_elites=8, iterations=3, reward="goal", termination="none"),
        action_space=model.task.action_space,
    )
    state = model.observe_last(torch.zeros(1, 1, 3), torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.bool))
    goal = model.embed(torch.as_tensor(GOAL)[None])
    plan = planner.plan(model, state, generator=torch.Generator().manual_seed(0), goal=goal)
    assert plan.action[0, 0] > 0.5 and plan.action[0, 1] < -0.5  # push +x, -y: toward (1, -1)


def test_checkpoints_reference_frozen_weights_by_hash(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    model.save_pretrained(str(tmp_path / "ckpt"))
    stored = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert "action_map.weight" in stored and not any(k.startswith("encoder.") for k in stored)
    reference = json.loads((tmp_path / "ckpt" / "external.json").read_text())["encoder"]
    assert reference["source"] == str(tmp_path / "encoder") and len(reference["sha256"]) == 64

    loaded = load_pretrained(tmp_path / "ckpt")
    assert torch.equal(loaded.encoder.weight, model.encoder.weight)
    assert torch.equal(loaded.action_map.weight, model.action_map.weight)

    save_file({"weight": torch.zeros(4, 3)}, str(tmp_path / "encoder" / "encoder.safetensors"))  # someone swapped it
    with pytest.raises(CheckpointError, match="not the weights it was trained with"):
        load_pretrained(tmp_path / "ckpt")


def test_fidelity_of_a_latent_only_family_is_its_latent_error(tmp_path: Path) -> None:
    """On data whose dynamics the model knows exactly, the latent error is ~0 and below both trivial baselines."""
    from worldrl.data import LeRobotDatasetReader, LeRobotDatasetWriter
    from worldrl.evaluation import evaluate_fidelity

    features = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": None},
        "action": {"dtype": "float32", "shape": [2], "names": None},
    }
    rng = np.random.default_rng(0)
    with LeRobotDatasetWriter.create(tmp_path / "walk", fps=10, features=features) as writer:
        for _ in range(4):
            obs = np.zeros(3, np.float32)
            for _ in range(15):
                action = rng.uniform(-1, 1, 2).astype(np.float32)
                writer.add_frame({"observation.state": obs, "action": action}, task="walk")
                obs = obs + np.array([0.5 * action[0], 0.5 * action[1], 0.0], np.float32)
            writer.save_episode()
    report = evaluate_fidelity(
        make_model(tmp_path), LeRobotDatasetReader(tmp_path / "walk"), episodes=[3], horizons=(1, 5), num_starts=None
    )
    assert report.is_latent and report.error_name == "latent error"
    for i in range(2):
        assert report.horizons[i].latent_error < 1e-5
        assert report.baselines["repeat_last"][i].latent_error > 0.05
        assert report.baselines["dataset_mean"][i].latent_error > 0.05
    assert "latent error" in report.to_markdown()
