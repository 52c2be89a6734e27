"""The online loop: collect real steps -> fit the world model -> improve the agent -> evaluate, repeated.

``train_agent(OnlineConfig(agent="mpc-cem", env_id="Pendulum-v1", real_steps=5000))`` runs, per iteration of
``steps_per_iteration`` real steps:

1. collect in the REAL env (``worldrl.tasks.real_envs.make_real_env``) with the agent (uniform random actions for
   the first ``initial_random_steps``), into an in-memory ``worldrl.data.replay.ReplayBuffer``;
2. fine-tune the SAME world model with the shared ``Trainer`` on ``ReplayBuffer.windows(T)`` for ``model_steps``
   optimiser steps, normalisation refitted from the buffer's statistics first (``worldrl.loops.model_fitting``);
3. check that imagination stays finite (random-action rollouts from real states);
4. improve the agent: a learner (``is_learner``) gets ``agent.update(replay)``, its one update signature (dreamer:
   imagination actor-critic updates from observed real states; mbpo: SAC on model rollouts branched from real
   states); MPC agents only plan, with the freshly fitted model;
5. every ``eval_every`` real steps (and at the end), evaluate on the REAL env: mean return and 95% CI over
   ``eval_episodes`` episodes, appended to ``learning_curve.csv`` and drawn in ``learning_curve.png``;
6. keep the last good state in ``checkpoints/last_good`` (model via ``save_pretrained``, agent via its ``save``).

A NaN in model training, in imagination or in the agent's losses stops the run with ``OnlineTrainingError``
naming the last good checkpoint, which is left untouched. At the end: ``model/``, ``agent/``, the curve files,
``iterations.jsonl`` (every iteration's metrics), optionally ``data/`` (the real steps as a LeRobot dataset),
``final.json`` (the last evaluation's returns, wall-clock and CPU seconds: the record ``scripts/benchmark_control.py``
reads, so a ``worldrl train-agent`` run can stand as a benchmark row) and a summary table.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from worldrl.agents.protocol import is_learner, make_agent
from worldrl.data.replay import ReplayBuffer
from worldrl.errors import DivergedError, OutputExistsError
from worldrl.io import atomic_directory, write_json
from worldrl.loops.config import DEFAULT_AGENT_OPTIONS, OnlineConfig
from worldrl.loops.learning_curve import EvalRecord, append_jsonl, plot_curve, write_curve_csv
from worldrl.loops.model_fitting import (
    build_world_model,
    check_action_space,
    check_finite,
    check_imagination,
    fit_model,
    task_for_env,
)
from worldrl.loops.presets import load_model_spec
from worldrl.loops.vector_collection import VectorRealCollector
from worldrl.models.base import WorldModel


@dataclass
class OnlineResult:
    """What ``train_agent`` returns."""

    output_dir: Path
    model_path: Path
    agent_path: Path
    checkpoint_path: Path
    curve_csv: Path
    curve_png: Path
    evaluations: list[EvalRecord]
    real_steps: int
    seconds: float
    final_returns: list[float]
    """Every episode return of the last evaluation (for pooling across seeds)."""
    cpu_seconds: float = math.nan
    """CPU seconds the run used (its process and its reaped worker processes), beside the wall-clock ``seconds``."""
    video_path: Path | None = None
    """One real episode of the final agent (``final_episode.mp4``); None when off or rendering failed."""

    @property
    def final(self) -> EvalRecord:
        return self.evaluations[-1]

    def summary(self) -> str:
        lines = [f"{'real steps':>10}  {'return':>10}  {'95% CI':>22}  {'train return':>12}  {'time':>8}"]
        for r in self.evaluations:
            ci = "n/a" if math.isnan(r.ci95_low) else f"[{r.ci95_low:.1f}, {r.ci95_high:.1f}]"
            lines.append(
                f"{r.real_steps:>10d}  {r.mean:>10.1f}  {ci:>22}  {r.train_return:>12.1f}  {r.wall_clock_s:>7.0f}s"
            )
        lines.append(f"model: {self.model_path}\nagent: {self.agent_path}\ncurve: {self.curve_csv}, {self.curve_png}")
        lines.append(
            f"budget: {self.seconds:.0f} s wall-clock, {self.cpu_seconds:.0f} CPU s ({self.output_dir / 'final.json'})"
        )
        if self.video_path is not None:
            lines.append(f"video: {self.video_path}")
        return "\n".join(lines)


class OnlineTrainingError(DivergedError):
    """The world model or the agent diverged (NaN/inf); the message names the last good checkpoint."""


class RealCollector:
    """Steps one real env with a policy, writes every transition into the replay buffer, tracks returns."""

    def __init__(self, env: gym.Env, replay: ReplayBuffer, seed: int) -> None:
        self.env, self.replay = env, replay
        self.env.action_space.seed(seed)
        self.obs, _ = env.reset(seed=seed)
        self.episode, self.running = 0, 0.0
        self.finished_returns: list[float] = []

    def collect(self, steps: int, agent: Any, random_actions: bool) -> None:
        for _ in range(steps):
            action = self.env.action_space.sample() if random_actions else agent.act(self.obs, deterministic=False)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.replay.add(self.obs, action, reward, terminated, truncated, next_obs, self.episode)
            self.running += float(reward)
            self.obs = next_obs
            if terminated or truncated:
                self.finished_returns.append(self.running)
                self.episode, self.running = self.episode + 1, 0.0
                self.obs, _ = self.env.reset()
                agent.reset()

    def pop_returns(self) -> list[float]:
        returns, self.finished_returns = self.finished_returns, []
        return returns


def evaluate_agent(agent: Any, config: OnlineConfig) -> Any:
    """Mean return and 95% CI of the agent's deterministic policy on ``eval_episodes`` real episodes."""
    from worldrl.evaluation import evaluate_on_real_env

    agent.reset()
    try:
        return evaluate_on_real_env(
            lambda obs: agent.act(obs, deterministic=True),
            config.env_id,
            episodes=config.eval_episodes,
            seed=config.seed + 10_000,
            num_envs=config.eval_episodes,
        )
    finally:
        agent.reset()  # the collection env's episode continues with a fresh agent memory


def save_state(directory: Path, model: WorldModel, agent: Any, info: dict[str, Any]) -> Path:
    """``model/`` (save_pretrained) + ``agent/`` (agent.save) + ``state.json``, written atomically."""
    with atomic_directory(directory) as tmp:
        model.save_pretrained(str(tmp / "model"))
        agent.save(tmp / "agent")
        write_json(tmp / "state.json", info)
    return directory


RUN_OUTPUTS = (
    "model",
    "agent",
    "checkpoints",
    "data",
    "model_fits",
    "learning_curve.csv",
    "learning_curve.png",
    "iterations.jsonl",
    "model_fits.log",
    "final_episode.mp4",
)
"""What a run writes into its output directory (and what ``overwrite`` removes)."""


def prepare_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse a directory holding an earlier run's outputs, or (``overwrite``) remove them; before any work."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file, not a directory")
    found = [name for name in RUN_OUTPUTS if (out / name).exists()]
    if found and not overwrite:
        raise OutputExistsError(
            f"{out} already holds a train-agent run ({', '.join(found)}); pass --overwrite to "
            "replace it or choose another --out (train-agent cannot resume a run)"
        )
    for name in found:
        path = out / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def cpu_seconds_used() -> float:
    """User + system CPU seconds of this process and of its children that have exited (the AsyncVectorEnv
    workers): ``time.process_time`` alone misses the workers."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class OnlineRun:
    """State of one ``train_agent`` call; each method is one step of the loop."""

    def __init__(self, config: OnlineConfig) -> None:
        from worldrl.tasks.real_envs import make_real_env
        from worldrl.training.trainer import resolve_device

        self.config, self.start, self.cpu_start = config, time.perf_counter(), cpu_seconds_used()
        self.out = Path(config.output_dir)
        prepare_output_dir(self.out, config.overwrite)
        self.env = make_real_env(config.env_id)  # unknown ids raise UnknownEnvError naming close matches
        check_action_space(config.agent, config.env_id, self.env.action_space)
        self.task = task_for_env(self.env, config.env_id)
        self.spec = load_model_spec(config.model_config, config.env_id, config.model_family, config.model_options)
        self.device = resolve_device(config.device)
        self.model = build_world_model(config, self.task, self.spec, self.device)
        options = {**DEFAULT_AGENT_OPTIONS.get(config.agent, {}), **config.agent_options}
        self.agent = make_agent(config.agent, model=self.model, seed=config.seed, device=self.device, **options)
        self.replay = ReplayBuffer(self.task.obs_shape, self.task.action_dim, capacity=max(config.real_steps, 1))
        self.collector = (
            VectorRealCollector(config.env_id, config.collect_envs, self.replay, config.seed)
            if config.collect_envs > 1
            else RealCollector(self.env, self.replay, config.seed)
        )
        self.rng = np.random.default_rng(config.seed)
        self.records: list[EvalRecord] = []
        self.last_returns: list[float] = []
        self.checkpoint = self.out / "checkpoints" / "last_good"
        self.has_checkpoint = False
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in ("iterations.jsonl", "model_fits.log", "final.json"):
            (self.out / stale).unlink(missing_ok=True)
        episode = self.task.max_episode_steps or config.steps_per_iteration
        self.random_steps = min(
            config.real_steps, config.initial_random_steps if config.initial_random_steps is not None else episode
        )
        self.random_steps -= self.random_steps % config.collect_envs  # whole rounds of the parallel envs

    def fail(self, what: str, err: BaseException | str) -> OnlineTrainingError:
        where = self.checkpoint if self.has_checkpoint else "none written yet"
        return OnlineTrainingError(f"{what} at {len(self.replay)} real steps: {err}; last good checkpoint: {where}")

    def iteration(self, index: int, steps: int) -> dict[str, float]:
        from worldrl.training import TrainingDivergedError

        collected = len(self.replay)
        random_part = max(0, min(steps, self.random_steps - collected))
        clock = time.perf_counter()
        self.collector.collect(random_part, self.agent, random_actions=True)
        self.collector.collect(steps - random_part, self.agent, random_actions=False)
        timings = {"time/collect_s": time.perf_counter() - clock}
        clock = time.perf_counter()
        try:
            metrics = fit_model(self.model, self.replay, self.spec, self.config, index, self.out / "model_fits")
            check_finite(metrics, "world-model training")
            check_imagination(
                self.model, self.replay.sample_obs(64, self.rng), self.task.action_space, seed=self.config.seed + index
            )
        except (TrainingDivergedError, FloatingPointError) as err:
            # the trainer's own "last good checkpoint" is a per-fit scratch directory: name ours instead
            reason = err.reason if isinstance(err, TrainingDivergedError) else str(err)
            raise self.fail("world model diverged", reason) from None
        timings["time/fit_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        try:
            # a learner learns from the replay buffer (its one update signature); a planner only plans
            agent_metrics = self.agent.update(self.replay) if is_learner(self.agent) else {}
            check_finite(agent_metrics, f"the {self.config.agent} update")
        except FloatingPointError as err:
            raise self.fail(f"agent {self.config.agent!r} diverged", err) from None
        timings["time/improve_s"] = time.perf_counter() - clock
        return {**metrics, **agent_metrics, **timings}  # the timings say where a run's wall-clock goes

    def evaluate(self) -> EvalRecord:
        stats = evaluate_agent(self.agent, self.config)
        train = self.collector.pop_returns()
        record = EvalRecord(
            len(self.replay),
            stats.mean,
            stats.ci95_low,
            stats.ci95_high,
            stats.std,
            stats.episodes,
            float(np.mean(train)) if train else float("nan"),
            time.perf_counter() - self.start,
        )
        self.records.append(record)
        self.last_returns = list(stats.returns)
        write_curve_csv(self.out / "learning_curve.csv", self.records)
        plot_curve(self.out / "learning_curve.png", self.records, f"{self.config.agent} on {self.config.env_id}")
        return record

    def save_checkpoint(self, index: int) -> None:
        save_state(
            self.checkpoint,
            self.model,
            self.agent,
            {
                "iteration": index,
                "real_steps": len(self.replay),
                "agent": self.config.agent,
                "env_id": self.config.env_id,
                "config": dataclasses.asdict(self.config),
            },
        )
        self.has_checkpoint = True

    def finish(self) -> OnlineResult:
        self.model.save_pretrained(str(self.out / "model"))
        self.agent.save(self.out / "agent")
        if self.config.save_dataset:
            self.replay.to_lerobot(self.out / "data", fps=round(self.task.fps) or 30, task=self.config.env_id)
        shutil.rmtree(self.out / "model_fits", ignore_errors=True)
        self.env.close()
        if isinstance(self.collector, VectorRealCollector):
            self.collector.close()
        video = self.record_video() if self.config.video else None
        seconds, cpu = time.perf_counter() - self.start, cpu_seconds_used() - self.cpu_start
        final = {"returns": self.last_returns, "seconds": seconds, "cpu_seconds": cpu, "real_steps": len(self.replay)}
        write_json(self.out / "final.json", final)
        return OnlineResult(
            self.out,
            self.out / "model",
            self.out / "agent",
            self.checkpoint,
            self.out / "learning_curve.csv",
            self.out / "learning_curve.png",
            self.records,
            len(self.replay),
            seconds,
            self.last_returns,
            cpu_seconds=cpu,
            video_path=video,
        )

    def record_video(self) -> Path | None:
        """The final agent's first evaluation episode, rendered; a rendering failure (no GL, no pygame) only
        warns, because the trained model and agent are already saved and are what the run is for."""
        from worldrl.evaluation.episode_video import record_real_episode

        self.agent.reset()
        try:
            return record_real_episode(
                lambda obs: self.agent.act(obs, deterministic=True),
                self.config.env_id,
                self.out / "final_episode.mp4",
                seed=self.config.seed + 10_000,
            ).path
        except Exception as err:  # noqa: BLE001 - any renderer error: report it and keep the run's results
            tqdm.write(f"warning: could not record final_episode.mp4 ({type(err).__name__}: {err})", file=sys.stderr)
            return None
        finally:
            self.agent.reset()


def train_agent(config: OnlineConfig) -> OnlineResult:
    """Run the online loop of ``config``; see the module docstring."""
    run = OnlineRun(config)
    next_eval, index = config.eval_every, 0
    bar = tqdm(total=config.real_steps, desc=f"{config.agent} on {config.env_id}", unit="step", dynamic_ncols=True)
    try:
        while len(run.replay) < config.real_steps:
            steps = min(config.steps_per_iteration, config.real_steps - len(run.replay))
            metrics = run.iteration(index, steps)
            bar.update(steps)
            row: dict[str, Any] = {"iteration": index, "real_steps": len(run.replay), **metrics}
            if len(run.replay) >= next_eval or len(run.replay) >= config.real_steps:
                clock = time.perf_counter()
                record = run.evaluate()
                row["time/eval_s"] = time.perf_counter() - clock
                next_eval = (len(run.replay) // config.eval_every + 1) * config.eval_every
                row.update(
                    real_return=record.mean,
                    real_return_ci95_low=record.ci95_low,
                    real_return_ci95_high=record.ci95_high,
                )
                bar.set_postfix(real_return=f"{record.mean:.1f}", refresh=False)
            append_jsonl(run.out / "iterations.jsonl", row)
            run.save_checkpoint(index)
            index += 1
    except BaseException:
        run.env.close()
        if isinstance(run.collector, VectorRealCollector):
            run.collector.close()
        raise
    finally:
        bar.close()
    result = run.finish()
    tqdm.write(result.summary())
    return result


__all__ = ["OnlineResult", "OnlineRun", "OnlineTrainingError", "train_agent"]
