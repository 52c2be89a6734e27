"""ALOHA pixel-fidelity benchmark: a pixel world model of gym-aloha's top camera, PSNR/SSIM vs trivial baselines.

Needs ``pip install worldrl[robot]`` (gym-aloha; see the README). Three steps, each skipped when its output exists:

1. ``record``: ``--train-episodes`` + ``--heldout-episodes`` episodes of ``gym_aloha/AlohaTransferCube-v0`` in
   LeRobot's ALOHA layout (``observation.images.top``, the 14 joint positions as ``observation.state``, ``action``,
   ``next.reward``, ``next.success``, 50 fps) through ``worldrl collect``'s suite recorder, with an Ornstein-Uhlenbeck
   policy on the joint targets so both arms keep moving. The top camera is rendered at ``--height`` x ``--width``
   (CPU-sized) instead of 480x640, and the two cameras the layout does not record are not rendered at all:
   gym-aloha renders three 480x640 views every step (about 0.5 s per step under software GL here).
2. ``train``: the vrnn pixel preset ``configs/vrnn_aloha_pixels.yaml`` on the training episodes; with
   ``--finetune-steps``, then a run from its final weights under ``--finetune-set`` (e.g. a structure loss).
3. ``evaluate``: open-loop PSNR and SSIM at 1/5/10 steps on starts drawn from the held-out episodes (other seeds,
   so other cube positions and arm paths), next to repeating the last frame and the training episodes' mean frame
   on the same starts, with an imagined-vs-real strip PNG; the table goes to the ``aloha`` section of ``--doc``.

    python scripts/benchmark_aloha.py all                  # record, train, evaluate, write the doc section
    python scripts/benchmark_aloha.py evaluate --notes findings.md
    python scripts/benchmark_aloha.py ceiling              # what a one-step prediction could score (SSIM)
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from worldrl.evaluation.plots import plot_frame_strip  # noqa: E402
from worldrl.evaluation.report import describe_machine, update_doc_section  # noqa: E402
from worldrl.io import atomic_write_bytes, read_json, write_json  # noqa: E402

SECTION, AFTER_SECTION = "aloha", "dmc"
ALOHA_TASK = "gym_aloha/AlohaTransferCube-v0"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "vrnn_aloha_pixels.yaml"
HORIZONS = (1, 5, 10)
BASELINE_LABELS = {"repeat_last": "repeat last frame", "dataset_mean": "mean frame"}


# --------------------------------------------------------------------------- the env at a CPU-sized camera
def top_camera_env(task: str, height: int, width: int, **kwargs) -> object:
    """gym-aloha's env whose task renders only the top camera, at ``height`` x ``width``.

    gym-aloha's ``get_observation`` renders "top", "angle" and "front_close" at 480x640 every step and the
    LeRobot layout keeps only "top"; the observation space follows ``observation_height``/``observation_width``.
    """
    from gym_aloha.env import AlohaEnv

    env = AlohaEnv(task, observation_height=height, observation_width=width, **kwargs)
    sim_task = env._env.task
    render_top = lambda physics: physics.render(height=height, width=width, camera_id="top")  # noqa: E731
    sim_task.get_observation = lambda physics: {
        "qpos": sim_task.get_qpos(physics),
        "qvel": sim_task.get_qvel(physics),
        "env_state": sim_task.get_env_state(physics),
        "images": {"top": render_top(physics)},
    }
    return env


def register_env(height: int, width: int) -> str:
    """Register the CPU-sized TransferCube under gym-aloha's namespace (so the ALOHA layout records it)."""
    import gym_aloha  # noqa: F401  (registers gym-aloha's own ids)
    import gymnasium as gym

    env_id = f"gym_aloha/AlohaTransferCubeTop{height}x{width}-v0"
    if env_id not in gym.registry:
        gym.register(
            env_id,
            entry_point=top_camera_env,
            max_episode_steps=300,
            nondeterministic=True,
            kwargs={"task": "transfer_cube", "height": height, "width": width},
        )
    return env_id


# --------------------------------------------------------------------------- steps
def record(args: argparse.Namespace) -> dict:
    from worldrl.data.collect import CollectConfig, collect

    env_id = register_env(args.height, args.width)
    out, seconds = Path(args.out), {}
    for split, episodes, seed in (("train", args.train_episodes, 0), ("heldout", args.heldout_episodes, 10_000)):
        root = out / f"data_{split}"
        if (root / "meta" / "info.json").exists():
            continue
        t0 = time.time()
        config = CollectConfig(
            env_id,
            root,
            episodes=episodes,
            policy=args.policy,
            pixels=True,
            seed=seed,
            max_episode_steps=args.steps,
            overwrite=True,
        )
        collect(config, progress=True)
        seconds[split] = time.time() - t0
    return seconds


def train(args: argparse.Namespace) -> Path:
    """The preset's run (``--model-steps``, ``--set``), then, with ``--finetune-steps``, a second run starting from
    its final weights (``init_from``, a fresh optimiser) under ``--set`` and ``--finetune-set``; returns the model
    to score."""
    base = run_preset(args, Path(args.out) / "model_run", args.model_steps, args.set)
    if not args.finetune_steps:
        return base
    more = [f"init_from={Path(args.out) / 'model_run' / 'model'}", *args.set, *args.finetune_set]
    return run_preset(args, scored_run(args), args.finetune_steps, more)


def scored_run(args: argparse.Namespace) -> Path:
    """The run directory ``evaluate`` scores: the fine-tuned one when ``--finetune-steps`` is set."""
    return Path(args.out) / ("model_run_finetuned" if args.finetune_steps else "model_run")


def run_preset(args: argparse.Namespace, run: Path, steps: int | None, overrides: list[str]) -> Path:
    from worldrl.training.run import load_config, train_from_config

    if not (run / "model").exists():
        settings = [f"data.root={Path(args.out) / 'data_train'}", f"output_dir={run}"]
        settings += [f"trainer.max_steps={steps}"] if steps else []
        t0 = time.time()
        train_from_config(load_config(str(CONFIG), settings + overrides))
        write_json(run / "train_seconds.json", {"seconds": time.time() - t0})
    return run / ("best" if (run / "best").exists() and args.best else "model")


def fidelity_table(report) -> str:
    """PSNR and SSIM per horizon for the model and both trivial baselines, side by side."""
    names = [("model", {h.horizon: h for h in report.horizons})]
    names += [(BASELINE_LABELS[n], {h.horizon: h for h in report.baselines[n]}) for n in BASELINE_LABELS]
    header = "| horizon | starts | " + " | ".join(f"{label}: PSNR (dB) | {label}: SSIM" for label, _ in names) + " |"
    lines = [header, "|---:" * (2 + 2 * len(names)) + "|"]
    for h in report.horizons:
        cells = [str(h.horizon), str(h.count)]
        for label, by_h in names:
            m = by_h[h.horizon]
            bold = "**" if label == "model" else ""
            cells += [
                f"{bold}{v:{spec}}{bold}" if v is not None else "n/a" for v, spec in ((m.psnr, ".2f"), (m.ssim, ".3f"))
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(args: argparse.Namespace) -> str:
    from worldrl.data import LeRobotDatasetReader
    from worldrl.evaluation.fidelity import evaluate_fidelity
    from worldrl.models.base import WorldModel

    register_env(args.height, args.width)
    out = Path(args.out)
    checkpoint = train(args) if args.command == "all" else scored_run(args) / ("best" if args.best else "model")
    model = WorldModel.from_pretrained(str(checkpoint), device="cpu")
    reader = LeRobotDatasetReader(out / "data_heldout")
    episodes = [int(e["episode_index"]) for e in reader.episodes]
    t0 = time.time()
    report = evaluate_fidelity(
        model,
        reader,
        episodes,
        horizons=HORIZONS,
        num_starts=args.starts or None,
        seed=0,
        num_examples=16,
        batch_size=32,
    )
    markdown = "\n".join(
        [
            f"**{report.model}**, {report.num_starts} starts on {len(episodes)} held-out episodes, context "
            f"{report.context}, mean prediction; the mean frame is taken over {report.baseline_mean_from}.",
            "",
            fidelity_table(report),
            "",
            "Model minus baseline, start by start (mean paired difference with its 95% Student-t interval):",
            report.paired_markdown(),
        ]
    )
    atomic_write_bytes(out / "fidelity.md", markdown.encode())
    print(markdown, f"\n({time.time() - t0:.0f}s)")
    strip = plot_frame_strip(
        report.examples,
        Path(args.doc).parent / "aloha_imagined_vs_real.png",
        (0, 1, 2, 5, 10),
        f"{report.model}: held-out",
    )
    write_report(args, markdown, strip)
    return markdown


def one_step_ceiling(args: argparse.Namespace) -> dict:
    """What a one-step prediction of the held-out frames could score in SSIM, against repeating the last frame.

    ``paint``: the true next frame resampled to the preset's ``image_size`` and back (the decoder's resolution);
    ``oracle blend``: the last frame kept wherever no channel changed by ``--change`` or more, that paint elsewhere
    (a perfect keep-mask). ``changed``: the share of pixels that moved by 0.1 or more in one step.
    """
    import yaml

    from worldrl.data import LeRobotDatasetReader
    from worldrl.evaluation.fidelity import frame_quality
    from worldrl.models.vrnn.encoders import model_to_pixels, pixels_to_model

    side = int(yaml.safe_load(CONFIG.read_text())["model"]["image_size"])
    reader = LeRobotDatasetReader(Path(args.out) / "data_heldout")
    key, scores = "observation.images.top", {"repeat last frame": [], "paint": [], "oracle blend": [], "changed": []}
    for episode in range(reader.num_episodes):
        first, stop = reader.episode_range(episode)
        frames = torch.from_numpy(reader.frames(key, np.arange(first, stop))).float()  # [T, H, W, C], 0..255
        height, width = frames.shape[1:3]
        last, true = frames[:-1], frames[1:]
        paint = model_to_pixels(pixels_to_model(true, side), height, width).float()
        change = (true - last).abs().amax(-1, keepdim=True) / 255.0
        keep = (change < args.change).float()
        guesses = {"repeat last frame": last, "paint": paint, "oracle blend": keep * last + (1 - keep) * paint}
        for name, guess in guesses.items():  # the fidelity table's own SSIM
            scores[name].append(torch.from_numpy(frame_quality(guess.numpy(), true.numpy())[1]))
        scores["changed"].append((change >= 0.1).float().mean((1, 2, 3)))
    result = {name: float(torch.cat(values).mean()) for name, values in scores.items()}
    result.update(image_size=side, change_threshold=args.change, pairs=int(torch.cat(scores["changed"]).numel()))
    write_json(Path(args.out) / "one_step_ceiling.json", result)
    print(f"one-step SSIM on {result['pairs']} held-out frame pairs (paint at {side}x{side}):")
    for name in ("repeat last frame", "paint", "oracle blend"):
        print(f"  {name:<18} {result[name]:.3f}")
    print(f"  pixels changed by 0.1 or more: {result['changed']:.1%}")
    return result


def write_report(args: argparse.Namespace, markdown: str, strip: Path | None) -> None:
    out = Path(args.out)
    train_info = read_json(out / "data_train" / "meta" / "info.json")
    runs = [out / "model_run", *([scored_run(args)] if args.finetune_steps else [])]
    train_s = sum(
        read_json(r / "train_seconds.json")["seconds"] if (r / "train_seconds.json").exists() else float("nan")
        for r in runs
    )
    parts = [
        "## ALOHA pixel fidelity",
        "",
        f"Machine: {describe_machine()}. Command: `python scripts/benchmark_aloha.py all --train-episodes "
        f"{args.train_episodes} --heldout-episodes {args.heldout_episodes} --steps {args.steps}"
        + (f" --model-steps {args.model_steps}" if args.model_steps else "")
        + (f" --set {' '.join(args.set)}" if args.set else "")
        + (f" --finetune-steps {args.finetune_steps}" if args.finetune_steps else "")
        + (f" --finetune-set {' '.join(args.finetune_set)}" if args.finetune_set else "")
        + "` "
        f"(vrnn preset `configs/vrnn_aloha_pixels.yaml`, trained in {train_s / 60:.0f} min).",
        "",
        f"`{ALOHA_TASK}` recorded in LeRobot's ALOHA layout ({train_info['total_episodes']} training episodes, "
        f"{train_info['total_frames']} frames at {train_info['fps']} fps; {args.heldout_episodes} held-out episodes "
        f"from other seeds), policy `{args.policy}` on the 14 joint targets; the top camera at "
        f"**{args.height}x{args.width}** (rendered at that size instead of 480x640). PSNR (dB) and SSIM of the "
        "imagined frame against the real one, open loop under the recorded actions, next to repeating the last real "
        "frame and predicting the mean frame, on the same starts.",
        "",
        markdown.strip(),
    ]
    if strip is not None:
        parts += ["", f"![imagined vs real ALOHA frames]({strip.name})"]
    if args.notes:
        parts += ["", Path(args.notes).read_text().strip()]
    place_section(Path(args.doc), SECTION, AFTER_SECTION)
    update_doc_section(args.doc, SECTION, "\n".join(parts))


def place_section(doc: Path, name: str, after: str) -> None:
    """Empty ``name`` markers right after the ``after`` section (or the robot section) when the doc has none."""
    text = doc.read_text() if doc.exists() else ""
    start = f"<!-- {name}:start -->"
    anchors = [a for a in (f"<!-- {after}:end -->", "<!-- robot:end -->") if a in text]
    if start in text or not anchors:
        return
    head, tail = text.split(anchors[0], 1)
    atomic_write_bytes(doc, f"{head}{anchors[0]}\n\n{start}\n<!-- {name}:end -->{tail}".encode())


def run_all(args: argparse.Namespace) -> None:
    print("recording:", record(args))
    evaluate(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], object]] = {
    "record": record,
    "train": train,
    "evaluate": evaluate,
    "ceiling": one_step_ceiling,
    "all": run_all,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--out", default="outputs/benchmark_aloha")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--notes", default=None, help="a markdown file appended to the section (findings)")
    parser.add_argument("--train-episodes", type=int, default=30)
    parser.add_argument("--heldout-episodes", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100, help="steps per episode (2 s at 50 fps)")
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--policy", default="ou:theta=0.05,sigma=0.3")
    parser.add_argument("--model-steps", type=int, default=None, help="override the preset's trainer.max_steps")
    parser.add_argument("--set", nargs="*", default=[], help="more key=value overrides of the preset")
    parser.add_argument(
        "--finetune-steps", type=int, default=0, help="then fine-tune the preset's final weights this many steps"
    )
    parser.add_argument("--finetune-set", nargs="*", default=[], help="key=value overrides of the fine-tuning run")
    parser.add_argument("--best", action="store_true", help="evaluate the lowest-validation-loss checkpoint")
    parser.add_argument("--starts", type=int, default=0, help="held-out start steps scored (0: every start)")
    parser.add_argument("--change", type=float, default=0.05, help="ceiling: the oracle keeps pixels that moved less")
    args = parser.parse_args()
    torch.set_num_threads(1)
    COMMANDS[args.command](args)


if __name__ == "__main__":
    main()
