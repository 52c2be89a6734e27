"""CEM/MPPI planners, the MPC agent, the TorchRL bridge and the agent registry, on models with known optima."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from worldrl.agents import Agent, MPCAgent, available_agents, make_agent
from worldrl.agents.planners import CEMConfig, MPPIConfig, make_planner, planner_config, shift_plan
from worldrl.agents.planners.common import ActionBox, expand_batch, sample_distribution
from worldrl.agents.planners.mppi import mppi_weights
from worldrl.agents.protocol import ObservationHistory
from worldrl.agents.returns import discounted_return
from worldrl.models.base import Capabilities, WorldModel, WorldModelConfig
from worldrl.models.task_spec import TaskSpec

TARGET = (0.5, -0.3)
FAST = dict(horizon=2, num_samples=256, num_elites=32, iterations=8)


class PointMass(WorldModel):
    """state = position; ``imagine`` = position + action (+ optional noise); reward = -scale * |pos - target|^2.

    From position p with actions bounded by 1, the best first action is ``clip(target - p, -1, 1)`` (reach the
    target in one step, then stay). ``wall``: crossing ``pos[0] > wall`` terminates (probability 1).
    """

    capabilities = Capabilities(predicts_terminal=False, stochastic=False)

    def __init__(
        self, target=TARGET, scale: float = 1.0, noise: float = 0.0, wall: float | None = None, reward_fn=None
    ) -> None:
        target_t = torch.as_tensor(target, dtype=torch.float32)
        dim = target_t.numel()
        task = TaskSpec(
            gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32),
            gym.spaces.Box(-1.0, 1.0, (dim,), np.float32),
            task_id="PointMass-v0",
        )
        super().__init__(WorldModelConfig(), task)
        self.register_buffer("target", target_t)
        self.scale, self.noise, self.wall = scale, noise, wall
        self.reward_fn = reward_fn
        self.rollout_batches: list[int] = []

    def initial_state(self, batch_size: int) -> TensorDict:
        return TensorDict(pos=torch.zeros(batch_size, self.target.numel()), batch_size=[batch_size])

    def observe(self, obs, prev_action, is_first) -> TensorDict:
        return TensorDict(pos=obs.float(), batch_size=obs.shape[:2])

    def imagine(self, state, action, generator=None) -> TensorDict:
        pos = state["pos"] + action
        if self.noise and generator is not None:
            pos = pos + self.noise * torch.randn(pos.shape, generator=generator)
        reward = self.reward_fn(pos) if self.reward_fn else -self.scale * ((pos - self.target) ** 2).sum(-1)
        out = TensorDict(pos=pos, reward=reward, batch_size=state.batch_size)
        if self.wall is not None:
            out["terminal_logit"] = torch.where(pos[..., 0] > self.wall, 50.0, -50.0)
        return out

    def rollout(self, state, actions, generator=None):
        self.rollout_batches.append(actions.shape[0])
        return super().rollout(state, actions, generator)

    def latent(self, state) -> torch.Tensor:
        return state["pos"]

    def decode(self, state) -> torch.Tensor:
        return state["pos"]

    @property
    def latent_dim(self) -> int:
        return self.target.numel()


def start(*positions) -> TensorDict:
    pos = torch.tensor(positions, dtype=torch.float32).reshape(len(positions), -1)
    return TensorDict(pos=pos, batch_size=[len(positions)])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- pure pieces
def test_discounted_return_counts_the_terminating_reward_and_nothing_after():
    rewards = torch.tensor([[1.0, 2.0, 4.0]])
    continues = torch.tensor([[1.0, 0.0, 1.0]])  # the second transition terminates
    assert discounted_return(rewards, continues, 0.5).item() == pytest.approx(1.0 + 0.5 * 2.0)
    soft = discounted_return(rewards, torch.tensor([[0.5, 0.5, 0.5]]), 0.5, torch.tensor([8.0]))
    assert soft.item() == pytest.approx(1.0 + 0.5 * 0.5 * 2.0 + 0.25 * 0.25 * 4.0 + 0.125 * 0.125 * 8.0)


@pytest.mark.parametrize("scale", [1e6, 1e8])
def test_mppi_weights_are_finite_and_normalised_for_huge_costs(scale):
    returns = -scale * torch.tensor([[1.0, 2.0, 3.0, 50.0]], dtype=torch.float64)
    weights = mppi_weights(returns, temperature=0.5)
    assert torch.isfinite(weights).all() and weights.sum().item() == pytest.approx(1.0)
    assert weights[0, 0].item() == pytest.approx(1.0)  # the best sample takes all the weight at this scale


@settings(max_examples=50, deadline=None)
@given(
    returns=st.lists(st.floats(-1e8, 1e8, allow_nan=False), min_size=1, max_size=16),
    temperature=st.floats(1e-3, 1e3),
)
def test_mppi_weights_property_finite_normalised_and_monotone(returns, temperature):
    r = torch.tensor([returns], dtype=torch.float64)
    weights = mppi_weights(r, temperature)
    assert torch.isfinite(weights).all() and weights.sum().item() == pytest.approx(1.0)
    assert weights[0, r.argmax()].item() == weights.max().item()


def test_shift_plan_and_expand_batch():
    mean = torch.arange(6.0).reshape(1, 3, 2)
    assert shift_plan(mean).tolist() == [[[2.0, 3.0], [4.0, 5.0], [0.0, 0.0]]]
    expanded = expand_batch(start(1.0, 2.0), 3)
    assert expanded["pos"].squeeze(-1).tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_policy_prior_samples_come_from_the_generator():
    dist = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(4, 2), torch.ones(4, 2)), 1)
    assert torch.equal(sample_distribution(dist, gen(3)), sample_distribution(dist, gen(3)))
    with pytest.raises(TypeError, match="Normal-based"):
        sample_distribution(torch.distributions.Uniform(torch.zeros(2), torch.ones(2)), gen())


# ----------------------------------------------------------------------------- planners on known optima
@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_planner_finds_the_analytic_optimum(name):
    model = PointMass()
    result = make_planner(name, **FAST).plan(model, start((0.0, 0.0)), None, gen())
    assert result.action.shape == (1, 2) and result.mean.shape == (1, 2, 2) and result.std.shape == (1, 2, 2)
    assert torch.allclose(result.action[0], torch.tensor(TARGET), atol=0.05)
    assert result.expected_return.shape == (1,) and result.expected_return.item() > -0.1


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_optimum_outside_the_bounds_is_clipped_to_the_bound(name):
    model = PointMass(target=(3.0, -0.5))
    result = make_planner(name, **FAST).plan(model, start((0.0, 0.0)), None, gen())
    assert result.action[0, 0].item() == pytest.approx(1.0, abs=0.05)
    assert (result.mean.abs() <= 1.0 + 1e-6).all()


@pytest.mark.parametrize("name", ["cem", "mppi"])
@pytest.mark.parametrize("scale", [1e6, 1e8])
def test_huge_costs_keep_plans_finite_and_optimal(name, scale):
    model = PointMass(scale=scale)
    greedy = make_planner(name, **FAST).plan(model, start((0.0, 0.0)), None, gen())
    assert torch.isfinite(greedy.action).all() and torch.isfinite(greedy.std).all()
    assert torch.isfinite(greedy.expected_return).all() and (greedy.mean.abs() <= 1.0).all()
    # MPPI's temperature is in return units: scaled with the costs, it must find the same optimum as at scale 1.
    settings = dict(FAST, temperature=0.5 * scale) if name == "mppi" else FAST
    result = make_planner(name, **settings).plan(model, start((0.0, 0.0)), None, gen())
    assert torch.allclose(result.action[0], torch.tensor(TARGET), atol=0.05)


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_all_candidates_are_scored_in_one_rollout_call_per_iteration(name):
    model = PointMass()
    make_planner(name, **FAST).plan(model, start((0.0, 0.0), (1.0, 1.0), (-1.0, 0.0)), None, gen())
    assert model.rollout_batches == [3 * FAST["num_samples"]] * FAST["iterations"]


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_batched_environments_are_planned_independently(name):
    positions = ((0.0, 0.0), (1.0, 0.2), (-0.4, -0.8))
    result = make_planner(name, **FAST).plan(PointMass(), start(*positions), None, gen())
    for b, pos in enumerate(positions):
        optimum = (torch.tensor(TARGET) - torch.tensor(pos)).clamp(-1, 1)
        assert torch.allclose(result.action[b], optimum, atol=0.05), (b, result.action[b], optimum)
    # Identical states in one batch get independent samples (different noise per env), yet the same optimum.
    twin = make_planner(name, **FAST).plan(PointMass(), start((0.0, 0.0), (0.0, 0.0)), None, gen())
    assert not torch.equal(twin.mean[0], twin.mean[1])


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_same_generator_seed_gives_the_same_plan(name):
    model = PointMass(noise=0.05)
    a = make_planner(name, **FAST).plan(model, start((0.2, 0.1)), None, gen(7))
    b = make_planner(name, **FAST).plan(model, start((0.2, 0.1)), None, gen(7))
    c = make_planner(name, **FAST).plan(model, start((0.2, 0.1)), None, gen(8))
    assert torch.equal(a.mean, b.mean) and not torch.equal(a.mean, c.mean)


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_warm_start_shifts_the_previous_plan(name):
    # Sampling noise ~0: the refit can only return (the clamp of) the shifted previous plan.
    settings = dict(horizon=4, num_samples=8, num_elites=2, iterations=1, min_std=1e-7, max_std=1e-7)
    if name == "mppi":
        settings["noise_std"] = 1e-7
    prev = torch.tensor([[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]])
    result = make_planner(name, **settings).plan(PointMass(), start((0.0, 0.0)), prev, gen())
    expected = torch.tensor([[[0.3, 0.4], [0.5, 0.6], [0.7, 0.8], [0.0, 0.0]]])
    assert torch.allclose(result.mean, expected, atol=1e-5)
    assert torch.allclose(result.action, expected[:, 0], atol=1e-5)


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_returns_stop_at_predicted_termination(name):
    # Reward = position: running right pays, but crossing x > 1.5 ends the episode (its own reward still counts),
    # so the best plan stays just inside and jumps out on the last step: 1 + 1.5 * 3 + 2.5 = 8, against
    # 1 + 2 = 3 for running through the wall at once.
    model = PointMass(target=(0.0,), wall=1.5, reward_fn=lambda pos: pos[..., 0])
    settings = dict(horizon=5, num_samples=256, num_elites=16, iterations=8, discount=1.0)
    result = make_planner(name, **settings).plan(model, start((0.0,)), None, gen())
    path = result.mean[0, :, 0].cumsum(0)
    assert path[:-1].max().item() <= 1.5 + 1e-3 and path[-2].item() > 1.2
    assert 7.0 < result.expected_return.item() <= 8.0 + 1e-3


def test_terminal_value_function_is_bootstrapped():
    # No reward inside the horizon: only the value of the final state can say where to go.
    model = PointMass(reward_fn=lambda pos: torch.zeros(pos.shape[:-1]))
    target = torch.tensor(TARGET)
    planner = make_planner(
        "cem", horizon=1, num_samples=128, num_elites=16, iterations=6, value_fn=lambda z: -((z - target) ** 2).sum(-1)
    )
    result = planner.plan(model, start((0.0, 0.0)), None, gen())
    assert torch.allclose(result.action[0], target, atol=0.1)


def test_policy_prior_rollouts_join_the_candidates():
    # A confident prior that knows the optimum; one noisy iteration could not find it without the prior.
    optimum = torch.tensor(TARGET)
    prior = lambda z: torch.distributions.Independent(  # noqa: E731
        torch.distributions.Normal((optimum - z).clamp(-1, 1), torch.full_like(z, 1e-4)), 1
    )
    planner = make_planner(
        "mppi",
        horizon=3,
        num_samples=8,
        num_elites=1,
        iterations=1,
        num_prior_samples=4,
        temperature=0.01,
        policy_prior=prior,
    )
    result = planner.plan(PointMass(), start((0.0, 0.0)), None, gen())
    assert torch.allclose(result.action[0], optimum, atol=1e-2)


def test_discrete_actions_and_bad_settings_are_refused_clearly():
    with pytest.raises(ValueError, match="continuous Box action space"):
        make_planner("cem", action_space=gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="num_elites"):
        CEMConfig(num_samples=8, num_elites=9)
    with pytest.raises(ValueError, match="temperature"):
        MPPIConfig(temperature=0.0)
    with pytest.raises(ValueError, match="noise_std"):
        MPPIConfig(noise_std=5.0)
    with pytest.raises(ValueError, match="num_prior_samples"):
        make_planner("cem", num_samples=8, num_elites=2, policy_prior=lambda z: None)
    with pytest.raises(ValueError, match="unknown field.*'planner.temprature'"):
        planner_config("cem", temprature=1.0)
    with pytest.raises(ValueError, match="known planners"):
        make_planner("icem")
    with pytest.raises(ValueError, match="prev_mean must have shape"):
        make_planner("cem", **FAST).plan(PointMass(), start((0.0, 0.0)), torch.zeros(1, 5, 2), gen())


def test_action_box_handles_unbounded_dimensions():
    space = gym.spaces.Box(np.array([-2.0, -np.inf], np.float32), np.array([4.0, np.inf], np.float32))
    box = ActionBox.from_space(space, torch.device("cpu"))
    u = torch.tensor([[3.0, 3.0]])
    assert box.to_units(box.clamp(u)).tolist() == [[4.0, 3.0]]
    assert torch.allclose(box.to_normalised(box.to_units(u)), u)


# ----------------------------------------------------------------------------- the MPC agent
def test_mpc_agent_acts_on_single_and_batched_observations_within_bounds():
    agent = MPCAgent(PointMass(target=(5.0, -5.0)), planner="cem", **FAST)
    single = agent.act(np.zeros(2, dtype=np.float64))
    assert single.shape == (2,) and single.dtype == np.float32
    assert np.all(np.abs(single) <= 1.0) and single[0] > 0.9 and single[1] < -0.9
    agent.reset()
    batch = agent.act(np.zeros((4, 2)))
    assert batch.shape == (4, 2) and np.all(np.abs(batch) <= 1.0)
    with pytest.raises(ValueError, match="tracks 4 environments"):
        agent.act(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        agent.act(np.zeros((4, 3)))


def test_mpc_agent_closes_the_loop_on_the_true_dynamics():
    model = PointMass()
    agent = make_agent("mpc-mppi", model=model, **FAST)
    assert isinstance(agent, Agent)
    obs = np.array([[-1.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    for _ in range(4):
        obs = obs + agent.act(obs)
    assert np.allclose(obs, np.array(TARGET), atol=0.1)


def test_mpc_agent_reset_clears_warm_start_per_environment():
    agent = MPCAgent(PointMass(), planner="cem", **FAST)
    agent.act(np.zeros((3, 2)))
    assert agent.prev_mean is not None and agent.prev_mean.abs().sum() > 0
    agent.reset([1])
    assert torch.equal(agent.prev_mean[1], torch.zeros(2, 2)) and agent.prev_mean[0].abs().sum() > 0
    assert agent.history.fresh.tolist() == [False, True, False]
    agent.reset()
    assert agent.prev_mean is None and agent.history.num_envs is None


def test_mpc_agent_save_load_round_trip(tmp_path):
    agent = MPCAgent(PointMass(), planner="mppi", temperature=0.25, seed=3, **FAST)
    agent.save(tmp_path / "agent")
    other = MPCAgent(PointMass(), planner="cem")
    other.load(tmp_path / "agent")
    assert other.planner_name == "mppi" and other.planner.config == agent.planner.config
    obs = np.array([0.3, 0.0], dtype=np.float32)
    assert np.array_equal(agent.act(obs), other.act(obs))  # same settings and seed: same plan
    with pytest.raises(FileNotFoundError, match="agent.json"):
        other.load(tmp_path / "missing")


class _Recorder(PointMass):
    capabilities = Capabilities(predicts_terminal=False, stochastic=False, recurrent=True)

    def observe_last(self, obs, prev_action, is_first):
        self.seen = (obs.clone(), prev_action.clone(), is_first.clone())
        return super().observe_last(obs, prev_action, is_first)


def test_observation_window_keeps_previous_actions_and_episode_starts():
    model = _Recorder()
    history = ObservationHistory(model, context_length=3, device=torch.device("cpu"))
    history.encode(torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    history.record_action(torch.tensor([[0.5, 0.5], [-0.5, -0.5]]))
    history.encode(torch.tensor([[3.0, 3.0], [4.0, 4.0]]))
    obs, prev_action, is_first = model.seen
    assert obs[0, :, 0].tolist() == [1.0, 1.0, 3.0]
    assert prev_action[0, :, 0].tolist() == [0.0, 0.0, 0.5]
    assert is_first[0].tolist() == [True, True, False]
    history.reset([1])
    history.encode(torch.tensor([[5.0, 5.0], [6.0, 6.0]]))
    obs, prev_action, is_first = model.seen
    assert obs[1, :, 0].tolist() == [6.0, 6.0, 6.0] and is_first[1].all() and (prev_action[1] == 0).all()
    assert obs[0, :, 0].tolist() == [1.0, 3.0, 5.0] and is_first[0].tolist() == [True, False, False]


def test_recurrent_models_get_a_longer_default_window():
    assert MPCAgent(_Recorder(), planner="cem", **FAST).history.context_length == 16
    assert MPCAgent(PointMass(), planner="cem", **FAST).history.context_length == 1


# ----------------------------------------------------------------------------- registry
def test_agent_registry_lists_known_names_and_reserves_mbpo():
    assert {"mpc-cem", "mpc-mppi", "dreamer", "mbpo"} <= set(available_agents())
    with pytest.raises(ValueError, match="known agents: .*mpc-cem"):
        make_agent("ppo")
    assert make_agent("mpc-cem", model=PointMass()).planner_name == "cem"
    try:
        import worldrl.agents.mbpo  # noqa: F401  (registered by its own piece once it lands)
    except ModuleNotFoundError:
        with pytest.raises(ValueError, match="reserved"):
            make_agent("mbpo")


# ----------------------------------------------------------------------------- TorchRL bridge
def _point_env(target=TARGET):
    from torchrl.data import Bounded, Composite, Unbounded
    from torchrl.envs import EnvBase

    class PointEnv(EnvBase):
        """The PointMass dynamics as a batch-unlocked TorchRL env."""

        batch_locked = False

        def __init__(self):
            super().__init__(device="cpu", batch_size=[])
            self.target = torch.tensor(target, dtype=torch.float32)
            self.observation_spec = Composite(observation=Unbounded((len(target),)))
            self.action_spec = Bounded(-1.0, 1.0, (len(target),))
            self.reward_spec = Unbounded((1,))

        def _reset(self, td):
            shape = td.batch_size if td is not None else self.batch_size
            return TensorDict(observation=torch.zeros(*shape, len(target)), batch_size=shape)

        def _step(self, td):
            pos = td["observation"] + td["action"]
            done = torch.zeros(*td.batch_size, 1, dtype=torch.bool)
            reward = -((pos - self.target) ** 2).sum(-1, keepdim=True)
            return TensorDict(
                observation=pos, reward=reward, done=done, terminated=done.clone(), batch_size=td.batch_size
            )

        def _set_seed(self, seed):
            return seed

    return PointEnv()


def test_torchrl_planner_runs_on_a_torchrl_env():
    from torchrl.envs.utils import check_env_specs
    from torchrl.modules.planners import MPCPlannerBase

    from worldrl.agents.torchrl_planning import TorchRLPlanner

    env = _point_env()
    check_env_specs(env)
    planner = TorchRLPlanner(env, "cem", **FAST)
    assert isinstance(planner, MPCPlannerBase)
    trajectory = env.rollout(3, planner)
    assert trajectory["action"].shape == (3, 2) and (trajectory["action"].abs() <= 1.0).all()
    assert torch.allclose(trajectory["action"][0], torch.tensor(TARGET), atol=0.1)
    assert trajectory["next", "reward"][-1].item() > -0.02
    batch = planner(env.reset(TensorDict(batch_size=[4])))
    assert batch["action"].shape == (4, 2)


def test_torchrl_planner_model_mode_uses_the_world_model():
    from worldrl.agents.torchrl_planning import TorchRLPlanner

    env, model = _point_env(), PointMass()
    planner = TorchRLPlanner(
        env,
        "mppi",
        model=model,
        seed=1,
        state_fn=lambda td: TensorDict(pos=td["observation"], batch_size=td.batch_size),
        **FAST,
    )
    action = planner(env.reset(TensorDict(batch_size=[2])))["action"]
    assert torch.allclose(action, torch.tensor(TARGET).expand(2, 2), atol=0.1)
    assert model.rollout_batches == [2 * FAST["num_samples"]] * FAST["iterations"]
    with pytest.raises(ValueError, match="both model= and state_fn="):
        TorchRLPlanner(env, "cem", model=model)


@pytest.mark.parametrize("mode", ["env", "model"])
def test_torchrl_planner_on_the_world_model_torchrl_env(mode):
    import worldrl.envs.torchrl_env as torchrl_env
    from worldrl.agents.torchrl_planning import TorchRLPlanner

    model = PointMass()
    env = torchrl_env.WorldModelTorchRLEnv(model, start_states=np.zeros((4, 2), np.float32))
    extra = dict(model=model, state_fn=lambda td: td["wm_state"]) if mode == "model" else {}
    planner = TorchRLPlanner(env, "cem", **extra, **FAST)
    trajectory = env.rollout(2, planner)
    assert torch.allclose(trajectory["action"][0], torch.tensor(TARGET), atol=0.05)
    assert torch.allclose(trajectory["next", "observation"][0], torch.tensor(TARGET), atol=0.05)


def test_torchrl_planner_refuses_discrete_action_specs():
    from torchrl.data import Categorical

    from worldrl.agents.torchrl_planning import spec_to_box

    with pytest.raises(ValueError, match="continuous"):
        spec_to_box(Categorical(3))


# ----------------------------------------------------------------------------- a real family
def test_mpc_agent_plans_with_the_ensemble_family():
    import worldrl.models.ensemble as ensemble
    from worldrl.models import build_model

    task = TaskSpec(gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    torch.manual_seed(0)
    model = build_model("ensemble", {"num_members": 3, "num_elites": 2, "hidden_dims": (16,)}, task)
    assert isinstance(model, ensemble.EnsembleWorldModel)
    agent = make_agent("mpc-cem", model=model, horizon=4, num_samples=32, num_elites=4, iterations=2)
    actions = agent.act(np.zeros((2, 3), dtype=np.float32))
    assert actions.shape == (2, 2) and np.all(np.abs(actions) <= 1.0)
    assert torch.isfinite(agent.last_result.expected_return).all()


# --------------------------------------------------------------------------- known task reward / termination
@pytest.fixture
def point_mass_task(monkeypatch):
    """Known rules for PointMass-v0 that DISAGREE with the model's heads: reward -|next - (-0.4, 0.2)|^2,
    termination once x < -0.6 (the model's own reward pulls to TARGET and it never terminates)."""
    from worldrl.tasks import rules as tasks

    functions = tasks.TaskFunctions(
        "PointMass-v0",
        reward=lambda obs, a, nxt: -((nxt - torch.tensor([-0.4, 0.2])) ** 2).sum(-1),
        terminated=lambda obs, a, nxt: nxt[:, 0] < -0.6,
        obs_dim=2,
        action_dim=2,
    )
    monkeypatch.setitem(tasks._TASKS, "PointMass-v0", functions)
    return functions


def test_task_reward_scores_the_decoded_transitions(point_mass_task):
    planner = make_planner(
        "cem", horizon=3, num_samples=4, num_elites=2, discount=0.9, reward="task", termination="task"
    )
    model = PointMass()
    actions = torch.tensor([[[-0.5, 0.0], [-0.5, 0.0], [0.5, 0.0]], [[0.1, 0.1], [0.0, 0.0], [0.0, 0.0]]])
    got = planner.evaluate(model, start([0.0, 0.0]), actions[None], None)[0]
    ends = []
    for row, seq in enumerate(actions):  # the rule applied step by step by hand
        pos, rewards, continues = torch.zeros(2), [], []
        for a in seq:
            nxt = pos + a
            rewards.append(point_mass_task.reward(pos[None], a[None], nxt[None])[0])
            continues.append(0.0 if bool(point_mass_task.terminated(pos[None], a[None], nxt[None])[0]) else 1.0)
            pos = nxt
        expected = discounted_return(torch.stack(rewards)[None], torch.tensor([continues]), 0.9)[0]
        assert float(got[row]) == pytest.approx(float(expected), abs=1e-5)
        ends.append(continues)
    assert ends == [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]  # row 0 crosses x < -0.6 at its second step
    no_end = make_planner(
        "cem", horizon=3, num_samples=4, num_elites=2, discount=0.9, reward="task", termination="none"
    )
    unended = no_end.evaluate(model, start([0.0, 0.0]), actions[None], None)[0]
    assert float(unended[0]) < float(got[0]) and float(unended[1]) == pytest.approx(float(got[1]))


@pytest.mark.parametrize("source,goal", [("model", TARGET), ("task", (-0.4, 0.2))])
def test_planning_follows_the_chosen_reward(point_mass_task, source, goal):
    agent = MPCAgent(PointMass(), planner="cem", seed=0, reward=source, **FAST)
    np.testing.assert_allclose(agent.act(np.zeros(2, np.float32)), goal, atol=0.05)


def test_task_scoring_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="no.*registered for 'PointMass-v0'"):
        MPCAgent(PointMass(), planner="cem", reward="task")
    with pytest.raises(ValueError, match="CEMConfig.termination must be one of"):
        MPCAgent(PointMass(), planner="cem", termination="sometimes")


def test_real_task_rules_plug_into_a_learned_model():
    from _models import tiny_model

    model = tiny_model("InvertedPendulum-v5")
    agent = MPCAgent(
        model,
        planner="cem",
        seed=0,
        reward="task",
        termination="task",
        horizon=3,
        num_samples=16,
        num_elites=4,
        iterations=1,
    )
    action = agent.act(np.zeros(4, np.float32))
    assert action.shape == (1,) and model.task.action_space.contains(action)


def test_mpc_agent_keeps_the_fallback_unless_the_plan_clearly_beats_it(tmp_path):
    target = np.array(TARGET, dtype=np.float32)
    obs = np.stack([np.array([-1.0, 1.0], np.float32), target])  # far from the target, and on it
    hold = np.zeros((2, 2), np.float32)  # PointMass: action 0 stays where it is
    agent = MPCAgent(PointMass(), planner="cem", fallback_margin=0.05, **FAST)
    action = agent.act(obs, fallback=hold)
    assert agent.last_gain.shape == (2,)
    assert agent.last_gain[0] > 1.0  # reaching the target beats staying far from it by a lot
    assert np.abs(action[0]).min() > 0.5  # so the plan is executed there
    assert np.array_equal(action[1], hold[1])  # on the target no plan gains the margin: it holds
    agent.save(tmp_path / "agent")
    cautious = MPCAgent(PointMass(), planner="cem", fallback_margin=1e6, **FAST)
    assert np.array_equal(cautious.act(obs, fallback=hold), hold)
    other = MPCAgent(PointMass(), planner="cem")
    other.load(tmp_path / "agent")
    assert other.fallback_margin == 0.05
    with pytest.raises(ValueError, match="one action per environment"):
        agent.act(obs, fallback=np.zeros((3, 2), np.float32))
