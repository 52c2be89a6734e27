"""Fusion family experiment (docs/benchmarks.md, "Fusion family"): does Gemma 3 answer physics questions better with
world tokens?

The same tiny random Gemma 3 (one base directory: the same tokenizer and initial weights for every variant) is
trained for the same steps on the same train split with the same batch order, then scored on the test split:

* ``off``   - plain Gemma 3: the last context frame only
* ``wan``   - + world tokens from a (random, frozen) Cosmos-Predict2 VAE over the 5 last context frames
* ``vrnn0`` - + world tokens from a worldrl vrnn over the 8 context frames (world_steps=0)
* ``vrnn2`` - the same vrnn, + 2 imagined future latents (world_steps=2)
* ``vjepa0`` / ``vjepa2`` - world tokens from a *trained* worldrl V-JEPA 2 (``--vjepa2 DIR``, a checkpoint of
  ``worldrl train``), 8 context frames, + 0 / 2 imagined steps of its action-conditioned predictor (zero actions)

Usage (variants can run in separate processes, then ``--report`` writes the table from what is there)::

    worldrl qa generate --items 280 --seed 1 --image-size 32 --out qa1   # (and --seed 2 --out qa2)
    python scripts/benchmark_fusion.py --questions qa1 qa2 --work runs/fusion_bench --variants off,wan
    python scripts/benchmark_fusion.py --questions qa1 qa2 --work runs/fusion_bench --variants vrnn0,vrnn2
    python scripts/benchmark_fusion.py --questions qa1 qa2 --work runs/fusion_bench --variants vjepa0,vjepa2 \
        --vjepa2 runs/vjepa2_playground/model
    python scripts/benchmark_fusion.py --questions qa1 qa2 --work runs/fusion_bench --report --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

VARIANTS = {
    "off": {"enable_world": False},
    "wan": {"enable_world": True, "world": "wan", "world_steps": 0},
    "vrnn0": {"enable_world": True, "world": "vrnn", "world_steps": 0},
    "vrnn2": {"enable_world": True, "world": "vrnn", "world_steps": 2},
    "vjepa0": {"enable_world": True, "world": "vjepa2", "world_steps": 0},
    "vjepa2": {"enable_world": True, "world": "vjepa2", "world_steps": 2},
}
LABELS = {
    "off": "Gemma 3 alone (last context frame)",
    "wan": "+ world tokens: Cosmos-Predict2 VAE (random, frozen), 5 frames",
    "vrnn0": "+ world tokens: worldrl vrnn (untrained), 8 frames, K=0",
    "vrnn2": "+ world tokens: same vrnn, K=2 imagined steps",
    "vjepa0": "+ world tokens: worldrl V-JEPA 2 (trained on collide video), 8 frames, K=0",
    "vjepa2": "+ world tokens: same V-JEPA 2, K=2 imagined steps",
}


def prepare_base(questions: list[str], work: Path, seed: int) -> dict[str, str]:
    """One tiny Gemma 3, one VAE, one vrnn for every variant (built once, reused)."""
    import gymnasium as gym
    import numpy as np

    from worldrl.evaluation.vlm.items import read_vlm_items
    from worldrl.models import TaskSpec, build_model
    from worldrl.models.fusion.tiny import build_tiny_gemma, build_tiny_wan_vae

    base = work / "base"
    paths = {"gemma": base / "gemma", "wan": base / "wan", "vrnn": base / "vrnn"}
    if not paths["gemma"].is_dir():
        items = read_vlm_items(questions, "train")
        build_tiny_gemma(paths["gemma"], [f"{i.question} {' '.join(i.choices)} {i.answer}" for i in items], seed=seed)
    if not paths["wan"].is_dir():
        build_tiny_wan_vae(paths["wan"], seed=seed)
    if not paths["vrnn"].is_dir():
        task = TaskSpec(gym.spaces.Box(0, 255, (32, 32, 3), np.uint8), gym.spaces.Box(-1, 1, (1,), np.float32))
        tiny = {"latent_dim": 8, "hidden_dim": 32, "context_dim": 16, "max_components": 4, "image_size": 32}
        torch.manual_seed(seed)
        build_model("vrnn", tiny, task).save_pretrained(str(paths["vrnn"]))
    return {k: str(v) for k, v in paths.items()}


def run_variant(name: str, questions: list[str], work: Path, base: dict[str, str], args: argparse.Namespace) -> dict:
    from worldrl.evaluation.vlm.evaluate import evaluate_vlm
    from worldrl.evaluation.vlm.finetune import VLMTrainConfig, train_vlm
    from worldrl.models.fusion import WorldGemma

    spec = VARIANTS[name]
    world = None
    if spec["enable_world"]:
        kind = {"wan": "diffusers", "vrnn": "worldrl", "vjepa2": "worldrl"}[spec["world"]]
        if spec["world"] not in base:
            raise SystemExit(f"variant {name} needs --{spec['world']} (a trained worldrl checkpoint directory)")
        world = {"kind": kind, "source": base[spec["world"]], "image_size": 32}
    config = VLMTrainConfig(
        questions=questions,
        out=str(work / name),
        gemma=base["gemma"],
        enable_world=spec["enable_world"],
        world=world or {},
        world_steps=spec.get("world_steps", 0),
        stage="gemma",
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        log_every=25,
        save_every=args.steps,
        device="cpu",
    )
    print(f"== {name}: {LABELS[name]}", flush=True)
    summary = train_vlm(config, progress=True)
    model = WorldGemma.from_pretrained(summary["model"], verbose=False)
    start = time.perf_counter()
    result = evaluate_vlm(model, questions, "test", out=work / name / "eval-test")
    record = {
        "variant": name,
        "train_seconds": summary["seconds"],
        "seconds_per_step": summary["seconds"] / summary["steps"],
        "first_loss": summary["first_loss"],
        "last_loss": summary["last_loss"],
        "eval_seconds": time.perf_counter() - start,
        "per_type": result.table,
    }
    (work / name / "bench.json").write_text(json.dumps(record, indent=1))
    print(result.summary(), flush=True)
    return record


def time_steps(work: Path, questions: list[str], names: list[str], batch_size: int, repeats: int) -> dict[str, float]:
    """Median seconds of one training step (forward + backward, batch ``batch_size``) per trained variant, measured
    round-robin in one process so that the machine's load hits every variant alike."""
    import statistics

    from worldrl.evaluation.vlm.items import read_vlm_items
    from worldrl.evaluation.vlm.prompting import build_batch
    from worldrl.evaluation.vlm.scoring import world_frame_count
    from worldrl.models.fusion import WorldGemma

    items = read_vlm_items(questions, "train")[:batch_size]
    models = {n: WorldGemma.from_pretrained(str(work / n / "model"), verbose=False).train() for n in names}
    batches = {
        n: build_batch(m.processor, [(i, i.answer) for i in items], world_frame_count(m, items), 0)
        for n, m in models.items()
    }
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats + 1):  # the first round warms up
        for n, model in models.items():
            start = time.perf_counter()
            model(**batches[n]).loss.backward()
            model.zero_grad(set_to_none=True)
            if r:
                times[n].append(time.perf_counter() - start)
    return {n: statistics.median(v) for n, v in times.items()}


def _cell(row: dict) -> str:
    return f"{row['accuracy']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def report(work: Path, args: argparse.Namespace) -> str:
    from worldrl.evaluation.report import describe_machine

    records = {
        n: json.loads((work / n / "bench.json").read_text()) for n in VARIANTS if (work / n / "bench.json").exists()
    }
    if not records:
        raise SystemExit(f"no variant results under {work}")
    names = list(records)
    first = records[names[0]]["per_type"]
    kinds = list(first)
    head = "| type | n | chance | answer prior | " + " | ".join(names) + " |"
    lines = [head, "|---|---:|---:|---:|" + "---|" * len(names)]
    for kind in kinds:
        row = first[kind]
        chance = "-" if math.isnan(row["chance"]) else f"{row['chance']:.2f}"
        cells = " | ".join(_cell(records[n]["per_type"][kind]) for n in names)
        lines.append(f"| {kind} | {row['n']} | {chance} | {row['answer_prior']:.2f} | {cells} |")
    step = time_steps(work, args.questions, names, args.batch_size, args.timing_repeats)
    speed = [
        f"| variant | train loss first -> last | step time (median of {args.timing_repeats}, side by side) | vs off |",
        "|---|---|---:|---:|",
    ]
    for n in names:
        r = records[n]
        ratio = f"{step[n] / step['off']:.2f}x" if "off" in step else "-"
        speed.append(
            f"| {n}: {LABELS[n]} | {r['first_loss']:.2f} -> {r['last_loss']:.2f} | {1000 * step[n]:.0f} ms | {ratio} |"
        )
    return "\n".join(lines), "\n".join(speed), describe_machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", nargs="+", required=True)
    parser.add_argument("--work", default="runs/fusion_bench")
    parser.add_argument("--variants", default="off,wan,vrnn0,vrnn2")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-repeats", type=int, default=10)
    parser.add_argument("--vjepa2", default=None, help="trained worldrl vjepa2 checkpoint for vjepa0/vjepa2")
    parser.add_argument("--report", action="store_true", help="only write the table from the finished variants")
    parser.add_argument("--doc", default=None, help="write the Fusion family section of this markdown file")
    parser.add_argument("--notes", default=None, help="markdown file appended to the section (what the numbers say)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    if not args.report:
        base = prepare_base(args.questions, work, args.seed)
        if args.vjepa2:
            base["vjepa2"] = args.vjepa2
        for name in args.variants.split(","):
            run_variant(name, args.questions, work, base, args)
    accuracy, speed, machine = report(work, args)
    print(accuracy)
    print(speed)
    if args.doc:
        from worldrl.evaluation.report import update_doc_section

        body = DOC_TEMPLATE.format(accuracy=accuracy, speed=speed, machine=machine, steps=args.steps,
                                   batch=args.batch_size, questions=" ".join(Path(q).name for q in args.questions))  # fmt: skip
        if args.notes:
            body += "\n" + Path(args.notes).read_text()
        update_doc_section(args.doc, "fusion", body)


DOC_TEMPLATE = """\
## Fusion family: Gemma 3 with world tokens on the Playground's physics questions (CPU, tiny)

`python scripts/benchmark_fusion.py --questions {questions} --steps {steps} --batch-size {batch}` (question sets from
`worldrl qa generate --items 280 --image-size 32 --seed N`, pooled), on {machine}.
Tiny random Gemma 3 (text hidden 64, 2 layers; SigLIP 2 layers at 32 px; tokenizer trained on the train questions),
the same base weights, steps ({steps} x batch {batch}) and batch order for every variant; Gemma and its vision tower
train, the world branch stays frozen, the projector trains. Multiple choice is scored by the log-likelihood of each
option; quantitative items by greedy generation. Test split, accuracy [95% Wilson CI]; chance and the answer prior
(most common train answer per type; stay-put for quantitative) on the same items:

{accuracy}

{speed}
"""


if __name__ == "__main__":
    main()
