"""``worldrl qa generate``: physics questions with exact answers from MuJoCo scenes; ``worldrl qa show``: a summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from worldrl.errors import InputNotFoundError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="qa_command", metavar="ACTION", required=True)
    gen = sub.add_parser("generate", help="generate a balanced question set (parquet + images + clips)")
    gen.add_argument(
        "--scenes",
        nargs="+",
        default=["drop", "collide", "roll", "dominoes", "support"],
        help="scene kinds, drawn in turn",
    )
    gen.add_argument("--items", type=int, required=True, help="items in total (split evenly over 7 types)")
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--image-size", type=int, default=64)
    gen.add_argument("--max-scenes", type=int, default=None, help="give up after this many scenes")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing question set")
    gen.add_argument("--quiet", action="store_true")
    show = sub.add_parser("show", help="counts, balance and baselines of a question set, and a few items")
    show.add_argument("dir", help="question set directory")
    show.add_argument("--split", default=None)
    show.add_argument("--examples", type=int, default=3)


def _generate(args: argparse.Namespace) -> int:
    from worldrl.evaluation.physics_qa.generate import QAConfig, generate

    config = QAConfig(
        out=args.out,
        items=args.items,
        scenes=tuple(args.scenes),
        seed=args.seed,
        image_size=args.image_size,
        max_scenes=args.max_scenes,
        overwrite=args.overwrite,
    )
    summary = generate(config, progress=not args.quiet)
    print(
        f"{summary.items} items from {summary.scenes} scenes in {summary.seconds:.1f}s "
        f"({summary.items_per_second:.2f} items/s) -> {summary.out}"
    )
    if summary.short:
        print(f"short of quota (scene budget exhausted): {summary.short}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from worldrl.evaluation.physics_qa.reader import read_items

    meta_path = Path(args.dir) / "meta.json"
    if not meta_path.exists():
        raise InputNotFoundError(f"no question set at {args.dir} (no meta.json)")
    items = read_items(args.dir, args.split)
    meta = json.loads(meta_path.read_text())
    print(f"{len(items)} items; per type {meta['per_type']}")
    for kind, b in meta["baselines"].items():
        print(f"  {kind:15s} chance {b['chance']:.3f}  answer prior {b['answer_prior']:.3f} ({b['answer_prior_rule']})")
    for item in items[: args.examples]:
        print(f"[{item.type}] {item.question} {list(item.choices)} -> {item.answer}")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"generate": _generate, "show": _show}[args.qa_command](args)
