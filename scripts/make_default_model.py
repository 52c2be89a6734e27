"""Rebuild the world model bundled in the package (what `gym.make("WorldModel-v0")` loads with no arguments).

Recipe, fully seeded: record Pendulum-v1 with the OU policy and train the `ensemble` preset
configs/ensemble_pendulum.yaml, then copy the final checkpoint into worldrl/assets/default_model/ and
write a fidelity report next to it. Run it from the repository root:

    .venv/bin/python scripts/make_default_model.py

The result matches the shipped files up to floating-point differences between machines (thread counts and
CPU kernels change the last bits of the trained weights).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

from worldrl.data import LeRobotDatasetReader, split_episodes  # noqa: E402
from worldrl.envs.default_model import default_model_path  # noqa: E402
from worldrl.evaluation import evaluate_fidelity  # noqa: E402
from worldrl.models import load_pretrained  # noqa: E402
from worldrl.models.checkpoint import save_pretrained  # noqa: E402
from worldrl.training.run import load_config, train_from_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "configs" / "ensemble_pendulum.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "default_model", help="scratch directory")
    parser.add_argument("--dest", type=Path, default=default_model_path(), help="where the checkpoint is installed")
    args = parser.parse_args()

    run_dir = args.work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = load_config(
        PRESET, [f"output_dir={run_dir}", f"data.root={args.work / 'pendulum'}", "data.collect.overwrite=true"]
    )
    result = train_from_config(cfg)

    model = load_pretrained(result.model_path)
    save_pretrained(model, args.dest)  # atomic: the old bundled model stays until the new one is complete

    reader = LeRobotDatasetReader(cfg["data"]["root"])
    _, val = split_episodes(range(reader.num_episodes), cfg["data"]["val_fraction"], cfg["seed"])
    report = evaluate_fidelity(model, reader, val, horizons=(1, 10, 50), progress=True, name="default ensemble")
    (args.dest.parent / "default_model_fidelity.md").write_text(
        f"# Bundled default model\n\nMade by `python scripts/make_default_model.py` from `{PRESET.relative_to(REPO)}`.\n"
        f"Open-loop fidelity on {len(val)} held-out episodes:\n\n{report.to_markdown()}\n"
    )
    print(report.to_markdown())
    print(json.dumps({"installed": str(args.dest), "train_seconds": round(result.seconds, 1)}))


if __name__ == "__main__":
    main()
