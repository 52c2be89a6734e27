"""``worldrl evaluate-vlm --model DIR --questions DIR --split test``: accuracy per question type with 95% CIs,
chance and answer-prior baselines beside it, per-item predictions and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="fusion checkpoint (train-vlm's out/model), or a Gemma 3 source")
    parser.add_argument(
        "--questions", required=True, nargs="+", help="question set(s): `worldrl qa generate` output or BLINK's layout"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default=None, help="output directory (default: MODEL/eval-SPLIT)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    from worldrl.evaluation.vlm.evaluate import evaluate_vlm
    from worldrl.models.fusion import WorldGemma
    from worldrl.training.trainer import resolve_device

    model = WorldGemma.from_pretrained(args.model, enable_world=False, verbose=False)
    model.to(resolve_device(args.device))
    out = Path(args.out) if args.out else Path(args.model) / f"eval-{args.split}"
    questions = args.questions[0] if len(args.questions) == 1 else args.questions
    result = evaluate_vlm(model, questions, args.split, out=out, batch_size=args.batch_size)
    print(result.summary())
    print(f"predictions, results.json and accuracy.png -> {out}")
    return 0
