"""Multimodal generation: generation speed (frames/s) of a trained ``multimodal`` checkpoint per decoding mode, and
the contact onsets of its predicted audio against the scenes' true contacts on held-out episodes.

Speed: greedy, sampled (temperature 0.8, top-k 50, top-p 0.95) and beam search (3 beams) continuations of
``--frames`` frames from an 8-frame context, at batch 1 and batch 16, median of ``--repeats`` runs, one thread; the
ratios to greedy at batch 1 are measured side by side in the same process. Onsets: ``BenchmarkSuite`` on windows
of the held-out episodes (the trainer's split): onsets detected in the model's open-loop audio (greedy rollouts, and
``--samples`` rollouts sampled at temperature 1 without truncation) against the event log's contacts (precision/recall within one
frame), beside the same detector on the true audio (its ceiling) and "repeat the last frame's audio" (no onsets),
with the log-mel error against silence and repeat-last. Writes the "multimodal-generation" section of
docs/benchmarks.md and an example (mp4 + wav + png) under docs/.

    MUJOCO_GL=egl python scripts/benchmark_generation.py --checkpoint runs/multimodal_playground_cpu_v19/model \\
        --dataset outputs/datasets/playground_collide64_e240
    python scripts/benchmark_generation.py --checkpoint DIR --dataset DATA --quick --doc /tmp/b.md --example-dir /tmp
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from worldrl.data import LeRobotDatasetReader, split_episodes
from worldrl.evaluation.benchmark_suite import BenchmarkSuite, scene_windows
from worldrl.evaluation.report import describe_machine, update_doc_section
from worldrl.models import load_pretrained
from worldrl.models.multimodal.generator import VideoGenerator

MODES = {
    "greedy": {"temperature": 0.0},
    "sampled (T 0.8, top-k 50, top-p 0.95)": {"temperature": 0.8, "top_k": 50, "top_p": 0.95},
    "beam search (3 beams)": {"beam_size": 3},
}
GREEDY_WORDS = {"mean": "the mixture's mean", "mode": "the most likely component's mean"}
"""How the doc names each greedy-audio rule (``audio_mixture.GREEDY_AUDIO``)."""


def generation_speed(model, window, frames: int, batch: int, mode: dict, repeats: int) -> float:
    """Median frames/s of continuing ``batch`` windows for ``frames`` frames (context = the model's)."""
    C = model.config.context_length
    w = window
    rates = []
    for r in range(repeats):
        gen = VideoGenerator(model, max_length=frames, generator=torch.Generator().manual_seed(r), **mode)
        start = time.perf_counter()
        gen.generate_from_prompt(
            w.frames[:batch, :C], frames, prompt_audio=w.audio[:batch, :C], prompt_state=w.state[:batch, :C]
        )
        rates.append(batch * frames / (time.perf_counter() - start))
    return statistics.median(rates)


def sampled_onsets(model, windows, horizons: list[int], seeds: int) -> dict[str, dict]:
    """Contact-onset precision/recall of sampled open-loop audio pooled over ``seeds`` seeds (``sampled``), and the
    true audio's and chance onsets on the same windows (first seed). Sampled from the model's own distribution
    (temperature 1, no top-k / top-p truncation): a contact is a rare outcome of any one step (a few percent), and
    the generator's default nucleus (top-p 0.95) would cut exactly those components, so onsets would say nothing
    about whether the model knows when contacts sound."""
    pooled: dict[str, dict] = {}
    for seed in range(seeds):
        suite = BenchmarkSuite(
            model, metrics=["contact_onsets"], horizons=horizons, temperature=1.0, top_k=0, top_p=1.0
        )
        suite.generator.generator = torch.Generator().manual_seed(seed)
        found = suite.benchmark_physics_consistency(windows).get("contact_onsets", {})
        for name, key in (("sampled", "model"), ("true_audio", "true_audio"), ("chance", "chance")):
            if name != "sampled" and seed > 0:
                continue
            for field in ("matched", "predicted", "true"):
                pooled.setdefault(name, {})[field] = pooled.get(name, {}).get(field, 0) + found.get(key, {}).get(
                    field, 0
                )
    for scores in pooled.values():
        matched, predicted, true = scores["matched"], scores["predicted"], scores["true"]
        scores.update(precision=matched / predicted if predicted else None, recall=matched / true if true else None)
    return pooled


def onset_row(label: str, s: dict) -> str:
    """A markdown row of onset scores (precision / recall "n/a" where their denominator is 0)."""
    p = "n/a" if s["precision"] is None else f"{s['precision']:.2f}"
    r = "n/a" if s["recall"] is None else f"{s['recall']:.2f}"
    return f"| {label} | {p} | {r} | {s['predicted']} | {s['true']} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/multimodal_playground_cpu_v19/model")
    parser.add_argument("--dataset", default="outputs/datasets/playground_collide64_e240")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="the trainer's split (held-out episodes)")
    parser.add_argument("--seed", type=int, default=0, help="the trainer's split seed")
    parser.add_argument("--frames", type=int, default=20, help="frames per generation for the speed table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument(
        "--stride", type=int, default=5, help="steps between window starts (each contact is met from several contexts)"
    )
    parser.add_argument("--samples", type=int, default=3, help="sampled (temperature 1) rollouts per window")
    parser.add_argument("--label", default="", help="what the checkpoint is (printed in the doc)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (fewer frames and windows)")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--example-dir", default="docs", help="where multimodal_generation.mp4/.wav/.png go")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.frames, args.repeats, args.horizons, args.samples = 3, 1, [1, 3], 1

    model = load_pretrained(args.checkpoint)
    reader = LeRobotDatasetReader(args.dataset)
    held_out = sorted(int(e) for e in split_episodes(list(range(reader.num_episodes)), args.val_fraction, args.seed)[1])
    suite = BenchmarkSuite(
        model, metrics=["audio_mel", "contact_onsets", "physics_state"], horizons=args.horizons, progress=True
    )
    stride = args.stride if not args.quick else 1000
    windows = scene_windows(args.dataset, held_out, suite.window_length, stride, batch_size=16)
    if args.quick:
        windows = windows[:1]

    # ---------------------------------------------------------------- speed, side by side
    speed = {}
    for name, mode in MODES.items():
        for batch in (1, 16):
            if batch > len(windows[0].frames) or (batch > 1 and "beam" in name):
                continue  # beam search runs one sequence at a time
            speed[(name, batch)] = generation_speed(model, windows[0], args.frames, batch, mode, args.repeats)
            print(f"{name:<40} batch {batch:>2}: {speed[(name, batch)]:.1f} frames/s")
    base = speed[("greedy", 1)]

    # ---------------------------------------------------------------- onsets, audio and physics on held-out windows
    results = suite.run_all_benchmarks(windows) if not args.quick else suite.benchmark_physics_consistency(windows)
    sampled = sampled_onsets(model, windows, args.horizons, args.samples)["sampled"]
    # the next frame only, after the true context: does the audio head know a contact comes next?
    next_windows = scene_windows(args.dataset, held_out, model.config.context_length + 1, 1, batch_size=32)
    next_frame = sampled_onsets(model, next_windows if not args.quick else next_windows[:1], [1], args.samples)

    # ---------------------------------------------------------------- example
    example = VideoGenerator(model, temperature=0.0, max_length=60).generate_with_physics(
        {"scene": "collide", "scene_seed": 7}, 40 if not args.quick else 3, context_steps=model.config.context_length
    )
    files = example.save(Path(args.example_dir) / "multimodal_generation.mp4")
    print(f"wrote {', '.join(str(f) for f in files)}")

    command = "MUJOCO_GL=egl python " + " ".join(shlex.quote(a) for a in sys.argv)
    H = args.horizons
    onsets = results.get("contact_onsets", {})
    lines = [
        "## Multimodal generation (`VideoGenerator`, `BenchmarkSuite` contact onsets)",
        "",
        f"`{command}` on {describe_machine()}; the CPUs were shared with other jobs. Checkpoint `{args.checkpoint}`"
        f"{' (' + args.label + ')' if args.label else ''}: {model.config.embed_dim}-wide, depth "
        f"{model.config.depth}, {model.config.img_size}px frames as "
        f"{model.config.tokens_per_frame} FSQ codes of a {model.config.vocab_size}-code vocabulary, context "
        f"{model.config.context_length}; {len(held_out)} held-out episodes of `{args.dataset}` (the trainer's split).",
        "",
        f"Generation speed: {args.frames} new frames after an {model.config.context_length}-frame context, median of "
        f"{args.repeats}; one model call per frame (no key/value cache: the causal transformer reruns on the window).",
        "",
        "| decoding | batch | frames/s | vs greedy, batch 1 |",
        "|---|---:|---:|---:|",
    ]
    for (name, batch), rate in speed.items():
        lines.append(f"| {name} | {batch} | {rate:.1f} | {rate / base:.2f}x |")
    lines += [
        "",
        f"Contact onsets in the open-loop audio ({results['setup']['windows']} windows starting every {stride} steps, "
        f"rollouts of {max(H)} frames after {suite.context} real ones with the recorded actions): spectral-flux "
        "onsets matched to the event log's contacts within one frame. The audio head predicts a mixture of "
        f"{model.config.audio_components} spectra; greedy rollouts feed back the model's greedy audio (rule "
        f"{model.config.greedy_audio!r}: {GREEDY_WORDS[model.config.greedy_audio]}), sampled ones "
        f"draw a component from the model's own distribution (temperature 1, no top-k / top-p truncation, which "
        f"would cut a contact's few-percent component; {args.samples} seeds, pooled). The "
        "detector on the true audio is the ceiling; repeating the last frame's audio predicts no onset; chance onsets "
        "(each frame with the windows' true contact rate) show what precision is free.",
        "",
        "| audio | precision | recall | onsets | true contacts |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {
        "model": "model, greedy (open loop)",
        "sampled": f"model, sampled (open loop, {args.samples} seeds)",
        "true_audio": "true audio (detector ceiling)",
        "repeat_last": "repeat last",
        "chance": "chance (random frames at the true contact rate)",
    }
    onsets = {**onsets, "sampled": sampled}
    for name, label in labels.items():
        if onsets.get(name):
            lines.append(onset_row(label, onsets[name]))
    lines += [
        "",
        "The next frame only, after the true context (a window at every step of the held-out episodes; "
        f"{next_frame['true_audio']['true']} contacts): does the audio head know a contact comes next?",
        "",
        "| next frame | precision | recall | onsets | true contacts |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (
        ("sampled", f"model, sampled ({args.samples} seeds)"),
        ("true_audio", "true audio (detector ceiling)"),
        ("chance", "chance (random frames at the true contact rate)"),
    ):
        lines.append(onset_row(label, next_frame[name]))
    for metric, title in (("audio_mel_mae", "log-mel MAE (log10)"), ("position_error", "position error (m)")):
        if metric in results:
            lines += ["", f"| {title} | " + " | ".join(f"h={h}" for h in H) + " |", "|---|" + "---:|" * len(H)]
            for predictor, cells in results[metric].items():
                lines.append(
                    f"| {predictor} | " + " | ".join(f"{cells.get(str(h), float('nan')):.3g}" for h in H) + " |"
                )
    lines += ["", f"Example: `{files[0]}` (+ `.wav`, `.png`: generated frames above, MuJoCo's below)."]
    lines += [f"note: {n}" for n in results.get("notes", [])]
    body = "\n".join(lines)
    print(body)
    update_doc_section(args.doc, "multimodal-generation", body)


if __name__ == "__main__":
    main()
