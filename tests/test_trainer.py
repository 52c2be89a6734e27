"""The shared trainer on a tiny linear world model and synthetic windows (tens of steps each)."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tensordict import TensorDict
from torch import nn
from torch.utils.data import Dataset

from worldrl.models.base import WorldModel, WorldModelConfig, register_family
from worldrl.models.task_spec import TaskSpec
from worldrl.training import Trainer, TrainerConfig, TrainingDivergedError
from worldrl.training.checkpointing import decode_tree, encode_tree, list_checkpoints, load_checkpoint
from worldrl.training.metrics_logging import MultiLogger, read_metrics
from worldrl.training.schedules import lr_multiplier

OBS, ACT, T = 3, 1, 3


@dataclass
class LinearConfig(WorldModelConfig):
    """Linear next-state and reward regression: a legitimate, tiny world model for trainer tests."""

    input_noise: float = 0.0
    """Std of Gaussian noise on the inputs while training (draws from the global RNG, as dropout would)."""
    zero_init: bool = False
    """Start from zero weights (predicts ``obs' = obs`` and reward 0)."""


class LinearModel(WorldModel):
    def __init__(self, config: LinearConfig, task: TaskSpec) -> None:
        super().__init__(config, task)
        self.dynamics = nn.Linear(OBS + ACT, OBS)
        self.reward_head = nn.Linear(OBS + ACT, 1)
        if config.zero_init:
            for p in self.parameters():
                nn.init.zeros_(p)
        self.interrupt_at: int | None = None  # raise at this step (simulates a killed run)
        self.poison_after: int | None = None  # NaN losses after this step
        self.seen_dtype: torch.dtype | None = None
        self.steps_done = 0

    def initial_state(self, batch_size: int) -> TensorDict:
        return TensorDict({"obs": torch.zeros(batch_size, OBS)}, batch_size=[batch_size])

    def observe(self, obs, prev_action, is_first) -> TensorDict:
        return TensorDict({"obs": obs}, batch_size=obs.shape[:2])

    def imagine(self, state, action, generator=None) -> TensorDict:
        x = torch.cat([state["obs"], action], -1)
        return TensorDict(
            {"obs": state["obs"] + self.dynamics(x), "reward": self.reward_head(x)[..., 0]}, state.batch_size
        )

    def loss_groups(self, batch: TensorDict):
        obs, action = batch["obs"].float(), batch["action"].float()
        x = torch.cat([obs[:, :-1], action[:, :-1]], -1)
        if self.training and self.config.input_noise:
            x = x + self.config.input_noise * torch.randn_like(x)
        delta = self.dynamics(x)
        self.seen_dtype = delta.dtype
        pred = obs[:, :-1] + delta
        pair = (batch["mask"][:, :-1] & batch["mask"][:, 1:]).float()
        dyn = (((pred.float() - obs[:, 1:]) ** 2).mean(-1) * pair).sum() / pair.sum()
        rew = (((self.reward_head(x)[..., 0].float() - batch["reward"][:, :-1]) ** 2) * pair).sum() / pair.sum()
        if self.poison_after is not None and self.steps_done >= self.poison_after:
            dyn = dyn * float("nan")
        return {"dynamics": dyn, "reward": rew}, {"dyn_mse": float(dyn.detach())}

    def on_train_step_end(self, step: int) -> None:
        self.steps_done = step
        if self.interrupt_at == step:
            raise KeyboardInterrupt(f"simulated kill at step {step}")


register_family("test_linear", LinearConfig, LinearModel)


class SyntheticWindows(Dataset):
    """Windows of a fixed linear system ``obs' = A obs + B a``, reward ``-|obs|^2`` (or identity dynamics)."""

    def __init__(self, n: int, seed: int, identity: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        a_mat = torch.eye(OBS) if identity else torch.tensor([[0.9, 0.2, 0.0], [-0.2, 0.9, 0.1], [0.0, 0.3, 0.5]])
        b_mat = torch.zeros(OBS, ACT) if identity else torch.tensor([[0.5], [0.0], [1.0]])
        obs = torch.randn(n, OBS, generator=g)
        actions = torch.rand(n, T, ACT, generator=g) * 2 - 1
        seq = [obs]
        for t in range(T - 1):
            seq.append(seq[-1] @ a_mat.T + actions[:, t] @ b_mat.T)
        self.obs = torch.stack(seq, 1)
        self.actions = actions
        self.reward = torch.zeros(n, T) if identity else -(self.obs**2).sum(-1)

    def __len__(self) -> int:
        return len(self.obs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "obs": self.obs[i],
            "action": self.actions[i],
            "reward": self.reward[i],
            "terminated": torch.zeros(T, dtype=torch.bool),
            "is_first": torch.arange(T) == 0,
            "mask": torch.ones(T, dtype=torch.bool),
            "episode_index": torch.tensor(i),
        }


def make_task() -> TaskSpec:
    return TaskSpec(
        observation_space=gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32),
        action_space=gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32),
        task_id=None,
    )


def make_model(seed: int = 0, **config) -> LinearModel:
    torch.manual_seed(seed)
    return LinearModel(LinearConfig(**config), make_task())


def config(**overrides) -> TrainerConfig:
    base = {"max_steps": 20, "batch_size": 8, "lr": 1e-2, "eval_every": 5, "val_batches": 2}
    base |= {"checkpoint_every": 5, "log_every": 1, "device": "cpu", "seed": 0}
    return TrainerConfig(**{**base, **overrides})


TRAIN, VAL = SyntheticWindows(64, seed=1), SyntheticWindows(16, seed=2)


def losses(path: Path, split: str = "train") -> list[tuple[int, float]]:
    return [(r["step"], r["metrics"]["loss"]) for r in read_metrics(path / "metrics.jsonl") if r["split"] == split]


def test_a_few_steps_lower_the_loss_and_write_outputs(tmp_path):
    result = Trainer(make_model(), TRAIN, VAL, config(max_steps=30), tmp_path).fit()
    curve = losses(tmp_path)
    assert [s for s, _ in curve] == list(range(1, 31))
    assert curve[-1][1] < 0.5 * curve[0][1]
    assert result.steps == 30 and result.final_val_loss is not None
    assert result.best_val_loss <= result.final_val_loss
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "best" / "config.json").exists()
    reloaded = WorldModel.from_pretrained(str(tmp_path / "model"))
    assert isinstance(reloaded, LinearModel)


@pytest.mark.parametrize("balancing", ["sum", "rgb"])
def test_exact_resume_gives_the_same_loss_curve(tmp_path, balancing):
    # noise (global RNG), EMA, warm-up + cosine and RGB state must all survive the interruption
    cfg = config(
        max_steps=14,
        checkpoint_every=4,
        eval_every=4,
        ema_decay=0.8,
        warmup_steps=3,
        schedule="cosine",
        gradient_balancing=balancing,
    )
    straight = Trainer(make_model(input_noise=0.1), TRAIN, VAL, cfg, tmp_path / "a").fit()

    model = make_model(input_noise=0.1)
    model.interrupt_at = 10  # killed after step 10: steps 9-10 were logged past the step-8 checkpoint
    with pytest.raises(KeyboardInterrupt):
        Trainer(model, TRAIN, VAL, cfg, tmp_path / "b").fit()
    assert list_checkpoints(tmp_path / "b" / "checkpoints")[-1].name == "step_0000008"
    resumed = Trainer(make_model(seed=123, input_noise=0.1), TRAIN, VAL, cfg, tmp_path / "b").fit(resume=True)

    assert losses(tmp_path / "b") == losses(tmp_path / "a")
    assert losses(tmp_path / "b", "val") == losses(tmp_path / "a", "val")
    assert resumed.final_val_loss == straight.final_val_loss
    a, b = (load_file(str(tmp_path / d / "model" / "model.safetensors")) for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_keep_last_prunes_old_checkpoints(tmp_path):
    Trainer(make_model(), TRAIN, None, config(max_steps=10, checkpoint_every=2, keep_last=2), tmp_path).fit()
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_0000008", "step_0000010"]


def test_resume_from_an_earlier_checkpoint_drops_the_later_branch(tmp_path):
    Trainer(make_model(), TRAIN, None, config(max_steps=12, checkpoint_every=4, keep_last=5), tmp_path).fit()
    first = losses(tmp_path)
    step4 = tmp_path / "checkpoints" / "step_0000004"
    Trainer(make_model(), TRAIN, None, config(max_steps=6, checkpoint_every=4, keep_last=5), tmp_path).fit(
        resume_from=step4
    )
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_0000004", "step_0000006"]
    assert losses(tmp_path) == first[:6]


def test_fresh_run_refuses_to_overwrite_checkpoints(tmp_path):
    Trainer(make_model(), TRAIN, None, config(max_steps=2), tmp_path).fit()
    with pytest.raises(FileExistsError, match="resume"):
        Trainer(make_model(), TRAIN, None, config(max_steps=2), tmp_path).fit()


def test_early_stopping_triggers_when_validation_gets_worse(tmp_path):
    # zero weights are optimal for identity dynamics; training on the real system moves away from them
    model = make_model(zero_init=True)
    cfg = config(max_steps=50, eval_every=1, early_stopping_patience=2)
    result = Trainer(model, TRAIN, SyntheticWindows(16, seed=3, identity=True), cfg, tmp_path).fit()
    assert result.stopped_early and result.steps == 3 and result.best_step == 1
    val = losses(tmp_path, "val")
    assert [s for s, _ in val] == [1, 2, 3] and val[0][1] < val[1][1] < val[2][1]


def test_ema_weights_differ_from_raw_and_are_saved(tmp_path):
    trainer = Trainer(make_model(), TRAIN, VAL, config(max_steps=6, ema_decay=0.9), tmp_path)
    trainer.fit()
    raw, ema = trainer.model.state_dict(), trainer.ema.module.state_dict()
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert not torch.allclose(raw["dynamics.weight"], ema["dynamics.weight"])
    assert all(torch.equal(saved[k], ema[k]) for k in ema)


def test_grad_accumulation_matches_one_full_batch(tmp_path):
    grads = []
    for accum in (1, 2):
        trainer = Trainer(make_model(), TRAIN, None, config(max_steps=1, grad_accum_steps=accum), tmp_path / str(accum))
        trainer.fit()
        grads.append([p.grad.clone() for p in trainer.params])
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_runs_on_cpu(tmp_path):
    trainer = Trainer(make_model(), TRAIN, VAL, config(max_steps=3, precision="bf16"), tmp_path)
    result = trainer.fit()
    assert trainer.model.seen_dtype == torch.bfloat16
    assert math.isfinite(result.final_val_loss)


def test_fp16_on_cpu_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        Trainer(make_model(), TRAIN, None, config(precision="fp16"), tmp_path)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    model = make_model()
    model.poison_after = 5
    with pytest.raises(TrainingDivergedError, match=r"nan at step 6.*step_0000004"):
        Trainer(model, TRAIN, None, config(max_steps=10, checkpoint_every=2), tmp_path).fit()
    last = list_checkpoints(tmp_path / "checkpoints")[-1]
    weights, state = load_checkpoint(last)
    assert last.name == "step_0000004" and state["progress"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_checkpoints_hold_no_pickle(tmp_path):
    Trainer(make_model(), TRAIN, VAL, config(max_steps=2, ema_decay=0.9), tmp_path).fit()
    ckpt = list_checkpoints(tmp_path / "checkpoints")[-1]
    files = [p for p in ckpt.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".safetensors"}
    for p in files:
        head = p.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK"  # pickle protocol / torch zip
        if p.suffix == ".json":
            json.loads(p.read_text())
        else:
            load_file(str(p))


def test_state_tree_round_trip_is_exact():
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.loss(TensorDict({k: v[None] for k, v in TRAIN[0].items() if k != "episode_index"}, [1, T]))[0].backward()
    opt.step()
    tree = {"opt": opt.state_dict(), "rng": np.random.get_state(), "inf": float("inf"), "t": (1, None)}
    tensors: dict[str, torch.Tensor] = {}
    back = decode_tree(json.loads(json.dumps(encode_tree(tree, tensors), allow_nan=False)), tensors)
    assert back["inf"] == math.inf and back["t"] == (1, None)
    assert back["opt"]["param_groups"] == opt.state_dict()["param_groups"]
    for pid, st in opt.state_dict()["state"].items():
        assert all(torch.equal(st[k], back["opt"]["state"][pid][k]) for k in st)
    assert np.array_equal(back["rng"][1], tree["rng"][1])


def test_lr_schedule_warms_up_then_decays():
    mult = [lr_multiplier(s, max_steps=10, warmup_steps=2, schedule="cosine") for s in range(10)]
    assert mult[0] == 0.5 and mult[1] == 1.0 and mult[2] == 1.0 and mult[-1] < 0.05
    assert all(a >= b for a, b in itertools.pairwise(mult[1:]))


@pytest.mark.parametrize(
    "field,value",
    [
        ("batch_size", 0),
        ("grad_accum_steps", 3),
        ("precision", "fp8"),
        ("schedule", "step"),
        ("loggers", ["csv"]),
        ("ema_decay", 1.0),
        ("gradient_balancing", "pcgrad"),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainerConfig(**{"batch_size": 8, field: value})


@pytest.mark.parametrize(
    "value,expected",
    [
        ("wandb", ["wandb"]),
        ("tensorboard,wandb", ["tensorboard", "wandb"]),
        ("[jsonl,tensorboard]", ["jsonl", "tensorboard"]),
    ],
)
def test_loggers_take_one_name_names_with_commas_or_a_list(value, expected, capsys):
    """``trainer.loggers=wandb`` is the one-item list, not the letters of 'wandb'; --help names the key."""
    from worldrl.cli import main
    from worldrl.training.run import load_config

    preset = Path(__file__).resolve().parents[1] / "configs" / "ensemble_pendulum.yaml"
    cfg = load_config(preset, [f"trainer.loggers={value}"])
    assert TrainerConfig.from_dict(cfg["trainer"]).loggers == expected
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "trainer.loggers=wandb" in capsys.readouterr().out


def test_jsonl_is_always_on_and_tensorboard_writes_events(tmp_path):
    logger = MultiLogger(["tensorboard"], tmp_path)
    logger.log(1, "train", {"loss": 1.5, "odd": float("nan")})
    logger.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == [
        {"step": 1, "split": "train", "metrics": {"loss": 1.5, "odd": "nan"}}
    ]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


# --------------------------------------------------------------------------- optimiser parameter groups
class GroupedModel(LinearModel):
    """Per-component learning rates (TD-MPC2 scales its encoder's) and a frozen part, declared by the family."""

    def __init__(self, config: LinearConfig, task: TaskSpec) -> None:
        super().__init__(config, task)
        self.frozen = nn.Linear(OBS, OBS)
        self.frozen.requires_grad_(False)

    def parameter_groups(self, lr: float) -> list[dict]:
        return [
            {"params": list(self.dynamics.parameters()), "lr": lr, "name": "dynamics"},
            {"params": list(self.reward_head.parameters()), "lr": 0.1 * lr, "name": "reward"},
        ]


def test_families_declare_optimiser_groups_and_frozen_parts_stay_frozen(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GroupedModel(LinearConfig(), make_task())
    frozen_before = model.frozen.weight.clone()
    cfg = TrainerConfig(max_steps=3, batch_size=4, lr=1e-2, warmup_steps=0, schedule="constant", progress=False)
    trainer = Trainer(model, SyntheticWindows(16, 0), None, cfg, tmp_path)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-2, 1e-3])
    trainer.fit()
    assert torch.equal(model.frozen.weight, frozen_before)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-2, 1e-3])


def test_parameter_groups_that_leave_a_trainable_parameter_out_are_refused(tmp_path: Path) -> None:
    class Forgetful(LinearModel):
        def parameter_groups(self, lr: float) -> list[dict]:
            return [{"params": list(self.dynamics.parameters()), "lr": lr}]

    cfg = TrainerConfig(max_steps=1, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="leaves 2 trainable parameter"):
        Trainer(Forgetful(LinearConfig(), make_task()), SyntheticWindows(8, 0), None, cfg, tmp_path)


def test_a_limited_validation_scores_windows_spread_over_the_whole_set() -> None:
    from worldrl.training.trainer import validation_windows

    windows = list(range(100))  # in episode order, as the window datasets are
    chosen = validation_windows(windows, batches=2, batch_size=4)
    picked = [chosen[i] for i in range(len(chosen))]
    assert len(picked) == 8 and picked[0] == 0 and picked[-1] == 99
    assert picked == sorted(set(picked))  # distinct, in order
    assert validation_windows(windows, batches=None, batch_size=4) is windows
    assert validation_windows(windows[:6], batches=2, batch_size=4) == windows[:6]
