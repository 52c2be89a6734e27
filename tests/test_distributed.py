"""DDP and FSDP2 training on 2 CPU processes (gloo) against one process, and resume under the same world size.

The two-process runs go through ``torchrun`` running this file as a script (``worker``); each launch does
several runs to keep the process start-ups few. The model is a real family (the ensemble, without bootstrap
noise) on a real recording (Pendulum-v1), with windows that never need padding, so each rank's loss is the mean
over the same number of terms and 2 ranks x batch B is mathematically 1 process x batch 2B: the parameters
must agree to float32 reduction-order rounding (``atol=1e-5``, ``rtol=1e-4`` after 6 AdamW steps).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from worldrl.errors import CheckpointError, ConfigError
from worldrl.training import Trainer, TrainerConfig
from worldrl.training.distributed import (
    FullyShardedDataParallel,
    LossModule,
    ProcessInfo,
    check_batch_divides,
    destroy_distributed,
)

STEPS, HALF, RANK_BATCH = 6, 3, 4
TINY_ENSEMBLE = {"num_members": 2, "num_elites": 2, "hidden_dims": [16, 16]}
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}


# --------------------------------------------------------------------------- what every process runs
def make_trainer(data: Path, out: Path, strategy: str, batch_size: int, max_steps: int) -> Trainer:
    """The ensemble on ``data`` (seeded: every process builds identical initial weights)."""
    from worldrl.data import LeRobotDatasetReader, WindowDataset
    from worldrl.models import TaskSpec, build_model

    reader = LeRobotDatasetReader(data)
    keys = {"obs": "observation.state", "action": "action", "reward": "next.reward", "terminated": "next.terminated"}
    windows = WindowDataset(reader, keys=keys, window=3, pad_end=False)
    torch.manual_seed(0)
    model = build_model("ensemble", TINY_ENSEMBLE, TaskSpec.from_env_id("Pendulum-v1"))
    # every normaliser from the data: one fitted from the first batch would differ between ranks
    stats = {role: windows.stats(role) for role in ("obs", "action", "reward")}
    obs = torch.stack([windows[i]["obs"] for i in range(len(windows))])
    deltas = (obs[:, 1:] - obs[:, :-1]).reshape(-1, obs.shape[-1])
    stats["delta"] = {"mean": deltas.mean(0).numpy(), "std": deltas.std(0).numpy()}
    model.fit_normalization(stats)
    config = TrainerConfig(
        max_steps=max_steps,
        batch_size=batch_size,
        lr=1e-2,
        strategy=strategy,
        device="cpu",
        eval_every=0,
        checkpoint_every=HALF,
        log_every=1,
        progress=False,
    )
    return Trainer(model, windows, None, config, out)


def worker(argv: list[str]) -> None:
    """``torchrun ... test_distributed.py DATA OUT [--resume]``: the 2-rank runs of the tests below."""
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    faulthandler.dump_traceback_later(360, exit=True)  # a hung rank shows where it waits before torchrun is killed
    world = int(os.environ["WORLD_SIZE"])
    for strategy in ("ddp", "fsdp"):
        if args.resume:  # fresh processes continue the interrupted runs
            make_trainer(args.data, args.out / f"{strategy}_half", strategy, world * RANK_BATCH, STEPS).fit(True)
            continue
        make_trainer(args.data, args.out / f"{strategy}_full", strategy, world * RANK_BATCH, STEPS).fit()
        make_trainer(args.data, args.out / f"{strategy}_half", strategy, world * RANK_BATCH, HALF).fit()
    torch.distributed.barrier()  # leave together (see test_distributed_families.worker)
    destroy_distributed()


def torchrun(*args: str, nproc: int = 2, timeout: float = 420) -> str:
    """Run ``torchrun`` on this machine; its output. A launch past ``timeout`` is killed with its worker
    processes (its own session) and fails the test with what it printed so far."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            pytest.fail(f"torchrun ran past {timeout}s; its output:\n{output[-6000:]}")
    assert proc.returncode == 0, output[-6000:]
    return output


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


# --------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from worldrl.data.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("dist") / "pendulum"
    collect(CollectConfig("Pendulum-v1", out, episodes=3, max_episode_steps=12, seed=3), progress=False)
    return out


@pytest.fixture(scope="module")
def two_rank_runs(recording: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Launch 1: full and interrupted runs of each strategy; launch 2: fresh processes resume the latter."""
    out = tmp_path_factory.mktemp("runs")
    torchrun(__file__, str(recording), str(out))
    torchrun(__file__, str(recording), str(out), "--resume")
    return out


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_of_batch_b_equal_one_process_of_batch_2b(
    two_rank_runs: Path, recording: Path, tmp_path: Path, strategy: str
) -> None:
    reference = make_trainer(recording, tmp_path / "one", "none", 2 * RANK_BATCH, STEPS)
    initial = {k: v.clone() for k, v in reference.model.state_dict().items()}
    reference.fit()
    one, two = weights(tmp_path / "one"), weights(two_rank_runs / f"{strategy}_full")
    assert one.keys() == two.keys()
    moved = max(float((one[k] - initial[k]).abs().max()) for k in one if one[k].is_floating_point())
    assert moved > 1e-3  # the runs trained, so agreeing means something
    for key in one:
        torch.testing.assert_close(two[key], one[key], **TOLERANCE, msg=f"{strategy}: {key} differs")
    # only rank 0 logged: one record per step
    lines = (two_rank_runs / f"{strategy}_full" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == STEPS


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_resumed_two_rank_run_equals_uninterrupted(two_rank_runs: Path, strategy: str) -> None:
    resumed, full = weights(two_rank_runs / f"{strategy}_half"), weights(two_rank_runs / f"{strategy}_full")
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], atol=0, rtol=0, msg=f"{strategy}: {key} differs")


def test_resume_under_another_world_size_is_refused(two_rank_runs: Path, recording: Path) -> None:
    trainer = make_trainer(recording, two_rank_runs / "ddp_full", "none", 2 * RANK_BATCH, STEPS + 1)
    with pytest.raises(CheckpointError, match="written by 2 process"):
        trainer.fit(resume=True)


# --------------------------------------------------------------------------- bad input
def test_world_size_must_divide_the_micro_batch() -> None:
    check_batch_divides(4, ProcessInfo(0, 2, 0), batch_size=8, grad_accum_steps=2)
    with pytest.raises(ConfigError, match=r"cannot be split evenly over 3 processes; use a multiple of 6"):
        check_batch_divides(4, ProcessInfo(0, 3, 0), batch_size=8, grad_accum_steps=2)


def test_unknown_strategy_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"TrainerConfig.strategy must be one of \['ddp', 'fsdp', 'none'\]"):
        TrainerConfig(strategy="horovod")


def test_fsdp_refuses_a_model_with_nothing_to_shard() -> None:
    frozen = nn.Linear(3, 2).requires_grad_(False)
    module = LossModule(frozen, frozen, frozen)
    try:
        with pytest.raises(ConfigError, match="Linear has no trainable parameters to shard"):
            FullyShardedDataParallel(torch.device("cpu")).wrap(module)
    finally:
        destroy_distributed()


if __name__ == "__main__":
    worker(sys.argv[1:])
