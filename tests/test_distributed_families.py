"""``worldrl train`` unchanged under ``torchrun --nproc_per_node 2`` for every registered family, DDP and FSDP2.

One launch runs this file as a script: each family's tiny config on a shared pixel recording, once per strategy,
through the real CLI. The checks: the run finishes on both ranks, rank 0 alone wrote the metrics (one record
per step), the checkpoint records the world size, and the model loads back.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from worldrl.cli import main as worldrl_main
from worldrl.models import available_families, get_family, load_pretrained

FAMILIES = [
    name for name in available_families() if get_family(name).model_class.__module__.startswith("worldrl.models.")
]
STRATEGIES = ("ddp", "fsdp")
STEPS = 2


def run_config(recording: Path, out: Path, family: str, strategy: str) -> Path:
    config = {
        "output_dir": str(out),
        "seed": 0,
        "data": {"root": str(recording), "window": 4},
        "model": {"family": family, **get_family(family).config_class.tiny()},
        "trainer": {
            "max_steps": STEPS,
            "batch_size": 4,
            "eval_every": STEPS,
            "log_every": 1,
            "progress": False,
            "device": "cpu",
            "strategy": strategy,
        },
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


RGB_RUNS = {"ddp": "0", "fsdp": "2"}
"""Gradient balancing (the vrnn presets' ``rgb``): DDP averages the balanced gradients; FSDP refuses (exit 2)."""


def worker(recording: Path, runs: Path) -> None:
    """Every family x strategy through the CLI; a failure is written next to the run, the others go on."""
    import torch.distributed as dist

    faulthandler.dump_traceback_later(360, exit=True)  # a hung rank shows where it waits before torchrun is killed
    dist.init_process_group("gloo")  # one group for all runs (the CLI leaves a group it did not create alone)
    jobs = [(family, strategy, []) for family in FAMILIES for strategy in STRATEGIES]
    jobs += [("vrnn", f"{strategy}-rgb", ["trainer.gradient_balancing=rgb"]) for strategy in RGB_RUNS]
    for family, name, overrides in jobs:
        out = runs / f"{family}-{name}"
        config = run_config(recording, out, family, name.removesuffix("-rgb"))
        code = worldrl_main(["train", "--config", str(config), *overrides])
        if int(os.environ["RANK"]) == 0:
            (runs / f"{family}-{name}.exit").write_text(str(code))
    dist.barrier()  # leave together: a rank must not tear the group down under one still in its last run
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_distributed import torchrun

    sys.path.insert(0, str(Path(__file__).parent))
    from _models import record_pixel_pendulum

    base = tmp_path_factory.mktemp("families")
    recording = record_pixel_pendulum(base / "ip_pixels")
    torchrun(__file__, str(recording), str(base))
    return base


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_on_two_ranks(runs: Path, family: str, strategy: str) -> None:
    out = runs / f"{family}-{strategy}"
    assert (runs / f"{family}-{strategy}.exit").read_text() == "0"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, STEPS + 1))
    state = json.loads((out / "checkpoints" / f"step_{STEPS:07d}" / "trainer_state.json").read_text())
    assert state["distributed"] == {"strategy": strategy, "world_size": 2}
    assert load_pretrained(out / "model").config.family == family


@pytest.mark.parametrize("strategy", RGB_RUNS)
def test_gradient_balancing_under_each_strategy(runs: Path, strategy: str) -> None:
    assert (runs / f"vrnn-{strategy}-rgb.exit").read_text() == RGB_RUNS[strategy]
    if strategy == "ddp":
        assert load_pretrained(runs / "vrnn-ddp-rgb" / "model").config.family == "vrnn"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
