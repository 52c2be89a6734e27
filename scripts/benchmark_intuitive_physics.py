"""Intuitive physics of a V-JEPA 2 model on Playground possible/impossible pairs (docs/benchmarks.md, V-JEPA 2).

    MUJOCO_GL=egl OMP_NUM_THREADS=1 worldrl train --config vjepa2_playground
    MUJOCO_GL=egl OMP_NUM_THREADS=1 python scripts/benchmark_intuitive_physics.py \\
        --model runs/vjepa2_playground/model --kind collide --pairs 60 --out outputs/intuitive_physics

Pairs come from scene seeds the training data never used (``--seed``, default 10,000; collection used the env's
seeds 0..): each is one rollout rendered as simulated and with an impossible edit (vanish, teleport, pass-through),
cut to the model's clip (context frames before the edit, the rest after it). Detectors, each scoring both windows:
the trained model's surprise (masked prediction error of the later tubelets from the earlier ones), the same
architecture at random initialisation (what the architecture alone detects), and the pixel-change baseline (how far
the later frames are from the last context frame). Pairwise accuracy: the impossible window scores higher; chance
is 50%. Writes ``<out>/intuitive_physics.json``, ``<out>/intuitive_physics.png`` (accuracy per edit, 95% Wilson
intervals) and ``<out>/pair_examples.png`` (one pair of each edit), and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from worldrl.evaluation.intuitive_physics import PlausibilityPair, make_pairs, pixel_change_surprise, score_pairs
from worldrl.io import atomic_write_text
from worldrl.models import build_model, load_pretrained


def model_surprise(model, context_slots: int):
    """A surprise function for ``score_pairs``: the model's masked-prediction error, in batches of 16 windows."""
    from tensordict import TensorDict

    key = model.cameras[0]

    @torch.no_grad()
    def score(windows: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(windows), 16):
            clip = torch.as_tensor(windows[i : i + 16])
            obs = TensorDict({key: clip}, batch_size=clip.shape[:2]) if model.task.is_keyed else clip
            out.append(model.surprise(obs, context_slots=context_slots).numpy())
        return np.concatenate(out)

    return score


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(next(iter(results.values())))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(results)
    for j, (name, per_kind) in enumerate(results.items()):
        acc = np.array([per_kind[k][0] for k in kinds])
        lo = acc - np.array([per_kind[k][1] for k in kinds])
        hi = np.array([per_kind[k][2] for k in kinds]) - acc
        ax.bar(np.arange(len(kinds)) + j * width, acc, width, yerr=[lo, hi], capsize=3, label=name)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax.set_xticks(np.arange(len(kinds)) + width * (len(results) - 1) / 2, kinds)
    ax.set_ylabel("pairwise accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def example_strip(pairs: list[PlausibilityPair], path: Path) -> None:
    """One pair per edit kind: possible row above impossible row."""
    from PIL import Image

    rows = []
    for kind in sorted({p.kind for p in pairs}):
        pair = next(p for p in pairs if p.kind == kind)
        rows += [np.concatenate(list(pair.possible), 1), np.concatenate(list(pair.impossible), 1)]
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a vjepa2 checkpoint trained with train_encoder=true")
    parser.add_argument("--kind", default="collide", help="Playground scene kind of the pairs")
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=10_000, help="first scene seed (held out from training data)")
    parser.add_argument("--steps", type=int, default=100, help="simulated steps per rollout")
    parser.add_argument("--context-frames", type=int, default=4)
    parser.add_argument("--out", default="outputs/intuitive_physics")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model = load_pretrained(args.model).eval()
    target = args.context_frames  # equal halves: the predictor sees the first, predicts the second
    tubelet = model.tubelet
    if args.context_frames % tubelet or target % tubelet:
        raise SystemExit(f"--context-frames must be a multiple of the tubelet ({tubelet})")
    start = time.perf_counter()
    print(f"rendering {args.pairs} {args.kind} pairs from scene seed {args.seed} ...", flush=True)
    pairs = make_pairs(
        args.kind, args.pairs, steps=args.steps, context=args.context_frames, target=target, seed=args.seed
    )
    print(f"  {len(pairs)} pairs in {time.perf_counter() - start:.0f} s", flush=True)
    torch.manual_seed(0)
    random_model = build_model("vjepa2", model.config.to_dict(), model.task).eval()
    slots = args.context_frames // tubelet
    detectors = {
        "vjepa2 surprise (trained)": model_surprise(model, slots),
        "vjepa2 surprise (random init)": model_surprise(random_model, slots),
        "pixel change from last context frame": lambda w: pixel_change_surprise(w, args.context_frames),
    }
    results = {name: score_pairs(pairs, fn) for name, fn in detectors.items()}
    kinds = list(next(iter(results.values())))
    lines = [
        "| detector | " + " | ".join(f"{k} ({results[next(iter(results))][k][3]})" for k in kinds) + " |",
        "| --- |" + " --- |" * len(kinds),
    ]
    for name, per_kind in results.items():
        cells = [f"{a:.0%} [{lo:.0%}, {hi:.0%}]" for a, lo, hi, _ in (per_kind[k] for k in kinds)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    payload = {"model": args.model, "kind": args.kind, "seed": args.seed, "pairs": len(pairs), "results": results}
    atomic_write_text(out / "intuitive_physics.json", json.dumps(payload, indent=2))
    plot(results, out / "intuitive_physics.png")
    example_strip(pairs, out / "pair_examples.png")
    print(f"wrote {out}/intuitive_physics.json, .png and pair_examples.png ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
