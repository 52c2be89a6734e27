"""Robot-learning suites benchmark: PushT (LeRobot's gym-pusht), on the CPU.

Needs ``pip install worldrl[robot]`` (mujoco 3.x; see the README). DeepMind Control and ALOHA have their own scripts
(``scripts/benchmark_dmc.py``, ``scripts/benchmark_aloha.py``). Each command prints a table and rewrites its
part of the "Robot-learning suites" section of ``--doc`` (``<!-- robot:start -->`` ... ``<!-- robot:end -->``);
raw results go to ``<out>/<command>.json``.

    python scripts/benchmark_robot.py pusht --episodes 50      # state world model + MPC vs random and scripted
    python scripts/benchmark_robot.py pusht-pixels             # the vrnn from 96x96 frames + MPC from pixels
    python scripts/benchmark_robot.py pusht-read               # MPC from pixels: block reader + state model
    python scripts/benchmark_robot.py report                   # rebuild the doc section from saved results

The pixel model's fidelity (``<out>/pusht_pixels/fidelity.md``) comes from ``worldrl train --config
configs/vrnn_pusht_pixels.yaml`` and ``worldrl evaluate`` (see ``PIXEL_INTRO``); ``report`` adds it when present.

``pusht``: records ``--train-episodes`` PushT episodes of up to ``--steps`` (300, gym-pusht's and LeRobot's
episode length) in LeRobot's ``pusht_keypoints`` layout (agent xy as ``observation.state``, the block's 16 keypoint
coordinates as ``observation.environment_state``), half with an Ornstein-Uhlenbeck policy and half with the scripted
pusher (``worldrl.tasks.pusht_scripted``, 10% random actions); trains the probabilistic ensemble on both keys (a
keyed task) and its reward head on ``next.reward`` (coverage / 0.95, clipped); then runs ``--policies`` on the REAL
env from the same seeds: uniform random actions, the scripted pusher (known rules: it reads the block pose and the
goal) and MPC (``MPCAgent.act`` on the keyed observations, CEM in the model) in three variants, ``MPC_VARIANTS``:
the model's reward alone and with a value learned from the recorded returns (both learned only), and with a
known-goal keypoint distance at the horizon's end. It reports success rate (coverage > 95%), mean final and best
coverage, and the seconds per env step. ``pusht-fidelity``: the model's open-loop error on 20 held-out episodes.

``pusht-pixels``: draws the frames of ``--pixel-episodes`` episodes of that recording with gym-pusht's renderer
(``render_pixel_copy``), trains the vrnn of ``configs/vrnn_pusht_pixels.yaml`` on them for
``--pixel-model-steps`` updates, scores its open-loop fidelity on its validation episodes, then runs MPC from pixels
(the learned-only variants, ``PIXEL_POLICIES``) on the same real episodes. Each variant can run in its own process
(``--pixel-policies mpc`` beside ``--pixel-policies mpc-value``, same ``--out``): the results file is merged.

``pusht-read``: MPC from pixels through the state model. A ``FrameRegressor`` trained on the pixel copy's frames
and recorded keypoints (``--reader-steps``) reads the block's keypoints off each frame of the real pixel env; the
state ensemble (``pusht``'s data and settings) plans on them and the observed pusher position
(``--read-policies``, the ``MPC_VARIANTS``); results go to ``<out>/pusht_read.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

from worldrl.cli.train_agent import parse_key_values
from worldrl.evaluation.report import describe_machine, update_doc_section
from worldrl.io import atomic_write_bytes

SECTION = "robot"
PUSHT = "gym_pusht/PushT-v0"


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2).encode())


# --------------------------------------------------------------------------- PushT
SCRIPTED_SPEC = "worldrl.tasks.pusht_scripted:collect_policy"
MPC_VARIANTS = {
    "mpc": "learned only: the model's reward over the horizon",
    "mpc-value": "learned only: the model's reward + a value learned from the recorded returns at the horizon's end",
    "mpc-goal": "known goal: the model's reward + minus the predicted keypoints' distance to the goal pose "
    "(and the pusher's to the block) at the horizon's end",
}
VALUE_DISCOUNT = 0.95


def keyed_obs(obs: dict) -> dict[str, np.ndarray]:
    """gym-pusht's ``environment_state_agent_pos`` observation under LeRobot's dataset keys."""
    return {
        "observation.state": np.asarray(obs["agent_pos"], np.float32),
        "observation.environment_state": np.asarray(obs["environment_state"], np.float32),
    }


def stack_obs(observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}


class ScriptedActor:
    """The scripted pusher on keyed observations (agent xy, then the block's keypoints)."""

    def __init__(self) -> None:
        from worldrl.tasks.pusht_scripted import PushTScriptedPolicy

        self.policy = PushTScriptedPolicy()

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.policy(np.concatenate([obs["observation.state"], obs["observation.environment_state"]], axis=1))


def hold_actor(obs: dict[str, np.ndarray]) -> np.ndarray:
    """Hold still: every step's target is where the pusher already is. What a policy that never pushes keeps of
    the opening overlap (random actions knock the block away)."""
    return obs["observation.state"]


def pixel_obs(obs: dict) -> dict[str, np.ndarray]:
    """gym-pusht's ``pixels_agent_pos`` observation under LeRobot's ``lerobot/pusht`` keys."""
    return {
        "observation.image": np.asarray(obs["pixels"]),
        "observation.state": np.asarray(obs["agent_pos"], np.float32),
    }


def run_pusht_episodes(
    name: str, seeds: list[int], steps: int, actor: Callable | None = None, pixels: bool = False
) -> dict:
    """Episodes on the real PushT from ``seeds`` in lock-step: success rate, final and best coverage.

    ``actor`` maps the keyed observations of ALL episodes to their actions (finished ones are ignored), so a
    batched planner keeps one row per episode; None: uniform random actions. ``pixels``: the envs observe 96x96
    frames and the pusher's position (``pixel_obs``) instead of the block's keypoints; the episodes are the same.
    """
    from worldrl.data.suite_layouts import LAYOUTS
    from worldrl.tasks.real_envs import make_real_env

    kwargs = LAYOUTS["gym-pusht"].kwargs(pixels)
    envs = [make_real_env(PUSHT, max_episode_steps=steps, **kwargs) for _ in seeds]
    convert = pixel_obs if pixels else keyed_obs
    obs = [convert(env.reset(seed=s)[0]) for env, s in zip(envs, seeds)]
    rng = np.random.default_rng(seeds[0])
    done, success = np.zeros(len(seeds), bool), np.zeros(len(seeds), bool)
    final, best, length = np.zeros(len(seeds)), np.zeros(len(seeds)), np.zeros(len(seeds), int)
    t0 = time.time()
    for step in range(steps):
        live = np.flatnonzero(~done)
        if live.size == 0:
            break
        if actor is None:
            actions = rng.uniform(0, 512, (len(seeds), 2)).astype(np.float32)
        else:
            actions = np.asarray(actor(stack_obs(obs)), np.float32)
        for i in live:
            o, _, terminated, truncated, info = envs[i].step(actions[i])
            obs[i] = convert(o)
            final[i], best[i] = info["coverage"], max(best[i], info["coverage"])
            success[i] |= bool(info["is_success"])
            done[i], length[i] = terminated or truncated, step + 1
        if actor is not None and step % 50 == 49:
            print(f"  {name}: step {step + 1}/{steps}, {success.sum()} solved, {time.time() - t0:.0f}s", flush=True)
    for env in envs:
        env.close()
    return {
        "policy": name,
        "episodes": len(seeds),
        "success_rate": float(success.mean()),
        "final_coverage": float(final.mean()),
        "best_coverage": float(best.mean()),
        "median_steps_to_success": float(np.median(length[success])) if success.any() else None,
        "final_coverage_per_episode": final.tolist(),
    }


def best_checkpoint(run: Path) -> Path:
    """The checkpoint with the lowest validation loss (the trainer's ``best``), else the final one."""
    return run / "best" if (run / "best").exists() else run / "model"


def collect_pusht(data: Path, episodes: int, steps: int) -> None:
    """Half Ornstein-Uhlenbeck episodes (wide coverage of the arena), half the scripted pusher with 10% random
    actions (contacts, pushes and successes: OU alone rarely moves the block)."""
    from worldrl.data.collect import CollectConfig, collect

    for i, (policy, epsilon) in enumerate((("ou:theta=0.3,sigma=0.6", 0.0), (SCRIPTED_SPEC, 0.1))):
        config = CollectConfig(
            PUSHT,
            data,
            episodes=episodes // 2,
            policy=policy,
            seed=1000 + i,
            max_episode_steps=steps,
            epsilon=epsilon,
            resume=i > 0,
        )
        collect(config, progress=True)


def observed_states(model, obs: dict[str, np.ndarray], action: np.ndarray, episode: np.ndarray) -> TensorDict:
    """The model's state at every frame of recorded episodes (``obs`` per key ``[N, ...]``, ``action [N, A]``,
    ``episode [N]``, frames in episode order), observed as the recording runs: a history model's state holds the
    steps before each frame, as it does when it plans. Frames stay uint8 (the models convert them)."""
    episode = torch.as_tensor(np.asarray(episode, dtype=np.int64).reshape(-1))
    is_first = torch.cat([torch.ones(1, dtype=torch.bool), episode[1:] != episode[:-1]])[None]
    action = torch.as_tensor(np.asarray(action), dtype=torch.float32)
    prev_action = torch.cat([torch.zeros_like(action[:1]), action[:-1]])[None] * (~is_first)[..., None]
    tensors = {k: torch.as_tensor(v if v.dtype == np.uint8 else v.astype(np.float32))[None] for k, v in obs.items()}
    window = TensorDict(tensors, is_first.shape) if model.task.is_keyed else tensors[model.task.obs_key]
    with torch.no_grad():
        return model.observe(window, prev_action, is_first)[0]


def model_latents(model, reader) -> torch.Tensor:
    """The model's latent of every recorded frame (``observed_states``), one episode at a time, so a pixel
    recording is never decoded whole; rows in the dataset's frame order."""
    latents = []
    for entry in reader.episodes:
        lo, hi = reader.episode_range(int(entry["episode_index"]))
        rows = np.arange(lo, hi)
        obs = {
            key: reader.frames(key, rows)
            if reader.features[key]["dtype"] in ("image", "video")
            else reader.column(key)[lo:hi]
            for key in model.task.obs_keys
        }
        episode = np.full(hi - lo, int(entry["episode_index"]))
        states = observed_states(model, obs, reader.column("action")[lo:hi], episode)
        with torch.no_grad():
            latents.append(model.latent(states))
    return torch.cat(latents)


def returns_to_go(rewards: np.ndarray, episode: np.ndarray, discount: float) -> np.ndarray:
    """Discounted return from each frame to the end of its episode (frames in episode order)."""
    out, running = np.zeros(len(rewards)), 0.0
    for i in range(len(rewards) - 1, -1, -1):
        running = rewards[i] + (discount * running if i + 1 < len(rewards) and episode[i + 1] == episode[i] else 0.0)
        out[i] = running
    return out


def fit_mlp(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, steps: int, seed: int = 0) -> torch.nn.Module:
    """A frozen MLP (two SiLU layers of 256) regressing ``y [N, D]`` on ``x [N, F]`` with MSE over ``rows``
    (Adam 1e-3, batches of 512): the learned value and the cloned policy both read the model's latent this way."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 256),
        torch.nn.SiLU(),
        torch.nn.Linear(256, 256),
        torch.nn.SiLU(),
        torch.nn.Linear(256, y.shape[1]),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
    for _ in range(steps):
        batch = rows[torch.randint(len(rows), (512,))]
        loss = (net(x[batch]) - y[batch]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.requires_grad_(False)


def fit_value(model, data: Path, steps: int, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """A value ``latent -> discounted return`` regressed on the recorded episodes (Monte Carlo, learned only).

    Frames within ``VALUE_TAIL`` steps of a truncated (not terminated) episode's end are left out: their return
    is cut short. Reports R^2 on held-out episodes beside predicting the mean (R^2 = 0).
    """
    from worldrl.data import LeRobotDatasetReader

    reader = LeRobotDatasetReader(data)
    episode = reader.column("episode_index").astype(int).reshape(-1)
    reward = reader.column("next.reward").astype(np.float64).reshape(-1)
    success = reader.column("next.success").astype(bool).reshape(-1)
    target = returns_to_go(reward, episode, VALUE_DISCOUNT)
    last = np.r_[episode[1:] != episode[:-1], True]
    ends_in_success = {int(e) for e in episode[last & success]}
    left = np.zeros(len(episode), int)  # frames left to each frame's episode end
    for e in np.unique(episode):
        idx = np.flatnonzero(episode == e)
        left[idx] = idx[-1] - idx
    keep = np.array([e in ends_in_success for e in episode]) | (left >= 40)
    latents = model_latents(model, reader)
    held_out = episode % 10 == 0
    train, test = keep & ~held_out, keep & held_out
    if train.sum() < 2 or test.sum() < 2:
        raise SystemExit("fit_value: too few frames with a complete return (record more or longer episodes)")
    x, y = latents, torch.as_tensor(target, dtype=torch.float32)
    scale = float(y[train].std())
    net = fit_mlp(x, (y / scale)[:, None], torch.as_tensor(np.flatnonzero(train)), steps, seed)
    with torch.no_grad():
        pred = net(x[torch.as_tensor(test)]).squeeze(-1) * scale
    truth = y[torch.as_tensor(test)]
    r2 = 1.0 - float(((pred - truth) ** 2).mean() / ((truth - y[train].mean()) ** 2).mean())

    def value(latent: torch.Tensor) -> torch.Tensor:
        return net(latent).squeeze(-1) * scale

    stats = {"r2_held_out": r2, "r2_predict_train_mean": 0.0, "frames": int(train.sum()), "held_out": int(test.sum())}
    print(f"learned value: held-out R^2 {r2:.3f} (predicting the mean: 0)")
    return value, stats


def fit_bc_prior(model, data: Path, steps: int, seed: int = 0) -> tuple[Callable, dict]:
    """A behaviour-cloned policy ``latent -> Normal(action, std)`` (model units) regressed on the recorded actions
    (MSE in the action box's normalised units; std: the held-out residual RMSE per dimension). Planning draws part
    of its candidates from its rollouts in the model (``policy_prior``, as TD-MPC2 does with its actor), so CEM
    searches near what the recording's policy would do. Stats: held-out RMSE (arena pixels) beside predicting the
    mean action."""
    from worldrl.data import LeRobotDatasetReader

    reader = LeRobotDatasetReader(data)
    episode = reader.column("episode_index").astype(int).reshape(-1)
    low, high = (
        torch.as_tensor(b, dtype=torch.float32) for b in (model.task.action_space.low, model.task.action_space.high)
    )
    centre, half = (low + high) / 2, (high - low) / 2
    x = model_latents(model, reader)
    y = (torch.as_tensor(reader.column("action"), dtype=torch.float32) - centre) / half
    held_out = torch.as_tensor(episode % 10 == 0)
    net = fit_mlp(x, y, torch.nonzero(~held_out).squeeze(1), steps, seed)
    with torch.no_grad():
        residual = (net(x[held_out]) - y[held_out]) * half
    std = residual.pow(2).mean(0).sqrt()
    mean_rmse = float(((y[~held_out].mean(0) - y[held_out]) * half).pow(2).mean().sqrt())

    def prior(latent: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(centre + half * net(latent).clamp(-1, 1), std.expand(*latent.shape[:-1], -1))

    stats = {"rmse_held_out": float(residual.pow(2).mean().sqrt()), "rmse_predict_mean": mean_rmse}
    return prior, stats


def goal_distance(keypoints: torch.Tensor, pusher: torch.Tensor, approach_weight: float = 0.5) -> torch.Tensor:
    """KNOWN GOAL: the mean distance of the block keypoints ``[N, 8, 2]`` to their places at the task's goal pose,
    plus ``approach_weight`` x the pusher's (``[N, 2]``) distance to the block's centre (so plans head for the
    block), in arena pixels ``[N]``."""
    from worldrl.tasks.pusht_scripted import GOAL_POSE, KEYPOINTS_LOCAL, rotation

    goal = torch.as_tensor(KEYPOINTS_LOCAL @ rotation(GOAL_POSE[2]).T + GOAL_POSE[:2], dtype=torch.float32)
    block = (keypoints - goal.to(keypoints)).norm(dim=-1).mean(-1)
    return block + approach_weight * (pusher - keypoints.mean(1)).norm(dim=-1)


GOAL_PIXELS_PER_UNIT = 10.0
"""The known-goal values count ``goal_distance`` in units of this many arena pixels (a reward of 1 per step is
about a 95% coverage step)."""


def goal_value(model) -> Callable:
    """KNOWN-GOAL terminal value of the state model: minus ``goal_distance`` of the keypoints and pusher it
    predicts. It uses the task's goal pose, which a learned-only agent does not."""
    from worldrl.models.observations import unflatten_observation

    def value(latent: torch.Tensor) -> torch.Tensor:
        # the latent starts with the normalised observation (history features, if any, follow it)
        obs = unflatten_observation(model.obs_norm.denormalize(latent[..., : model.obs_dim]), model.task)
        keypoints = obs["observation.environment_state"].reshape(-1, 8, 2)
        return -goal_distance(keypoints, obs["observation.state"]) / GOAL_PIXELS_PER_UNIT

    return value


class PixelGoalValue:
    """KNOWN-GOAL terminal value from pixels: minus ``goal_distance`` of the block's keypoints read off each
    episode's current frame (``FrameRegressor``) plus the motion the vrnn's supervision heads predict since
    (``supervision_motion``), and of the pusher's real position plus its predicted motion (when the heads predict
    ``observation.state`` too). ``observe`` takes the episodes' observations before each plan; the planner's
    candidates of an episode follow each other (``expand_batch``)."""

    def __init__(self, model, reader) -> None:
        head = getattr(model, "supervision", None)
        if head is None or not head.motion or "observation.environment_state" not in head.keys:
            raise SystemExit(
                "pixel mpc-goal needs a vrnn whose supervision heads predict the block's motion: "
                "--pixel-model-option supervision_keys=[observation.environment_state] supervision_motion=true"
            )
        self.model, self.reader = model, reader
        self.block = self.pusher = torch.zeros(0)

    def observe(self, obs: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            self.block = self.reader(torch.as_tensor(obs["observation.image"])).reshape(-1, 8, 2)
        self.pusher = torch.as_tensor(obs["observation.state"], dtype=torch.float32)

    def __call__(self, latent: torch.Tensor) -> torch.Tensor:
        cfg = self.model.config
        n = latent.shape[0] // self.block.shape[0]
        # the latent starts with (h, z), what the supervision heads read (the reference embedding follows it)
        moved = self.model.supervision.predict(latent[..., : cfg.hidden_dim + cfg.latent_dim])
        block = self.block.repeat_interleave(n, 0) + moved["observation.environment_state"].reshape(-1, 8, 2)
        pusher = self.pusher.repeat_interleave(n, 0)
        if "observation.state" in moved:
            pusher = pusher + moved["observation.state"]
        return -goal_distance(block, pusher) / GOAL_PIXELS_PER_UNIT


class PlannerActor:
    """``MPCAgent`` (CEM in the model) acting on the keyed observations of all episodes at once (a model of one
    key, such as the pixel vrnn, gets that key's array)."""

    def __init__(
        self,
        model,
        args: argparse.Namespace,
        value_fn: Callable | None = None,
        context: int | None = None,
        hold_margin: float | None = None,
        policy_prior: Callable | None = None,
    ):
        from worldrl.agents.mpc import MPCAgent

        self.value_fn, self.hold_margin = value_fn, hold_margin
        self.moved = self.steps = 0
        self.key = None if model.task.is_keyed else model.task.obs_key
        self.agent = MPCAgent(
            model,
            "cem",
            horizon=args.horizon,
            num_samples=args.samples,
            num_elites=max(4, args.samples // 10),
            iterations=args.iterations,
            discount=VALUE_DISCOUNT,
            value_fn=value_fn,
            seed=0,
            context_length=context,
            fallback_margin=0.0 if hold_margin is None else hold_margin,
            policy_prior=policy_prior,
            **({} if policy_prior is None else {"num_prior_samples": args.samples // 4}),
            **({} if args.max_std is None else {"max_std": args.max_std}),
        )

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if hasattr(self.value_fn, "observe"):  # a value that reads the current frame (PixelGoalValue)
            self.value_fn.observe(obs)
        hold = None if self.hold_margin is None else obs["observation.state"]  # the pusher's target = where it is
        with torch.no_grad():
            action = self.agent.act(obs if self.key is None else obs[self.key], fallback=hold)
        if hold is not None:
            moved = self.agent.last_gain >= self.hold_margin
            self.moved, self.steps = self.moved + int(moved.sum()), self.steps + moved.numel()
        return action


class ReadStateActor:
    """Pixels through the state model: the block's 8 keypoints read off each episode's current frame by a
    ``FrameRegressor`` stand in for ``observation.environment_state`` (the pusher's position is observed, as in
    gym-pusht's pixel observation); ``actor`` (the state model's planner) acts on the result. ``record``: keep
    every step's frames and read keypoints (``marked_episode`` draws one episode's)."""

    def __init__(self, reader, actor: Callable, record: bool = False) -> None:
        self.reader, self.actor = reader, actor
        self.recorded: list[tuple[np.ndarray, np.ndarray]] | None = [] if record else None

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            keypoints = self.reader(torch.as_tensor(obs["observation.image"])).numpy()
        if self.recorded is not None:
            self.recorded.append((obs["observation.image"].copy(), keypoints))
        return self.actor({"observation.state": obs["observation.state"], "observation.environment_state": keypoints})

    def marked_episode(self, index: int, scale: int = 3) -> np.ndarray:
        """Episode ``index``'s recorded frames enlarged ``scale`` times, the keypoints read off each drawn as red
        squares (gym-pusht draws arena pixel (x, y) at image column x, row y, scaled from 512 to the frame)."""
        frames = []
        for images, keypoints in self.recorded or []:
            frame = images[index].repeat(scale, 0).repeat(scale, 1)
            size = frame.shape[0]
            for x, y in np.rint(keypoints[index].reshape(-1, 2) * size / 512).astype(int):
                frame[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = (255, 0, 0)
            frames.append(frame)
        return np.stack(frames)


def state_planner(name: str, model, data: Path, args: argparse.Namespace) -> tuple[PlannerActor, dict]:
    """The state model's planner of variant ``name`` (``MPC_VARIANTS``) and what was fitted for it."""
    if name == "mpc-value":
        value, stats = fit_value(model, data, args.value_steps)
        return PlannerActor(model, args, value), {"value_fit": stats}
    if name == "mpc-goal":
        return PlannerActor(model, args, goal_value(model)), {}
    return PlannerActor(model, args), {}


class PriorActor:
    """A policy ``latent -> action distribution`` acting alone: the mean action from the model's state after
    observing the last ``context`` frames (the same window MPC re-observes)."""

    def __init__(self, model, policy: Callable, context: int) -> None:
        from worldrl.agents.protocol import ObservationHistory

        self.model, self.policy, self.key = model, policy, model.task.obs_key
        self.history = ObservationHistory(model, context, model.device)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            state = self.history.encode(torch.as_tensor(obs[self.key]))
            action = self.policy(self.model.latent(state)).mean
        self.history.record_action(action)
        return action.numpy()


def train_pusht_model(out: Path, data: Path, args: argparse.Namespace):
    from worldrl.models.base import WorldModel
    from worldrl.training.run import train_from_config

    cfg = {
        "output_dir": str(out / "model_run"),
        "seed": 0,
        # history + 2 steps: the members' past steps, the current one and its successor (the target)
        "data": {"root": str(data), "window": args.history + 2, "val_fraction": 0.1},
        "model": {
            "family": "ensemble",
            "num_members": 5,
            "num_elites": 3,
            "hidden_dims": [200, 200, 200],
            "activation": "silu",
            "predict_delta": True,
            "predict_terminal": False,
            "history": args.history,
            "nll_beta": args.nll_beta,
        },
        "trainer": {
            "max_steps": args.model_steps,
            "batch_size": 256,
            "lr": 1e-3,
            "weight_decay": 1e-5,
            "warmup_steps": 50,
            "schedule": "cosine",
            "eval_every": 250,
            "early_stopping_patience": 3,
            "log_every": 100,
            "checkpoint_every": 100000,
            "val_batches": 8,
        },
    }
    if not (out / "model_run" / "model").exists():
        train_from_config(cfg)
    return WorldModel.from_pretrained(str(best_checkpoint(out / "model_run")), device="cpu")


def pusht(args: argparse.Namespace) -> dict:
    out = Path(args.out) / "pusht"
    data = out / "data"
    path = Path(args.out) / "pusht.json"
    summary = json.loads(path.read_text()) if path.exists() else {"results": {}, "seconds": {}}
    model = None
    if any(name.startswith("mpc") for name in args.policies):  # the baselines need neither data nor model
        t0 = time.time()
        if not (data / "meta" / "info.json").exists():
            collect_pusht(data, args.train_episodes, args.steps)
            summary["seconds"]["collect"] = time.time() - t0
        t0 = time.time()
        model = train_pusht_model(out, data, args)
        summary["seconds"].setdefault("train", time.time() - t0)
    seeds = list(range(100_000, 100_000 + args.episodes))
    for name in args.policies:
        t0 = time.time()
        fit: dict = {}
        if name == "random":
            actor = None
        elif name == "scripted":
            actor = ScriptedActor()
        elif name == "hold":
            actor = hold_actor
        elif name in MPC_VARIANTS:
            actor, fit = state_planner(name, model, data, args)
        else:
            raise SystemExit(f"unknown policy {name!r}; known: random, scripted, hold, {', '.join(MPC_VARIANTS)}")
        result = run_pusht_episodes(name, seeds, args.steps, actor)
        result.update(fit)
        file_result(summary, name, result, t0, args, model)
        write_json(path, summary)
    return summary


SETTINGS = ("episodes", "steps", "horizon", "samples", "iterations", "max_std", "context")


def file_result(summary: dict, name: str, result: dict, started: float, args: argparse.Namespace, model) -> None:
    """Put one policy's ``result`` (run since ``started``) into ``summary`` with its timing and settings, the
    run's arguments, machine and command line; print its line."""
    result["seconds_per_step"] = (time.time() - started) / args.steps
    result["settings"] = {k: getattr(args, k, None) for k in SETTINGS}
    summary["results"][name] = result
    summary["seconds"][name] = time.time() - started
    print(
        f"{name:9s} success {result['success_rate']:.2f}  final coverage {result['final_coverage']:.3f}  "
        f"best {result['best_coverage']:.3f}  ({summary['seconds'][name]:.0f}s)",
        flush=True,
    )
    if model is not None or "args" not in summary:  # a baseline run leaves the model run's settings in place
        summary.update({"args": vars(args), "machine": describe_machine()})
    if model is not None:
        summary["model_task"] = task_summary(model.task)
    command = "python scripts/benchmark_robot.py " + " ".join(sys.argv[1:])
    summary["commands"] = sorted({*summary.get("commands", []), command})


def pusht_fidelity(args: argparse.Namespace) -> dict:
    """Open-loop fidelity of the PushT model on freshly recorded held-out episodes, with the trivial baselines."""
    from worldrl.data import LeRobotDatasetReader
    from worldrl.data.collect import CollectConfig, collect
    from worldrl.evaluation.fidelity import evaluate_fidelity
    from worldrl.models.base import WorldModel

    out = Path(args.out) / "pusht"
    heldout = out / "heldout_mixed"
    if not (heldout / "meta" / "info.json").exists():  # as the training data: 10 OU, 10 scripted episodes
        for i, (policy, epsilon) in enumerate((("ou:theta=0.3,sigma=0.6", 0.0), (SCRIPTED_SPEC, 0.1))):
            config = CollectConfig(
                PUSHT,
                heldout,
                episodes=10,
                policy=policy,
                seed=777 + i,
                max_episode_steps=args.steps,
                epsilon=epsilon,
                resume=i > 0,
            )
            collect(config, progress=False)
    model = WorldModel.from_pretrained(str(best_checkpoint(out / "model_run")), device="cpu")
    reader = LeRobotDatasetReader(heldout)
    episodes = [int(e["episode_index"]) for e in reader.episodes]
    # context: the model's history and the current step (the baselines are scored on the same starts)
    context = getattr(model.config, "history", 0) + 1
    report = evaluate_fidelity(model, reader, episodes, horizons=(1, 5, 10), context=context, num_starts=256, seed=0)
    markdown = report.to_markdown() + "\n\n" + contact_fidelity(model)
    atomic_write_bytes(Path(args.out) / "pusht_fidelity.md", markdown.encode())
    print(markdown)
    return {"markdown": markdown}


def contact_fidelity(model, episodes: int = 5, steps: int = 150) -> str:
    """One-step block prediction on the frames where the block moves (the scripted pusher's contacts): what MPC
    needs from the model. Reports RMSE (pixels) beside repeat-last, and the cosine between predicted and real
    keypoint displacements."""
    from worldrl.tasks.real_envs import make_real_env

    env, actor = make_real_env(PUSHT, obs_type="environment_state_agent_pos", max_episode_steps=steps), ScriptedActor()
    before, after, actions, episode = [], [], [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=500 + e)
        actor.policy.reset()
        for _ in range(steps):
            keyed = keyed_obs(obs)
            action = actor(stack_obs([keyed]))[0]
            obs, _, terminated, truncated, _ = env.step(action)
            before.append(keyed), after.append(keyed_obs(obs)), actions.append(action), episode.append(e)
            if terminated or truncated:
                break
    n = len(actions)
    # each step observed with the steps before it in its episode, as when the model plans
    state = observed_states(model, stack_obs(before), np.stack(actions), np.array(episode))
    with torch.no_grad():
        predicted = model.decode(model.rollout(state, torch.as_tensor(np.stack(actions))[:, None], None))
    key = "observation.environment_state"
    now, real = stack_obs(before)[key], stack_obs(after)[key]
    pred = predicted[key][:, 0].numpy()
    moving = np.abs(real - now).max(1) > 2.0
    real_d, pred_d = (real - now)[moving], (pred - now)[moving]
    cosine = np.sum(real_d * pred_d, 1) / (np.linalg.norm(real_d, axis=1) * np.linalg.norm(pred_d, axis=1) + 1e-9)
    rmse = float(np.sqrt(((pred - real)[moving] ** 2).mean()))
    still = float(np.sqrt((real_d**2).mean()))
    return (
        f"One step on the {int(moving.sum())} of {n} frames of {episodes} scripted episodes where the block moves "
        "(> 2 px): block keypoint RMSE\n\n| model | repeat last | cosine(predicted, real displacement), median |\n"
        f"|---:|---:|---:|\n| {rmse:.2f} px | {still:.2f} px | {float(np.median(cosine)):.2f} |"
    )


# --------------------------------------------------------------------------- PushT from pixels
PIXEL_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "vrnn_pusht_pixels.yaml"
PIXEL_POLICIES = ("mpc", "mpc-hold", "mpc-bc", "bc", "mpc-value", "mpc-goal")
"""The MPC variants run from pixels (``mpc-hold``: ``mpc`` that holds still unless its plan is expected to gain
``--hold-margin`` over holding still; ``mpc-bc``: a quarter of the candidates from a behaviour-cloned policy's
rollouts, ``bc`` that policy alone; ``mpc-goal``: the block's pose read off the frame, ``PixelGoalValue``)."""
BLOCK_READER = "block_reader.safetensors"
"""The ``FrameRegressor`` of the block's keypoints that pixel ``mpc-goal`` reads, beside the pixel model's run."""
PIXEL_STRIP = "pusht_pixels_imagined_vs_real.png"
"""Real over imagined frames of a held-out start, beside ``--doc``."""


def draw_pusht(env, agent_xy: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """gym-pusht's own observation frame of a state: the pusher at ``agent_xy``, the block where its 8 recorded
    ``keypoints`` put it. ``env`` is the unwrapped env. gym-pusht's keypoints are the T's vertices rotated by the
    body's angle plus its position, so the least-squares pose of the keypoints is that position and angle."""
    from worldrl.tasks.pusht_scripted import pose_from_keypoints

    pose = pose_from_keypoints(keypoints)
    env.agent.position = (float(agent_xy[0]), float(agent_xy[1]))
    env.block.position = (float(pose[0]), float(pose[1]))
    env.block.angle = float(pose[2])
    for body in (env.agent, env.block):
        body.velocity, body.angular_velocity = (0.0, 0.0), 0.0
    # A step too short to move anything refreshes the shapes' cached world vertices (which the drawing reads)
    # and the contacts, which gym-pusht's frames draw as red dots where the pusher touches the block.
    env.space.step(1e-9)
    return env._render()  # the observation-sized frame; the public render() draws the larger visualisation


def render_pixel_copy(state_data: Path, pixel_data: Path, episodes: list[int]) -> None:
    """A pixel recording of recorded PushT state episodes in the layout of ``worldrl collect --env
    gym_pusht/PushT-v0 --pixels`` (LeRobot's ``lerobot/pusht``): every frame drawn by gym-pusht's renderer from the
    recorded pusher position and block keypoints (``draw_pusht``), with the same actions, rewards and flags.

    Why not record pixels directly: the scripted pusher, the only policy here that moves the block often, reads the
    block's keypoints, which a pixel observation does not hold. The copy is written to a temporary directory and
    renamed into place, so an interrupted copy never looks finished.
    """
    import shutil

    from tqdm import tqdm

    from worldrl.data import LeRobotDatasetReader
    from worldrl.data.suite_layouts import LAYOUTS, keyed_features
    from worldrl.data.writer import LeRobotDatasetWriter
    from worldrl.tasks.real_envs import make_real_env

    reader = LeRobotDatasetReader(state_data)
    layout = LAYOUTS["gym-pusht"]
    env = make_real_env(PUSHT, **layout.kwargs(True))
    env.reset(seed=0)
    step_keys = [k for k in reader.features if k == "action" or k.startswith("next.")]
    # the block's keypoints ride along as a column the pixel model never observes (LeRobot's lerobot/pusht has no
    # such column): a model may be trained to predict them (``supervision_keys``), and diagnostics read them
    features = {
        **keyed_features(layout, env.observation_space, True, "video"),
        "observation.environment_state": reader.features["observation.environment_state"],
        **{k: reader.features[k] for k in step_keys},
    }
    columns = {k: reader.column(k) for k in ("observation.state", "observation.environment_state", *step_keys)}
    partial = pixel_data.with_name(pixel_data.name + ".partial")
    writer = LeRobotDatasetWriter.create(partial, int(reader.fps), features, robot_type=PUSHT, overwrite=True)
    with writer:
        for episode in tqdm(episodes, desc="draw PushT frames", unit="ep"):
            lo, hi = reader.episode_range(episode)
            for i in range(lo, hi):
                frame = {k: columns[k][i] for k in step_keys}
                frame["observation.state"] = columns["observation.state"][i]
                frame["observation.environment_state"] = columns["observation.environment_state"][i]
                frame["observation.image"] = draw_pusht(
                    env.unwrapped, columns["observation.state"][i], columns["observation.environment_state"][i]
                )
                writer.add_frame(frame, PUSHT)
            writer.save_episode()
    env.close()
    if pixel_data.exists():
        shutil.rmtree(pixel_data)
    partial.rename(pixel_data)


def pixel_episodes(total: int, count: int, source: str = "mixed") -> list[int]:
    """``count`` episodes of a ``collect_pusht`` recording of ``total``: with ``source`` "mixed" half from its OU
    half and half from its scripted half (the same mix as the state model's data), with "scripted" the first
    ``count`` of its scripted half (where the block is pushed several times as often)."""
    half = total // 2
    most = half if source == "scripted" else total
    if not 2 <= count <= most:
        raise SystemExit(f"--pixel-episodes must be between 2 and {most} ({source} recorded episodes), got {count}")
    if source == "scripted":
        return list(range(half, half + count))
    return [*range(count // 2), *range(half, half + count - count // 2)]


def train_pixel_model(out: Path, data: Path, args: argparse.Namespace):
    """The vrnn of ``configs/vrnn_pusht_pixels.yaml`` trained on ``data`` for ``--pixel-model-steps`` updates."""
    from worldrl.models.base import WorldModel
    from worldrl.training.run import load_config, train_from_config

    cfg = load_config(PIXEL_CONFIG)
    cfg["output_dir"] = str(out / "pixel_model_run")
    cfg["data"] = {key: value for key, value in cfg["data"].items() if key != "collect"}
    # every episode's decoded frames stay in memory (a window of a dropped one decodes its whole segment again)
    megabytes = 1.25 * args.pixel_episodes * args.steps * 96 * 96 * 3 / 2**20
    cfg["data"].update(root=str(data), video_cache_mb=int(max(256, megabytes)))
    cfg["trainer"].update(max_steps=args.pixel_model_steps, checkpoint_every=500, progress=True)
    cfg["model"].update(parse_key_values(args.pixel_model_option, "--pixel-model-option"))
    if not (out / "pixel_model_run" / "model").exists():
        train_from_config(cfg)
    return WorldModel.from_pretrained(str(out / "pixel_model_run" / "model"), device="cpu")


def fit_block_reader(out: Path, data: Path, steps: int) -> tuple[torch.nn.Module, dict]:
    """The block's 8 keypoints read off a frame (``FrameRegressor``), trained on the pixel copy's frames and its
    ``observation.environment_state`` column for ``steps`` updates (every 10th episode held out); kept in ``out``
    and reloaded by later runs. Stats: held-out RMSE per coordinate (arena pixels) beside predicting the mean."""
    from worldrl.data import LeRobotDatasetReader
    from worldrl.models.frame_regressor import FrameRegressor, fit_frame_regressor

    path, stats_path = out / BLOCK_READER, out / "block_reader_fit.json"
    if path.exists() and stats_path.exists():
        return FrameRegressor.load(path), json.loads(stats_path.read_text())
    reader = LeRobotDatasetReader(data, video_cache_mb=64)
    frames = np.concatenate(
        [
            reader.frames("observation.image", np.arange(*reader.episode_range(int(e["episode_index"]))))
            for e in reader.episodes
        ]
    )
    episode = reader.column("episode_index").astype(int).reshape(-1)
    targets = reader.column("observation.environment_state").astype(np.float32)
    model, stats = fit_frame_regressor(frames, targets, episode % 10 == 0, steps)
    print(
        f"block reader: held-out RMSE {stats['rmse_held_out']:.2f} px per coordinate "
        f"(predicting the mean: {stats['rmse_predict_train_mean']:.2f})"
    )
    model.save(path)
    write_json(stats_path, stats)
    return model, stats


def pixel_fidelity(model, data: Path, strip: Path) -> str:
    """Open-loop fidelity on the run's validation episodes (the trainer's split), trivial baselines beside; real
    and imagined frames of the example that moves most go to ``strip`` (PNG)."""
    from worldrl.data import LeRobotDatasetReader, split_episodes
    from worldrl.evaluation.fidelity import evaluate_fidelity
    from worldrl.evaluation.plots import plot_frame_strip

    reader = LeRobotDatasetReader(data, video_cache_mb=1024)
    _, val = split_episodes([int(e["episode_index"]) for e in reader.episodes], 0.1, 0)
    report = evaluate_fidelity(model, reader, val, horizons=(1, 5, 10), context=1, num_starts=128, seed=0)
    if report.examples is not None:
        plot_frame_strip(report.examples, strip, steps=(0, 1, 2, 5, 10), title="PushT vrnn from pixels, held out")
    return report.to_markdown()


def pixel_copy(args: argparse.Namespace, summary: dict) -> tuple[Path, Path]:
    """The state recording and its pixel copy under ``<out>/pusht``, recorded and drawn where missing."""
    out = Path(args.out) / "pusht"
    data, pixel_data = out / "data", out / "pixel_data"
    if not (data / "meta" / "info.json").exists():
        collect_pusht(data, args.train_episodes, args.steps)
    if not (pixel_data / "meta" / "info.json").exists():
        t0 = time.time()
        episodes = pixel_episodes(args.train_episodes, args.pixel_episodes, args.pixel_source)
        render_pixel_copy(data, pixel_data, episodes)
        summary["seconds"]["draw"] = time.time() - t0
    return data, pixel_data


def pusht_pixels(args: argparse.Namespace) -> dict:
    """PushT from pixels: the vrnn trained on frames drawn from the state recording, MPC in it on the real env."""
    out = Path(args.out) / "pusht"
    path = Path(args.out) / "pusht_pixels.json"
    summary = json.loads(path.read_text()) if path.exists() else {"results": {}, "seconds": {}}
    _, pixel_data = pixel_copy(args, summary)
    t0 = time.time()
    model = train_pixel_model(out, pixel_data, args)
    summary["seconds"].setdefault("train", time.time() - t0)
    strip = Path(args.doc).parent / PIXEL_STRIP
    if "fidelity" not in summary or not strip.exists():
        summary["fidelity"] = pixel_fidelity(model, pixel_data, strip)
        print(summary["fidelity"])
        save_merged(path, summary)
    seeds = list(range(100_000, 100_000 + args.episodes))
    for name in args.pixel_policies:
        t0 = time.time()
        if name not in PIXEL_POLICIES:
            raise SystemExit(f"unknown pixel policy {name!r}; known: {', '.join(PIXEL_POLICIES)}")
        value, fit = None, {}
        if name == "mpc-value":
            value, stats = fit_value(model, pixel_data, args.value_steps)
            fit = {"value_fit": stats}
        elif name == "mpc-goal":
            reader, stats = fit_block_reader(out, pixel_data, args.reader_steps)
            value, fit = PixelGoalValue(model, reader), {"block_reader_fit": stats}
        prior = None
        if name in ("mpc-bc", "bc"):
            prior, stats = fit_bc_prior(model, pixel_data, args.value_steps)
            fit = {"bc_fit": stats}
            print(
                f"behaviour cloning: held-out action RMSE {stats['rmse_held_out']:.1f} px (mean action: {stats['rmse_predict_mean']:.1f})"
            )
        margin = args.hold_margin if name == "mpc-hold" else None
        if name == "bc":
            actor = PriorActor(model, prior, args.context)
        else:
            actor = PlannerActor(model, args, value, context=args.context, hold_margin=margin, policy_prior=prior)
        result = run_pusht_episodes(f"pixels {name}", seeds, args.steps, actor, pixels=True)
        result.update(fit)
        if margin is not None:
            result.update(hold_margin=margin, moved_fraction=actor.moved / max(1, actor.steps))
            print(f"  planned moves kept on {result['moved_fraction']:.1%} of env steps (the rest held still)")
        file_result(summary, name, result, t0, args, model)
        save_merged(path, summary)
    return summary


READ_RESULTS = "pusht_read.json"


def pusht_read(args: argparse.Namespace) -> dict:
    """PushT from pixels through the state model: a ``FrameRegressor`` trained on the pixel copy reads the block's
    keypoints off each frame, and the state ensemble (``pusht``'s settings) plans on them (``ReadStateActor``)."""
    out = Path(args.out) / "pusht"
    path = Path(args.out) / READ_RESULTS
    summary = json.loads(path.read_text()) if path.exists() else {"results": {}, "seconds": {}}
    data, pixel_data = pixel_copy(args, summary)
    reader, summary["block_reader_fit"] = fit_block_reader(out, pixel_data, args.reader_steps)
    t0 = time.time()
    model = train_pusht_model(out, data, args)
    summary["seconds"].setdefault("train", time.time() - t0)
    seeds = list(range(100_000, 100_000 + args.episodes))
    for name in args.read_policies:
        if name not in MPC_VARIANTS:
            raise SystemExit(f"unknown pusht-read policy {name!r}; known: {', '.join(MPC_VARIANTS)}")
        t0 = time.time()
        planner, fit = state_planner(name, model, data, args)
        actor = ReadStateActor(reader, planner, record=True)
        result = run_pusht_episodes(f"read {name}", seeds, args.steps, actor, pixels=True)
        result.update(fit, video=write_median_episode(actor, result, Path(args.out) / f"pusht_read_{name}.mp4"))
        file_result(summary, name, result, t0, args, model)
        save_merged(path, summary)
    return summary


def write_median_episode(actor: ReadStateActor, result: dict, path: Path) -> str:
    """The episode of median final coverage as an MP4 at ``path`` (10 fps, the read keypoints marked); returns
    its file name. Written beside and renamed into place, so a failed encode leaves no partial video."""
    from worldrl.data.video import encode_video

    final = np.asarray(result["final_coverage_per_episode"])
    index = int(np.argsort(final)[len(final) // 2])
    partial = path.with_name(path.stem + ".partial.mp4")
    encode_video(actor.marked_episode(index), partial, fps=10)
    partial.replace(path)
    print(f"  episode {index} (final coverage {final[index]:.3f}, the median) -> {path}")
    return path.name


def task_summary(task) -> dict:
    """The model's task without its spaces' per-element bounds (a 96x96 frame's would take 300 KB of JSON)."""
    spaces = {key: list(task.key_space(key).shape) for key in task.obs_keys}
    return {"task_id": task.task_id, "fps": task.fps, "observation_shapes": spaces, "action_dim": task.action_dim}


def save_merged(path: Path, summary: dict) -> None:
    """Write ``summary`` over the saved one, keeping the results another process saved meanwhile (each variant
    may run in its own process, on its own core)."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    for key in ("results", "seconds"):
        summary[key] = {**saved.get(key, {}), **summary.get(key, {})}
    summary["commands"] = sorted({*saved.get("commands", []), *summary.get("commands", [])})
    write_json(path, summary)


# --------------------------------------------------------------------------- report
POLICY_ROWS = {
    "random": ("random (uniform actions)", "-"),
    "scripted": ("scripted pusher (`worldrl.tasks.pusht_scripted`)", "known rules (block pose, goal)"),
    "hold": ("hold still (target = the pusher's position)", "-"),
    "mpc": ("**MPC**: model reward", "learned only"),
    "mpc-value": ("**MPC**: model reward + learned value", "learned only"),
    "mpc-goal": ("**MPC**: model reward + goal-distance value", "known goal"),
    "mpc-hold": ("**MPC**: model reward, holds still unless the plan's expected gain is clear", "learned only"),
    "mpc-bc": ("**MPC**: model reward, candidates from a behaviour-cloned prior", "learned only (imitation)"),
    "bc": ("**MPC**: none, the behaviour-cloned prior alone", "learned only (imitation)"),
}


def pusht_table(summary: dict) -> str:
    a, r = summary["args"], summary["results"]
    lines = [
        f"**PushT** (`{PUSHT}`, state world model): {a['train_episodes']} recorded episodes of up to {a['steps']} "
        "steps (half OU noise, half the scripted pusher with 10% random actions), ensemble trained up to "
        f"{a['model_steps']} steps (early stopping; planning uses the checkpoint of lowest validation loss) on the "
        "keyed observation `observation.state` + `observation.environment_state`, each member reading the "
        f"{a.get('history', 0)} previous step(s) too (PushT's observation hides the pusher's velocity), trained "
        f"with beta-NLL (beta {a.get('nll_beta', 0.0)}). Each policy runs the same "
        f"real episodes (seeds 100000...) of {a['steps']} steps (gym-pusht's own limit, and LeRobot's PushT "
        "evaluation length, is 300); success "
        "= coverage > 95% (the episode then ends). MPC = CEM in the model (`MPCAgent.act` on the keyed "
        "observations; settings per row), discount 0.95.",
        "",
        *TABLE_HEAD,
    ]
    lines += [policy_row(name, label, kind, r[name]) for name, (label, kind) in POLICY_ROWS.items() if name in r]
    return "\n".join(lines + fit_notes(r))


TABLE_HEAD = [
    "| policy | uses | episodes | success rate | final coverage | best coverage | median steps to success "
    "| CEM (horizon x samples x iterations) | s / env step (all episodes) |",
    "|---|---|---:|---:|---:|---:|---:|---|---:|",
]


def policy_row(name: str, label: str, kind: str, x: dict) -> str:
    st = x.get("settings", {})
    cem = f"{st['horizon']} x {st['samples']} x {st['iterations']}" if name.startswith("mpc") else "-"
    if name.startswith("mpc") and st.get("max_std") is not None:
        cem += f", std {st['max_std']}"
    med = x.get("median_steps_to_success")
    return (
        f"| {label} | {kind} | {x['episodes']} | {x['success_rate']:.2f} | {x['final_coverage']:.3f} | "
        f"{x['best_coverage']:.3f} | {'-' if med is None else f'{med:.0f}'} | {cem} | "
        f"{x.get('seconds_per_step', float('nan')):.2f} |"
    )


def fit_notes(results: dict) -> list[str]:
    """What the rows' extra parts were fitted or set to: the learned value, the block reader, the hold margin."""
    lines = []
    fit = results.get("mpc-value", {}).get("value_fit")
    if fit:
        lines += [
            "",
            f"The learned value (MLP on the model's latent, discounted return-to-go with discount {VALUE_DISCOUNT} "
            f"regressed on {fit['frames']} recorded frames): held-out R^2 {fit['r2_held_out']:.3f} on "
            f"{fit['held_out']} frames of every 10th episode (predicting the training mean: 0).",
        ]
    reader = next((r["block_reader_fit"] for r in results.values() if "block_reader_fit" in r), None)
    if reader:
        lines += [
            "",
            f"The block reader (`FrameRegressor`, 96x96 frame -> the 8 keypoints, trained on {reader['train']} "
            f"recorded frames): held-out RMSE {reader['rmse_held_out']:.2f} arena pixels per coordinate on "
            f"{reader['held_out']} frames of every 10th episode (predicting the training mean: "
            f"{reader['rmse_predict_train_mean']:.2f}).",
        ]
    hold = results.get("mpc-hold", {})
    if "hold_margin" in hold:
        lines += [
            "",
            f"`mpc-hold` executes its plan only where the model expects it to return {hold['hold_margin']} more than "
            "holding still over the horizon (`MPCAgent.act(obs, fallback=...)`), else the pusher holds still: it "
            f"moved on {hold['moved_fraction']:.1%} of the env steps.",
        ]
    return lines


def overrides(a: dict) -> str:
    """`` (with k=v, ...)`` for the model settings ``--pixel-model-option`` changed, else empty."""
    items = a.get("pixel_model_option") or []
    return f" (with {', '.join(f'`{item}`' for item in items)})" if items else ""


def paired_coverage(result: dict, baseline: dict) -> str:
    """Final coverage of ``result`` minus ``baseline``'s, paired per episode (the same seeds): mean +- 95%."""
    x = np.asarray(result["final_coverage_per_episode"]) - np.asarray(baseline["final_coverage_per_episode"])
    return f"{x.mean():+.3f} +- {1.96 * x.std(ddof=1) / np.sqrt(len(x)):.3f}"


def paired_lines(results: dict, names: tuple[str, ...], baselines: dict | None) -> list[str]:
    """A paragraph of each row's final coverage paired per episode with holding still and random actions."""
    compare = [b for b in ("hold", "random") if b in (baselines or {})]
    pairs = [
        f"{name} - {b} {paired_coverage(results[name], baselines[b])}"  # type: ignore[index]
        for name in names
        if name in results
        for b in compare
    ]
    return ["", "Final coverage paired per episode (95%): " + "; ".join(pairs) + "."] if pairs else []


def read_mpc_table(summary: dict, baselines: dict | None = None, media: str = ".") -> str:
    """The ``pusht-read`` rows: MPC in the state model on the keypoints read off the frames; ``media``: where
    the run's videos are, relative to the doc."""
    a, r, fit = summary["args"], summary["results"], summary["block_reader_fit"]
    source = "scripted" if a.get("pixel_source") == "scripted" else "half OU, half scripted"
    lines = [
        "**PushT MPC from pixels through a block reader** (`python scripts/benchmark_robot.py pusht-read`): the "
        "policy observes what gym-pusht's pixel observation holds, the 96x96 frame and the pusher's position. A conv "
        f"regressor (`FrameRegressor`: spatial-softmax feature points) trained for {a['reader_steps']} updates on "
        f"{fit['train']} frames of the pixel copy ({a['pixel_episodes']} recorded episodes, {source}) and their "
        "recorded keypoints reads the block's 8 keypoints off each current frame (held-out RMSE "
        f"{fit['rmse_held_out']:.2f} arena pixels per coordinate on {fit['held_out']} frames of every 10th episode; "
        f"predicting the mean: {fit['rmse_predict_train_mean']:.2f}); a state ensemble trained as the first table's "
        "(`pusht`'s recording and settings) plans on them and never sees the true keypoints. Same "
        f"real episodes as the tables above. Machine: {summary.get('machine', 'not recorded')}.",
        "",
        *TABLE_HEAD,
    ]
    lines += [
        policy_row(
            name,
            f"**MPC from pixels, read block**: {label.split(': ', 1)[1]}",
            f"{kind}; reader fit to recorded keypoints",
            r[name],
        )
        for name, (label, kind) in POLICY_ROWS.items()
        if name in MPC_VARIANTS and name in r
    ]
    lines += paired_lines(r, tuple(MPC_VARIANTS), baselines) + fit_notes(r)
    videos = [f"[{name}]({media}/{r[name]['video']})" for name in MPC_VARIANTS if r.get(name, {}).get("video")]
    if videos:
        lines += [
            "",
            "The episode of median final coverage of each row, the read keypoints in red: " + ", ".join(videos) + ".",
        ]
    commands = ", ".join(f"`{c}`" for c in summary.get("commands", []))
    return "\n".join(lines + ["", f"Commands run: {commands}."])


def pixel_mpc_table(summary: dict, baselines: dict | None = None) -> str:
    """The pixel MPC rows; ``baselines`` (the state run's results on the same seeds) adds their paired
    differences against holding still and random actions."""
    a, r = summary["args"], summary["results"]
    ou = 0 if a.get("pixel_source") == "scripted" else a["pixel_episodes"] // 2
    lines = [
        "**PushT MPC from pixels** (`python scripts/benchmark_robot.py pusht-pixels`): the vrnn with the model "
        f"settings of `configs/vrnn_pusht_pixels.yaml`{overrides(a)}, trained for {a['pixel_model_steps']} updates on "
        f"{a['pixel_episodes']} episodes of the state recording above ({ou} OU, {a['pixel_episodes'] - ou} scripted "
        "with 10% random actions) whose 96x96 `observation.image` frames were drawn by gym-pusht's own renderer from "
        "the recorded pusher position and block keypoints (`render_pixel_copy`: the scripted pusher reads the "
        "keypoints, so it cannot drive a pixel recording). MPC plans in the vrnn's latent state after re-observing "
        f"the last {a['context']} frames (the image only, no keypoints), on the same real episodes as the table "
        f"above (its random, scripted and hold-still rows apply)"
        + (
            "; the known-goal row reads the block's pose off the current frame with a conv regressor trained on the "
            "recording's keypoints (`FrameRegressor`) and adds the block's motion the vrnn predicts"
            if "mpc-goal" in r
            else ""
        )
        + f". Machine: {summary.get('machine', 'not recorded')}.",
        "",
        *TABLE_HEAD,
    ]
    lines += [
        policy_row(
            name, f"**MPC from pixels**: {POLICY_ROWS[name][0].split(': ', 1)[1]}", POLICY_ROWS[name][1], r[name]
        )
        for name in PIXEL_POLICIES
        if name in r
    ]
    lines += paired_lines(r, PIXEL_POLICIES, baselines) + fit_notes(r)
    if summary.get("commands"):
        lines += [
            "",
            "Commands run (each variant in its own process): " + ", ".join(f"`{c}`" for c in summary["commands"]),
        ]
    if summary.get("fidelity"):
        lines += ["", f"![PushT vrnn from pixels: real (top) and imagined (bottom) frames]({PIXEL_STRIP})"]
        lines += [
            "",
            "Open-loop fidelity of that pixel model on its validation episodes (the trainer's split):",
            "",
            summary["fidelity"],
        ]
    return "\n".join(lines)


PIXEL_INTRO = (
    "**PushT from pixels** (96x96 `observation.image`, LeRobot's `lerobot/pusht` layout): the vrnn of "
    "`configs/vrnn_pusht_pixels.yaml` (32x32 decoder that reads the encoded last real frame and is blended at 96x96 "
    "with it, open-loop loss) trained on 40 recorded OU episodes of 300 steps for 1500 updates (the final weights, "
    "which also had the lowest validation loss; the run was stopped once and resumed from its step-500 checkpoint), "
    "open-loop on the 4 held-out episodes with repeat-last and the mean frame beside. "
    "Commands: `worldrl train --config configs/vrnn_pusht_pixels.yaml` (records the data first), then `worldrl "
    "evaluate --model runs/vrnn_pusht_pixels/model --dataset outputs/datasets/pusht_pixels --horizons 1 5 10 "
    "--episodes val --num-starts 128 --out outputs/benchmark_robot/pusht_pixels`."
)


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    state = json.loads((out / "pusht.json").read_text()) if (out / "pusht.json").exists() else {}
    parts = [
        "## Robot-learning suites",
        "",
        f"Machine: {state.get('machine', describe_machine())}. DeepMind Control and ALOHA: their own sections "
        "(`scripts/benchmark_dmc.py`, `scripts/benchmark_aloha.py`).",
    ]
    if state:
        summary = state
        commands = ", ".join(f"`{c}`" for c in summary.get("commands", []))
        parts += [
            "",
            pusht_table(summary),
            "",
            f"Commands run: {commands}, `python scripts/benchmark_robot.py pusht-fidelity`.",
        ]
    if (out / "pusht_fidelity.md").exists():
        parts += [
            "",
            "Open-loop fidelity of that PushT model on 20 held-out episodes (10 OU, 10 scripted; trivial baselines beside):",
            "",
        ]
        parts += [(out / "pusht_fidelity.md").read_text().strip()]
    pixels = out / "pusht_pixels" / "fidelity.md"
    if pixels.exists():
        parts += ["", PIXEL_INTRO, "", pixels.read_text().strip()]
    pixel_summary = json.loads((out / "pusht_pixels.json").read_text()) if (out / "pusht_pixels.json").exists() else {}
    if pixel_summary.get("results"):  # a run without MPC variants (--pixel-policies) files only its fidelity
        parts += ["", pixel_mpc_table(pixel_summary, state.get("results"))]
    read = json.loads((out / READ_RESULTS).read_text()) if (out / READ_RESULTS).exists() else {}
    if read.get("results"):
        media = os.path.relpath(out, Path(args.doc).resolve().parent)
        parts += ["", read_mpc_table(read, state.get("results"), media)]
    if args.notes:
        parts += ["", Path(args.notes).read_text().strip()]
    update_doc_section(args.doc, SECTION, "\n".join(parts))
    print("\n".join(parts))


def run_result(spec: str) -> tuple[str, dict]:
    """``FILE[:POLICY]`` (a run file of this script; POLICY defaults to the file's first result) -> (label, result)."""
    path, _, policy = spec.partition(":")
    results = json.loads(Path(path).read_text()).get("results") or {}
    policy = policy or next(iter(results), "")
    if policy not in results:
        raise SystemExit(f"compare: {path} has no result {policy!r} (it has {sorted(results)})")
    return f"{Path(path).name}:{policy}", results[policy]


def compare(args: argparse.Namespace) -> None:
    """Final coverage of the first ``--runs`` entry against each of the others, paired per episode (the runs share
    the evaluation seeds), and how many episodes end level (within 0.01), better or worse by more than 0.05."""
    if len(args.runs or []) < 2:
        raise SystemExit("compare: --runs needs a run and at least one to compare it with (FILE[:POLICY] ...)")
    (name, result), *others = [run_result(spec) for spec in args.runs]
    final = np.asarray(result["final_coverage_per_episode"])
    print(f"{name}: final coverage {final.mean():.3f} over {len(final)} episodes")
    print(
        "\n| against | its final coverage | paired difference (95%) | level (within 0.01) | better by > 0.05 | worse by > 0.05 |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for other, baseline in others:
        base = np.asarray(baseline["final_coverage_per_episode"])
        if base.shape != final.shape:
            raise SystemExit(f"compare: {other} has {len(base)} episodes, {name} {len(final)}; pairs need the same")
        diff = final - base
        print(
            f"| {other} | {base.mean():.3f} | {paired_coverage(result, baseline)} | {(abs(diff) < 0.01).sum()} | "
            f"{(diff > 0.05).sum()} | {(diff < -0.05).sum()} |"
        )


COMMANDS: dict[str, Callable[[argparse.Namespace], object]] = {
    "compare": compare,
    "pusht": pusht,
    "pusht-fidelity": pusht_fidelity,
    "pusht-pixels": pusht_pixels,
    "pusht-read": pusht_read,
    "report": report,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--out", default="outputs/benchmark_robot")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--notes", default=None, help="a markdown file appended to the section (findings)")
    parser.add_argument(
        "--runs", nargs="*", metavar="FILE[:POLICY]", help="compare: a run file's result, then those to pair it with"
    )
    parser.add_argument("--episodes", type=int, default=50, help="pusht: real evaluation episodes per policy")
    parser.add_argument("--train-episodes", type=int, default=200)
    parser.add_argument(
        "--steps", type=int, default=300, help="pusht: steps per episode (gym-pusht's and LeRobot's 300)"
    )
    parser.add_argument(
        "--policies", nargs="+", default=["random", "scripted", *MPC_VARIANTS], help="pusht: which policies to run"
    )
    parser.add_argument(
        "--pixel-policies",
        nargs="*",
        default=list(PIXEL_POLICIES),
        help="pusht-pixels: which MPC variants to run (none: data, model and fidelity only)",
    )
    parser.add_argument(
        "--read-policies",
        nargs="+",
        default=list(MPC_VARIANTS),
        help="pusht-read: which state-model MPC variants to run on the keypoints read off the frames",
    )
    parser.add_argument(
        "--pixel-episodes", type=int, default=60, help="pusht-pixels: recorded episodes drawn as frames for the vrnn"
    )
    parser.add_argument(
        "--pixel-source",
        choices=("mixed", "scripted"),
        default="mixed",
        help="pusht-pixels: which recorded episodes are drawn (mixed: half OU, half scripted; scripted: that half)",
    )
    parser.add_argument("--pixel-model-steps", type=int, default=3000, help="pusht-pixels: the vrnn's updates")
    parser.add_argument(
        "--pixel-model-option",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="pusht-pixels: model settings over configs/vrnn_pusht_pixels.yaml (e.g. open_loop_horizon=15)",
    )
    parser.add_argument(
        "--context", type=int, default=8, help="pusht-pixels: frames the vrnn re-observes before each plan"
    )
    parser.add_argument("--value-steps", type=int, default=3000, help="pusht: training steps of the learned value")
    parser.add_argument(
        "--hold-margin",
        type=float,
        default=0.1,
        help="pusht-pixels mpc-hold: model return by which a plan must beat holding still to be executed",
    )
    parser.add_argument(
        "--reader-steps",
        type=int,
        default=3000,
        help="pusht-pixels mpc-goal, pusht-read: updates of the block's frame reader",
    )
    parser.add_argument("--model-steps", type=int, default=2000)
    parser.add_argument(
        "--history", type=int, default=1, help="pusht: past steps the ensemble reads (the pusher's velocity is hidden)"
    )
    parser.add_argument("--nll-beta", type=float, default=0.5, help="pusht: the ensemble's beta-NLL exponent")
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument(
        "--max-std", type=float, default=None, help="pusht: CEM's initial sampling std (normalised actions; default 2)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: several runs share the cores side by side)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    COMMANDS[args.command](args)
    if args.command not in ("report", "compare"):
        report(args)


if __name__ == "__main__":
    main()
