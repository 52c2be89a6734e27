"""The details behind the notes on the control benchmark, from finished ``benchmark_control.py`` runs.

    python scripts/control_details.py runs/benchmark_control                    # time per phase of each run
    python scripts/control_details.py runs/benchmark_control --zero-action Reacher-v5 --seeds 0 1 2 --episodes 10
    python scripts/control_details.py runs/benchmark_control \\
        --strip runs/benchmark_control/HalfCheetah-v5/mpc-cem/seed0 docs/control_halfcheetah_final_episode.png
    python scripts/control_details.py runs/benchmark_control --imagination runs/dreamer_ip/guarded_s0 RUN2 ...
    python scripts/control_details.py runs/benchmark_control --curves docs/control_guards.png RUN1 RUN2 ...
    python scripts/control_details.py runs/benchmark_control --planner-check runs/benchmark_control/T/dreamer/seed0
    python scripts/control_details.py runs/benchmark_control --pose-check runs/benchmark_control/HalfCheetah-v5/*/seed*
    python scripts/control_details.py runs/benchmark_control --effort runs/benchmark_control/Reacher-v5/*/seed* --episodes 10
    python scripts/control_details.py runs/benchmark_control --scale-check runs/benchmark_control/Reacher-v5/dreamer/seed0

The phase table reads each run's ``iterations.jsonl`` (one row per 250-step iteration of the online loop).
``--zero-action`` evaluates the all-zero action on the same real starts the loop evaluates on (seed + 10000).
``--strip`` draws frames of a run's ``final_episode.mp4`` (the first final-evaluation episode); ``--rerecord``
first renders that episode again from the run's saved agent.
``--imagination`` sets what an imagination learner believed beside what it got: per real-env evaluation, the
mean imagined reward per step and the ensemble disagreement of the updates since the previous evaluation.
``--planner-check`` isolates what limits ``mpc-ac``: it takes a finished dreamer run (a model and an actor-critic
trained together) and evaluates, on the run's evaluation starts, the actor alone and mpc-ac's planner with that
actor-critic as prior and value, with each part switched off in turn; it also measures how much of the spread of
the candidates' planned returns comes from the terminal value rather than from the imagined rewards.
``--pose-check`` replays the final policy of HalfCheetah runs on their evaluation starts and reports how far the
torso pitches: a cheetah on its back has turned past 90 degrees, which the return alone does not show.
``--effort`` replays the final policy of Reacher runs on their evaluation starts and splits the return into its
two terms (Reacher-v5's ``reward_dist`` and ``reward_ctrl``), with the control spent in the first two steps and
the fingertip's distance at the end: two policies with the same return can differ in how far they get and in how
much torque they pay for it.
``--scale-check`` asks what an imagination actor optimises: along the line of its deterministic actions scaled by
a factor (1 = the actor), from the states of its real evaluation episodes (mean dynamics, its target critic), it
reports the lambda-return of the start state, the sum of the lambda-returns of all imagined steps (what the
actor's loss maximises, gradients flowing through the imagined states), and the real return with scaled actions.
Where the start-state return and the real return prefer another factor but the sum prefers 1, the actor's loss,
not the model, keeps it there.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
from pathlib import Path

import numpy as np

PHASES = ("collect", "fit", "improve", "eval")
STRIP_STEPS = (0, 25, 50, 100, 500, 1000)


def phase_rows(root: Path) -> list[tuple[str, str, str, list[float], list[float]]]:
    """``(task, method, seed, median seconds per phase, total seconds per phase)`` for every run under ``root``."""
    rows = []
    for path in sorted(root.glob("*/*/seed*/iterations.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        medians, totals = [], []
        for phase in PHASES:
            values = [r[f"time/{phase}_s"] for r in records if f"time/{phase}_s" in r]
            medians.append(statistics.median(values) if values else 0.0)
            totals.append(sum(values))
        rows.append((path.parts[-4], path.parts[-3], path.parts[-2], medians, totals))
    return rows


def phases_table(rows: list[tuple[str, str, str, list[float], list[float]]]) -> str:
    lines = [
        "| task | method | seed | collect s/iter | fit s/iter | improve s/iter | eval s/eval | "
        "total collect/fit/improve/eval (s) |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for task, method, seed, medians, totals in rows:
        lines.append(
            f"| {task} | {method} | {seed} | "
            + " | ".join(f"{m:.1f}" for m in medians)
            + " | "
            + "/".join(f"{t:.0f}" for t in totals)
            + " |"
        )
    return "\n".join(lines)


def imagination_rows(run_dir: Path) -> list[tuple[int | None, float, float, float]]:
    """``(real steps, real return, imagined reward per step, disagreement)`` at each evaluation of a run so far:
    the learner's metrics averaged over the iterations since the previous evaluation (NaN where not logged); a
    run still going adds a row ``(None, nan, ...)`` for the iterations after its last evaluation."""
    import csv

    records = [json.loads(line) for line in (run_dir / "iterations.jsonl").read_text().splitlines() if line.strip()]
    curve_path = run_dir / "learning_curve.csv"
    curve = []
    if curve_path.is_file():
        with curve_path.open() as f:
            curve = [(int(r["real_steps"]), float(r["mean"])) for r in csv.DictReader(f)]
    ends = [i + 1 for i, r in enumerate(records) if "time/eval_s" in r][: len(curve)]
    rows, start = [], 0
    for (steps, real), end in zip(curve, ends):
        window = records[start:end]
        rows.append(
            (steps, real, window_mean(window, "dreamer/imagined_reward"), window_mean(window, "dreamer/uncertainty"))
        )
        start = end
    if start < len(records):
        window = records[start:]
        rows.append(
            (
                None,
                float("nan"),
                window_mean(window, "dreamer/imagined_reward"),
                window_mean(window, "dreamer/uncertainty"),
            )
        )
    return rows


def window_mean(records: list[dict], key: str) -> float:
    values = [r[key] for r in records if key in r]
    return float(np.mean(values)) if values else float("nan")


def imagination_table(runs: list[Path]) -> str:
    lines = [
        "| run | real steps | real return | imagined reward / step | disagreement |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        for steps, real, imagined, doubt in imagination_rows(run):
            when = "since last eval" if steps is None else str(steps)
            lines.append(f"| {run.name} | {when} | {real:.1f} | {imagined:.2f} | {doubt:.2f} |")
    return "\n".join(lines)


def plot_runs(out: Path, runs: list[Path]) -> Path:
    """Real return vs real steps of the given runs (their ``learning_curve.csv`` so far), one line each."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from worldrl.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for run in runs:
        with (run / "learning_curve.csv").open() as f:
            rows = list(csv.DictReader(f))
        steps = [int(r["real_steps"]) for r in rows]
        ax.plot(steps, [float(r["mean"]) for r in rows], marker="o", ms=3, label=f"{run.parent.name}/{run.name}")
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("real return (eval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def zero_action_returns(env_id: str, seeds: list[int], episodes: int) -> None:
    import gymnasium as gym

    from worldrl.evaluation import evaluate_on_real_env

    action_dim = gym.make(env_id).action_space.shape[0]
    for seed in seeds:
        result = evaluate_on_real_env(
            lambda obs: np.zeros((obs.shape[0], action_dim), np.float32),
            env_id,
            episodes=episodes,
            seed=seed + 10_000,
            num_envs=episodes,
        )
        print(f"zero action, seed {seed}: {result}")


def rerecord_final_episode(run_dir: Path) -> Path:
    """Re-render the run's first final-evaluation episode from its saved agent with today's recorder (runs made
    before HalfCheetah was filmed by its ``track`` camera show the cheetah leaving the fixed view)."""
    import torch

    from worldrl.agents.trained_run import load_trained_agent
    from worldrl.evaluation.episode_video import record_real_episode

    torch.set_num_threads(1)
    trained = load_trained_agent(run_dir)
    trained.agent.reset()
    act = lambda obs: trained.agent.act(obs, deterministic=True)  # noqa: E731 - one observation -> one action
    return record_real_episode(act, trained.env_id, run_dir / "final_episode.mp4", seed=trained.seed + 10_000).path


def episode_strip(run_dir: Path, out: Path) -> Path:
    """Frames ``STRIP_STEPS`` of the run's first final-evaluation episode, titled with that episode's return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from worldrl.data.video import decode_frames, probe_video_info
    from worldrl.io import atomic_write_bytes

    video = run_dir / "final_episode.mp4"
    fps = probe_video_info(video)["video.fps"]
    frames = decode_frames(video, np.array(STRIP_STEPS) / fps, tolerance_s=0.5 / fps)
    first_return = json.loads((run_dir / "final.json").read_text())["returns"][0]
    fig, axes = plt.subplots(1, len(STRIP_STEPS), figsize=(12, 2.4))
    for ax, step, frame in zip(axes, STRIP_STEPS, frames):
        ax.imshow(frame)
        ax.set_title(f"step {step}", fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"{run_dir.parts[-3]}, {run_dir.parts[-2]} {run_dir.parts[-1]}: first final-evaluation episode "
        f"(return {first_return:.1f})",
        fontsize=9,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    atomic_write_bytes(out, buffer.getvalue())
    return out


PLANNER_CHECKS: dict[str, dict] = {
    # name -> (uses the actor-critic's value, uses its prior, planner settings over mpc-ac's DEFAULT_PLANNER)
    "mpc-ac planner (value + prior)": {"value": True, "prior": True, "settings": {}},
    "no terminal value": {"value": False, "prior": True, "settings": {}},
    "no policy prior": {"value": True, "prior": False, "settings": {}},
    "neither (plain CEM, horizon 5)": {"value": False, "prior": False, "settings": {}},
    "value + prior, horizon 12": {"value": True, "prior": True, "settings": {"horizon": 12}},
}
"""The planner variants ``--planner-check`` evaluates with a trained dreamer's actor-critic."""


def dreamer_run(run_dir: Path, flag: str):
    """A dreamer run's saved model and actor-critic (one torch thread); other agents are refused, naming ``flag``."""
    import torch

    from worldrl.agents.trained_run import load_trained_agent

    torch.set_num_threads(1)
    trained = load_trained_agent(run_dir)
    if trained.name != "dreamer":
        raise SystemExit(f"{flag} needs a dreamer run (model + actor-critic), got a {trained.name} run")
    return trained


def planner_check(run_dir: Path, episodes: int, max_steps: int | None = None) -> list[tuple[str, float, float]]:
    """``(variant, mean real return, value share)`` for the dreamer run's actor alone and each ``PLANNER_CHECKS``
    variant on the run's evaluation starts (seed + 10000), episodes cut at ``max_steps`` when given (planning
    every step of 1000-step InvertedPendulum episodes is what costs); value share is the fraction of the candidates' return
    variance (first plan of each episode) that the terminal value term carries."""
    from worldrl.agents.mpc import MPCAgent
    from worldrl.agents.mpc_ac import DEFAULT_PLANNER
    from worldrl.evaluation import evaluate_on_real_env

    trained = dreamer_run(run_dir, "--planner-check")
    ac, seed = trained.agent, trained.seed + 10_000

    def real_return(agent) -> float:
        agent.reset()
        limit = {} if max_steps is None else {"max_episode_steps": max_steps}
        stats = evaluate_on_real_env(
            lambda obs: agent.act(obs, deterministic=True), trained.env_id, episodes, seed, num_envs=episodes, **limit
        )
        return float(np.mean(stats.returns))

    rows = [("actor alone (the dreamer policy)", real_return(ac), float("nan"))]
    for name, check in PLANNER_CHECKS.items():
        mpc = MPCAgent(
            trained.model,
            "cem",
            config={**DEFAULT_PLANNER, **check["settings"]},
            value_fn=ac.value if check["value"] else None,
            policy_prior=ac.policy_prior if check["prior"] else None,
            seed=trained.seed,
        )
        share = value_share(mpc, trained, ac, seed, episodes) if check["value"] else float("nan")
        rows.append((name, real_return(mpc), share))
        print(f"{name}: {rows[-1][1]:.1f} (value share {share:.2f})", flush=True)
    return rows


def value_share(mpc, trained, ac, seed: int, episodes: int) -> float:
    """Var(discounted gamma^H V) / (Var(reward part) + Var(value part)) over the first iteration's candidates from
    the evaluation's start states: near 1 means the plan is ranked by the critic, not by the imagined rewards."""
    import torch

    from worldrl.agents.planners.common import ActionBox, expand_batch
    from worldrl.agents.planners.step_scores import step_scores
    from worldrl.agents.returns import discounted_return
    from worldrl.tasks.real_envs import make_real_env

    env = make_real_env(trained.env_id)  # episode i of an evaluation starts from reset(seed=seed + i)
    obs = np.stack([env.reset(seed=seed + i)[0] for i in range(episodes)])
    env.close()
    cfg = mpc.planner.config
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mpc.reset()
        state = mpc.history.encode(torch.as_tensor(obs, dtype=torch.float32))
        box = ActionBox.from_space(trained.model.task.action_space, torch.device("cpu"))
        noise = torch.randn((episodes * cfg.num_samples, cfg.horizon, box.centre.shape[0]), generator=generator)
        actions = box.to_units(box.clamp(cfg.init_std * noise))  # the first iteration's Gaussian candidates
        start = expand_batch(state, cfg.num_samples)
        states = trained.model.rollout(start, actions, generator)
        rewards, continues = step_scores(trained.model, start, states, actions, cfg.reward, cfg.termination)
        reward_part = discounted_return(rewards, continues, cfg.discount)
        value = ac.value(trained.model.latent(states[:, -1])).reshape(-1)
        value_part = discounted_return(rewards, continues, cfg.discount, value) - reward_part
        reward_part, value_part = (x.reshape(episodes, cfg.num_samples) for x in (reward_part, value_part))
        mpc.reset()
    var_r, var_v = reward_part.var(dim=1).mean(), value_part.var(dim=1).mean()
    return float(var_v / (var_r + var_v))


def planner_check_table(rows: list[tuple[str, float, float]]) -> str:
    lines = [
        "| policy (same model, same actor-critic) | real return | value share of candidate spread |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {ret:.1f} | {'-' if share != share else f'{share:.2f}'} |" for name, ret, share in rows]
    return "\n".join(lines)


HALFCHEETAH_PITCH = 1
"""Index of the torso's pitch angle (rooty, radians) in HalfCheetah-v5's observation (root x is excluded)."""


def trained_runs_of(run_dirs: list[Path], env_id: str, why: str):
    """Each run's saved agent (``load_trained_agent``), refusing runs of another task; ``why`` names the check."""
    import torch

    from worldrl.agents.trained_run import load_trained_agent

    torch.set_num_threads(1)
    for run_dir in run_dirs:
        trained = load_trained_agent(run_dir)
        if trained.env_id != env_id:
            raise SystemExit(f"{why}; {run_dir} is a {trained.env_id} run")
        yield run_dir, trained


def pose_check(run_dirs: list[Path], episodes: int) -> list[tuple[str, float, float, int]]:
    """``(run, mean return, largest |pitch| in degrees, episodes that end past 90 degrees)`` for each HalfCheetah
    run's saved agent on its own evaluation starts (seed + 10000), acting as in its final evaluation."""
    from worldrl.evaluation import evaluate_on_real_env

    rows = []
    for run_dir, trained in trained_runs_of(
        run_dirs, "HalfCheetah-v5", "--pose-check reads HalfCheetah-v5's torso pitch"
    ):
        pitches: list[np.ndarray] = []

        def act(obs: np.ndarray, pitches=pitches, agent=trained.agent) -> np.ndarray:
            pitches.append(np.atleast_2d(obs)[:, HALFCHEETAH_PITCH].copy())
            return agent.act(obs, deterministic=True)

        trained.agent.reset()
        stats = evaluate_on_real_env(act, trained.env_id, episodes, trained.seed + 10_000, num_envs=episodes)
        # [steps, episodes], wrapped to [-180, 180] (the hinge angle keeps counting over full turns); the episodes
        # run in lockstep, as HalfCheetah never terminates
        pitch = np.abs(np.degrees(np.angle(np.exp(1j * np.stack(pitches)))))
        rows.append((str(run_dir), float(np.mean(stats.returns)), float(pitch.max()), int((pitch[-1] > 90).sum())))
        print(f"{run_dir}: return {rows[-1][1]:.1f}, max |pitch| {rows[-1][2]:.0f} deg", flush=True)
    return rows


def effort_summary(reward_dist: np.ndarray, reward_ctrl: np.ndarray, early_steps: int = 2) -> dict[str, float]:
    """``reward_dist`` / ``reward_ctrl`` ``[episodes, steps]`` (Reacher-v5's reward terms per step, both <= 0) ->
    per-episode means: the return, its distance and control parts, the control part of the first ``early_steps``
    steps, and the final distance (the last step's ``-reward_dist``)."""
    return {
        "return": float((reward_dist + reward_ctrl).sum(1).mean()),
        "distance part": float(reward_dist.sum(1).mean()),
        "control part": float(reward_ctrl.sum(1).mean()),
        f"control in the first {early_steps} steps": float(reward_ctrl[:, :early_steps].sum(1).mean()),
        "final distance (m)": float(-reward_dist[:, -1].mean()),
    }


def effort_check(run_dirs: list[Path], episodes: int) -> list[tuple[str, dict[str, float]]]:
    """``(run, effort_summary)`` of each Reacher run's saved agent on its evaluation starts (seed + 10000 + i),
    acting as in its final evaluation; episodes run one at a time so that the env's reward terms can be read."""
    import gymnasium as gym

    rows = []
    for run_dir, trained in trained_runs_of(run_dirs, "Reacher-v5", "--effort reads Reacher-v5's reward terms"):
        env = gym.make(trained.env_id)
        dist, ctrl = [], []
        for i in range(episodes):
            trained.agent.reset()
            obs, _ = env.reset(seed=trained.seed + 10_000 + i)
            terms: list[tuple[float, float]] = []
            done = False
            while not done:
                action = np.asarray(trained.agent.act(obs[None], deterministic=True)).reshape(-1)
                obs, _, terminated, truncated, info = env.step(action)
                terms.append((info["reward_dist"], info["reward_ctrl"]))
                done = terminated or truncated
            dist.append([d for d, _ in terms])
            ctrl.append([c for _, c in terms])
        env.close()
        rows.append((str(run_dir), effort_summary(np.array(dist), np.array(ctrl))))
        print(f"{run_dir}: return {rows[-1][1]['return']:.2f}", flush=True)
    return rows


def effort_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    keys = list(rows[0][1]) if rows else []
    lines = ["| run | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    lines += ["| " + run + " | " + " | ".join(f"{v:.3f}" for v in summary.values()) + " |" for run, summary in rows]
    return "\n".join(lines)


SCALES = (1.0, 0.7, 0.5, 0.3)


def scale_check(run_dir: Path, episodes: int, scales: tuple[float, ...] = SCALES) -> list[tuple[float, ...]]:
    """``(scale, start-state return and sum over steps at the episodes' first states, start-state return at all
    their states, real return)`` per scale for a dreamer run, on its evaluation starts (seed + 10000 + i)."""
    import torch

    from worldrl.evaluation import evaluate_on_real_env

    trained = dreamer_run(run_dir, "--scale-check")
    agent, model = trained.agent, trained.model
    states: list[np.ndarray] = []

    def record(obs: np.ndarray) -> np.ndarray:
        states.append(np.atleast_2d(obs).copy())
        return agent.act(obs, deterministic=True)

    agent.reset()
    evaluate_on_real_env(record, trained.env_id, episodes, trained.seed + 10_000, num_envs=episodes)
    obs = torch.as_tensor(np.concatenate(states), dtype=torch.float32, device=model.device)
    first = torch.zeros(len(obs), dtype=torch.bool)
    first[:episodes] = True  # the episodes run in lockstep: the first call saw every first state
    rows = []
    for scale in scales:
        returns = imagined_lambda_returns(agent, model, obs, scale)

        def scaled(o: np.ndarray, scale=scale) -> np.ndarray:
            return scale * np.asarray(agent.act(o, deterministic=True))

        agent.reset()
        real = evaluate_on_real_env(scaled, trained.env_id, episodes, trained.seed + 10_000, num_envs=episodes)
        start, summed = returns[:, 0], returns.sum(1)
        rows.append(
            (
                scale,
                float(start[first].mean()),
                float(summed[first].mean()),
                float(start.mean()),
                float(np.mean(real.returns)),
            )
        )
        print(f"scale {scale}: start-state return {rows[-1][3]:.3f}, real return {rows[-1][4]:.3f}", flush=True)
    return rows


def imagined_lambda_returns(agent, model, obs, scale: float):
    """The lambda-returns ``[N, H]`` the actor-critic trains on, from observations ``obs [N, D]``: its imagination
    under its deterministic actions times ``scale`` (mean dynamics), valued by its target critic."""
    import torch

    from worldrl.agents.returns import lambda_returns

    n, config = obs.shape[0], agent.config
    with torch.no_grad():
        state = model.observe_last(
            obs[:, None],
            torch.zeros(n, 1, model.task.action_dim, device=obs.device),
            torch.ones(n, 1, dtype=torch.bool, device=obs.device),
        )
        latents, rewards, continues = [model.latent(state)], [], []
        for _ in range(config.horizon):
            state = model.imagine(state, scale * agent.actor.mode(latents[-1]), None)
            latents.append(model.latent(state))
            rewards.append(model.reward(state).reshape(-1))
            continues.append(1.0 - model.terminal(state).reshape(-1))
        values = agent.target_critic(torch.stack(latents, 1)).squeeze(-1)
        stack = lambda xs: torch.stack(xs, 1)  # noqa: E731
        return lambda_returns(stack(rewards), stack(continues), values, config.discount, config.lambda_)


def scale_table(rows: list[tuple[float, ...]]) -> str:
    lines = [
        "| action scale | start-state return, first states | sum over steps (the actor's loss), first states "
        "| start-state return, all states | real return |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s:g} | {a:.3f} | {b:.2f} | {c:.3f} | {r:.3f} |" for s, a, b, c, r in rows]
    return "\n".join(lines)


def pose_table(rows: list[tuple[str, float, float, int]], episodes: int) -> str:
    lines = [
        "| run | mean return | largest torso pitch (deg) | episodes ending on the back (pitch > 90 deg) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {run} | {ret:.1f} | {pitch:.0f} | {flipped} of {episodes} |" for run, ret, pitch, flipped in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="--out of benchmark_control.py")
    parser.add_argument("--zero-action", metavar="ENV_ID", help="also evaluate the zero action on this task")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--strip", nargs=2, type=Path, metavar=("RUN_DIR", "PNG"))
    parser.add_argument("--rerecord", action="store_true", help="--strip: first re-render the episode from the agent")
    parser.add_argument("--imagination", nargs="+", type=Path, metavar="RUN_DIR", help="imagined vs real, per eval")
    parser.add_argument("--curves", nargs="+", type=Path, metavar="PNG RUN_DIR", help="plot these runs' curves")
    parser.add_argument("--planner-check", type=Path, metavar="DREAMER_RUN", help="mpc-ac's parts, one at a time")
    parser.add_argument("--pose-check", nargs="+", type=Path, metavar="RUN_DIR", help="HalfCheetah torso pitch")
    parser.add_argument("--effort", nargs="+", type=Path, metavar="RUN_DIR", help="Reacher: distance vs control")
    parser.add_argument(
        "--scale-check", type=Path, metavar="DREAMER_RUN", help="actor's loss vs its start-state return"
    )
    parser.add_argument("--max-episode-steps", type=int, default=None, help="--planner-check: cut episodes here")
    args = parser.parse_args()
    print(phases_table(phase_rows(args.root)))
    if args.curves:
        print(f"wrote {plot_runs(args.curves[0], args.curves[1:])}")
    if args.imagination:
        print(imagination_table(args.imagination))
    if args.zero_action:
        zero_action_returns(args.zero_action, args.seeds, args.episodes)
    if args.strip:
        if args.rerecord:
            print(f"re-recorded {rerecord_final_episode(args.strip[0])}")
        print(f"wrote {episode_strip(*args.strip)}")
    if args.planner_check:
        print(planner_check_table(planner_check(args.planner_check, args.episodes, args.max_episode_steps)))
    if args.pose_check:
        print(pose_table(pose_check(args.pose_check, args.episodes), args.episodes))
    if args.scale_check:
        print(scale_table(scale_check(args.scale_check, args.episodes)))
    if args.effort:
        print(effort_table(effort_check(args.effort, args.episodes)))


if __name__ == "__main__":
    main()
