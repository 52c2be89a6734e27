"""Fidelity evaluation against models whose errors are known in closed form; CI helpers; plots; real returns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from worldrl.evaluation.fidelity import (
    FidelityReport,
    compare_reports,
    evaluate_fidelity,
    frame_mse,
    mean_observation,
    mean_prediction,
    normalized_rmse,
    paired_differences,
    psnr_from_mse,
    repeat_last_prediction,
)
from worldrl.evaluation.plots import plot_learning_curves, plot_nrmse_curves, plot_trajectories, read_learning_curves
from worldrl.evaluation.real_returns import episode_quotas, evaluate_on_real_env
from worldrl.evaluation.stats import mean_ci, median_iqr, student_t_ppf, summarize
from worldrl.models import Capabilities, TaskSpec, WorldModel, WorldModelConfig

FIXTURE_LENGTHS = (7, 12, 5)  # tests/fixtures/README.md
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------- models with known dynamics
class CounterModel(WorldModel):
    """The fixture's true dynamics (state [e, i, sin i, cos i], reward i/10), plus chosen biases.

    ``obs_bias`` is added to every decoded observation, ``reward_bias`` to every reward, so the expected errors
    are those biases exactly. ``terminal_at`` marks the transitions into step ``i == terminal_at`` as terminal.
    It also records how far the previous actions it observes are from the fixture's ``action[t-1]``.
    """

    capabilities = Capabilities(recurrent=False, stochastic=False)

    def __init__(self, task, obs_bias=None, reward_bias=0.0, terminal_at=None, can_decode=True) -> None:
        super().__init__(WorldModelConfig(), task)
        self.obs_bias = torch.zeros(task.obs_shape) if obs_bias is None else torch.as_tensor(obs_bias).float()
        self.reward_bias = reward_bias
        self.terminal_at = terminal_at
        self.capabilities = Capabilities(can_decode=can_decode, recurrent=False, stochastic=False)
        self.prev_action_error = 0.0

    def _state(self, e, i, reward):
        logit = torch.full_like(i, -10.0)
        if self.terminal_at is not None:
            logit = torch.where(i == self.terminal_at, 10.0, -10.0)
        return TensorDict({"e": e, "i": i, "reward": reward, "terminal_logit": logit}, batch_size=i.shape)

    def initial_state(self, batch_size):
        zeros = torch.zeros(batch_size)
        return self._state(zeros, zeros, zeros)

    def observe(self, obs, prev_action, is_first):
        e, i = obs[..., 0], obs[..., 1]
        expected = torch.where(is_first, 0.0, 0.1 * (i - 1) - e)  # fixture: action[t] = 0.1 * t - e
        self.prev_action_error = max(self.prev_action_error, float((prev_action[..., 0] - expected).abs().max()))
        return self._state(e, i, torch.zeros_like(i))

    def imagine(self, state, action, generator=None):
        i = state["i"]
        return self._state(state["e"], i + 1, i / 10 + self.reward_bias)

    def decode(self, state):
        if not self.capabilities.can_decode:
            raise NotImplementedError
        i = state["i"]
        return torch.stack([state["e"], i, torch.sin(i), torch.cos(i)], -1) + self.obs_bias


class FrameModel(WorldModel):
    """Pixel dynamics of the fixture's camera (fill value (10 e + 3 i) % 256): +3 per step, decoded with an offset."""

    capabilities = Capabilities(predicts_reward=False, predicts_terminal=False, stochastic=False)

    def __init__(self, task, offset: float) -> None:
        super().__init__(WorldModelConfig(), task)
        self.offset = offset

    def initial_state(self, batch_size):
        return TensorDict({"v": torch.zeros(batch_size)}, batch_size=[batch_size])

    def observe(self, obs, prev_action, is_first):
        return TensorDict({"v": obs[..., 0, 0, 0].float()}, batch_size=obs.shape[:2])

    def imagine(self, state, action, generator=None):
        return TensorDict({"v": (state["v"] + 3) % 256}, batch_size=state.batch_size)

    def decode(self, state):
        frame = (state["v"] + self.offset).clamp(0, 255)[..., None, None, None]
        return frame.expand(*state.batch_size, *self.task.obs_shape)


def _state_task() -> TaskSpec:
    return TaskSpec(
        gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Box(-5, 5, (1,), np.float32), task_id="fixture"
    )


@pytest.fixture
def reader(lerobot_fixture):
    from worldrl.data import LeRobotDatasetReader

    return LeRobotDatasetReader(lerobot_fixture)


# --------------------------------------------------------------------------------- fidelity
def test_perfect_model_scores_zero_at_every_horizon(reader):
    model = CounterModel(_state_task())
    report = evaluate_fidelity(model, reader, [0, 1, 2], horizons=(1, 5, 10), context=2, num_starts=None)
    assert model.prev_action_error < 1e-6  # observe got action[t-1], zeros at episode starts
    for m in report.horizons + [c for c in report.curve if c.count]:
        assert m.nrmse == pytest.approx(0.0, abs=1e-6)
        assert m.reward_rmse == pytest.approx(0.0, abs=1e-6) and m.reward_mae == pytest.approx(0.0, abs=1e-6)
    assert report.horizons[0].nrmse_per_dim == pytest.approx([0.0] * 4, abs=1e-6)


def test_biased_model_gives_the_analytic_error(reader):
    bias = np.array([0.5, -1.0, 0.2, 0.0], np.float32)
    model = CounterModel(_state_task(), obs_bias=bias, reward_bias=0.3)
    report = evaluate_fidelity(model, reader, [0, 1, 2], horizons=(1, 3), num_starts=None)
    std = np.asarray(reader.stats["observation.state"]["std"], np.float64)
    expected = np.abs(bias) / std
    for m in report.horizons:
        assert m.nrmse_per_dim == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-6)  # float32 data
        assert m.nrmse == pytest.approx(expected.mean(), rel=1e-5, abs=1e-6)
        assert m.reward_rmse == pytest.approx(0.3, rel=1e-5) and m.reward_mae == pytest.approx(0.3, rel=1e-5)


def test_horizons_beyond_episodes_are_excluded_with_counts(reader):
    report = evaluate_fidelity(
        CounterModel(_state_task()), reader, [0, 1, 2], horizons=(1, 10, 12, 50), num_starts=None
    )
    lengths = np.array(FIXTURE_LENGTHS)
    by_h = {m.horizon: m for m in report.horizons}
    for h in (1, 10, 12, 50):
        assert by_h[h].count == np.maximum(lengths - h, 0).sum()  # observation t+h recorded
        assert by_h[h].step_count == np.maximum(lengths - h + 1, 0).sum()  # transition t+h-1 recorded
    assert (by_h[10].count, by_h[12].count, by_h[12].step_count) == (2, 0, 1)
    assert by_h[12].nrmse is None and by_h[12].reward_rmse == pytest.approx(0.0, abs=1e-6)
    assert by_h[50].nrmse is None and by_h[50].reward_rmse is None
    assert any("[50]" in note for note in report.notes)
    assert len(report.curve) == 50 and [c.count for c in report.curve[:3]] == [21, 18, 15]
    assert report.num_starts == sum(FIXTURE_LENGTHS)
    json.loads(report.to_json())  # strict JSON despite the missing values


def test_start_sampling_and_context(reader):
    full = evaluate_fidelity(CounterModel(_state_task()), reader, [1], horizons=(1,), context=3, num_starts=None)
    assert full.num_starts == 12 - 2
    few = evaluate_fidelity(CounterModel(_state_task()), reader, [1], horizons=(1,), num_starts=4, seed=1)
    assert few.num_starts == 4 and few.horizons[0].step_count == 4


def test_model_without_decoder_reports_reward_only(reader):
    model = CounterModel(_state_task(), reward_bias=-0.1, can_decode=False)
    report = evaluate_fidelity(model, reader, [0, 1], horizons=(2,), num_starts=None)
    assert report.horizons[0].nrmse is None and report.examples is None
    assert report.horizons[0].reward_mae == pytest.approx(0.1, rel=1e-5)
    assert any("cannot decode" in note for note in report.notes)
    assert any("termination" in note for note in report.notes)  # the fixture records none


def test_pixel_model_mse_and_psnr(reader):
    task = TaskSpec(
        gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
        gym.spaces.Box(-5, 5, (1,), np.float32),
        obs_key="observation.images.cam",
    )
    report = evaluate_fidelity(FrameModel(task, offset=10.0), reader, [0, 1, 2], horizons=(1, 4), num_starts=None)
    for m in report.horizons:
        assert m.frame_mse == pytest.approx((10 / 255) ** 2, rel=1e-6)
        assert m.psnr == pytest.approx(20 * math.log10(25.5), rel=1e-6)
        assert m.nrmse is None and m.reward_rmse is None
    perfect = evaluate_fidelity(FrameModel(task, offset=0.0), reader, [2], horizons=(1,), num_starts=None)
    assert perfect.horizons[0].frame_mse == 0.0 and perfect.horizons[0].psnr == 100.0
    assert "PSNR" in report.to_markdown()


def test_termination_accuracy(tmp_path):
    from worldrl.data import LeRobotDatasetReader, LeRobotDatasetWriter

    features = {
        "observation.state": {"dtype": "float32", "shape": [4], "names": None},
        "action": {"dtype": "float32", "shape": [1], "names": None},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
    }
    lengths = (6, 4)  # episode 0 terminates at its last row, episode 1 is cut off by a time limit
    with LeRobotDatasetWriter.create(tmp_path / "ds", fps=10, features=features) as writer:
        for ep, length in enumerate(lengths):
            for t in range(length):
                frame = {
                    "observation.state": np.array([ep, t, np.sin(t), np.cos(t)], np.float32),
                    "action": np.array([0.1 * t - ep], np.float32),
                    "next.reward": np.array([t / 10], np.float32),
                    "next.terminated": np.array([ep == 0 and t == length - 1]),
                }
                writer.add_frame(frame, task="count")
            writer.save_episode()
    reader = LeRobotDatasetReader(tmp_path / "ds")
    right = evaluate_fidelity(
        CounterModel(_state_task(), terminal_at=6), reader, [0, 1], horizons=(1, 2), num_starts=None
    )
    never = evaluate_fidelity(CounterModel(_state_task()), reader, [0, 1], horizons=(1, 2), num_starts=None)
    assert [m.termination_accuracy for m in right.horizons] == [1.0, 1.0]
    # one terminal transition among the 10 (h=1) and 8 (h=2) scored ones
    assert [m.step_count for m in never.horizons] == [10, 8]
    assert [m.termination_accuracy for m in never.horizons] == pytest.approx([0.9, 7 / 8])


def test_bad_arguments_name_the_problem(reader):
    model = CounterModel(_state_task())
    with pytest.raises(ValueError, match="episodes"):
        evaluate_fidelity(model, reader, [7], horizons=(1,))
    with pytest.raises(ValueError, match="horizons"):
        evaluate_fidelity(model, reader, [0], horizons=(0,))
    other = TaskSpec(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (1,), np.float32))
    with pytest.raises(ValueError, match=r"observation\.state.*\(4,\).*\(3,\)"):
        evaluate_fidelity(CounterModel(other), reader, [0], horizons=(1,))


def test_report_round_trip_markdown_and_comparison(reader):
    good = evaluate_fidelity(CounterModel(_state_task()), reader, [0, 1, 2], horizons=(1, 5), num_starts=None)
    bad = evaluate_fidelity(CounterModel(_state_task(), obs_bias=[1, 1, 1, 1]), reader, [0, 1, 2], horizons=(1, 5))
    again = FidelityReport.from_dict(json.loads(good.to_json()))
    assert again.to_dict() == good.to_dict()
    table = compare_reports({"perfect": good, "biased": bad})
    lines = table.splitlines()
    assert lines[0].startswith("| model |") and "obs err @5" in lines[0]
    assert lines[2].startswith("| perfect |") and lines[3].startswith("| biased |")
    assert f"{bad.horizons[1].nrmse:.4g}" in lines[3]
    assert (
        "| 5 | 9 | 0 | 12 |" in good.to_markdown()
    )  # horizon 5: 2 + 7 + 0 starts see obs t+5, 3 + 8 + 1 its transition


# --------------------------------------------------------------------------------- trivial baselines
def _fixture_states(lengths=FIXTURE_LENGTHS) -> dict[int, np.ndarray]:
    return {e: np.array([[e, i, np.sin(i), np.cos(i)] for i in range(n)], np.float64) for e, n in enumerate(lengths)}


def test_trivial_baselines_by_hand(reader):
    """repeat-last and dataset-mean errors equal the closed forms on the fixture; the mean uses unevaluated episodes."""
    report = evaluate_fidelity(CounterModel(_state_task()), reader, [1], horizons=(1, 3), num_starts=None)
    std = np.asarray(reader.stats["observation.state"]["std"], np.float64)
    states = _fixture_states()
    mean = np.concatenate([states[0], states[2]]).mean(0)  # episodes 0 and 2 were not evaluated
    ep = states[1]
    for h in (1, 3):
        last = np.sqrt(((ep[h:] - ep[:-h]) ** 2).mean(0)) / std
        to_mean = np.sqrt(((ep[h:] - mean) ** 2).mean(0)) / std
        assert report.baseline_error("repeat_last", h) == pytest.approx(last.mean(), rel=1e-5)
        assert report.baseline_error("dataset_mean", h) == pytest.approx(to_mean.mean(), rel=1e-5)
        assert report.horizons[[1, 3].index(h)].nrmse == pytest.approx(0.0, abs=1e-6)  # the model is perfect
    assert [m.count for m in report.baselines["repeat_last"]] == [m.count for m in report.horizons]
    assert "2 episodes not evaluated" in report.baseline_mean_from


def test_baselines_reach_markdown_json_and_comparison(reader):
    report = evaluate_fidelity(CounterModel(_state_task()), reader, [0, 1, 2], horizons=(1, 5), num_starts=None)
    assert "all 3 episodes" in report.baseline_mean_from  # nothing held out: the mean of every episode
    again = FidelityReport.from_dict(json.loads(report.to_json()))
    assert again.to_dict() == report.to_dict() and set(again.baselines) == {"repeat_last", "dataset_mean"}
    md = report.to_markdown()
    assert "repeat the last observation" in md and "predict the dataset mean" in md
    assert f"{report.baseline_error('repeat_last', 5):.4g}" in md.splitlines()[4]
    table = compare_reports({"a": report, "b": report}).splitlines()
    baseline_rows = [line for line in table if line.startswith("| baseline:")]
    assert len(baseline_rows) == 2  # one per baseline, not repeated for a second model on the same starts
    assert f"{report.baseline_error('dataset_mean', 1):.4g}" in baseline_rows[1]
    old = report.to_dict()
    old.pop("baselines"), old.pop("baseline_mean_from")  # a report written before baselines existed still loads
    assert FidelityReport.from_dict(old).baselines == {}


def test_pixel_baselines(reader):
    task = TaskSpec(
        gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
        gym.spaces.Box(-5, 5, (1,), np.float32),
        obs_key="observation.images.cam",
    )
    report = evaluate_fidelity(FrameModel(task, offset=0.0), reader, [1], horizons=(2,), num_starts=None)
    values = {e: (10 * e + 3 * np.arange(n)) % 256 for e, n in enumerate(FIXTURE_LENGTHS)}
    ep, mean = values[1].astype(float), np.concatenate([values[0], values[2]]).mean()
    expected_last = np.mean(10 * np.log10(1 / ((ep[2:] - ep[:-2]) / 255) ** 2))
    expected_mean = np.mean(10 * np.log10(1 / ((ep[2:] - mean) / 255) ** 2))
    assert report.baseline_error("repeat_last", 2) == pytest.approx(expected_last, rel=1e-6)
    assert report.baseline_error("dataset_mean", 2) == pytest.approx(expected_mean, rel=1e-6)
    assert report.horizons[0].psnr == 100.0  # the model is exact


def test_pixel_reports_pair_the_model_with_each_baseline_start_by_start(reader):
    task = TaskSpec(
        gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
        gym.spaces.Box(-5, 5, (1,), np.float32),
        obs_key="observation.images.cam",
    )
    report = evaluate_fidelity(FrameModel(task, offset=10.0), reader, [0, 1], horizons=(1, 3), num_starts=None)
    assert set(report.paired) == {"repeat_last", "dataset_mean"}
    for name, entries in report.paired.items():
        for e, m, b in zip(entries, report.horizons, report.baselines[name], strict=True):
            # every start has both frames here, so the mean paired difference is the difference of the means
            assert e["horizon"] == m.horizon and e["count"] == m.count == b.count
            assert e["ssim_diff"] == pytest.approx(m.ssim - b.ssim, abs=1e-9)
            assert e["psnr_diff"] == pytest.approx(m.psnr - b.psnr, abs=1e-9)
            assert e["ssim_ci95"][0] <= e["ssim_diff"] <= e["ssim_ci95"][1]
    assert FidelityReport.from_dict(json.loads(report.to_json())).paired == report.paired
    assert "SSIM: model - baseline [95% CI]" in report.to_markdown()

    # vectors: nMSE per start (squared error over the dataset std, mean over dimensions); a constant bias adds
    # exactly mean((bias / std)^2) to the model's side of every pair
    bias = np.array([0.5, -1.0, 0.2, 0.0], np.float32)
    exact = evaluate_fidelity(CounterModel(_state_task()), reader, [0, 1], horizons=(1, 3), num_starts=None)
    biased = evaluate_fidelity(
        CounterModel(_state_task(), obs_bias=bias), reader, [0, 1], horizons=(1, 3), num_starts=None
    )
    std = np.asarray(reader.stats["observation.state"]["std"], np.float64)
    for e, b in zip(exact.paired["repeat_last"], biased.paired["repeat_last"], strict=True):
        assert e["nmse_diff"] < 0 and e["nmse_ci95"][1] < 0  # the exact model is closer than repeat-last
        assert b["nmse_diff"] - e["nmse_diff"] == pytest.approx(np.mean((bias / std) ** 2), rel=1e-4)
    assert "nMSE (lower is better): model - baseline [95% CI]" in exact.to_markdown()


def test_paired_differences_by_hand():
    rng = np.random.default_rng(0)
    base = {"ssim": rng.random((40, 2)), "psnr": rng.random((40, 2)) * 30}
    model = {"ssim": base["ssim"] + 0.01 + rng.normal(0, 0.05, (40, 2)), "psnr": base["psnr"] - 1.0}
    model["ssim"][3, 1] = np.nan  # a start without a frame at horizon 2 is left out of that horizon
    first, second = paired_differences(model, base, [1, 2])
    mean, low, high = mean_ci(model["ssim"][:, 0] - base["ssim"][:, 0])
    assert first["count"] == 40 and first["ssim_diff"] == pytest.approx(mean) and first["ssim_ci95"] == [low, high]
    assert first["psnr_diff"] == pytest.approx(-1.0) and first["psnr_ci95"] == pytest.approx([-1.0, -1.0])
    assert second["count"] == 39
    lone = paired_differences(
        {"ssim": np.ones((1, 1)), "psnr": np.ones((1, 1))}, {"ssim": np.zeros((1, 1)), "psnr": np.zeros((1, 1))}, [1]
    )
    assert lone[0]["ssim_diff"] == 1.0 and lone[0]["ssim_ci95"] is None  # one start: no interval


def test_baseline_math():
    last = np.arange(6.0).reshape(2, 3)
    rep = repeat_last_prediction(last, 4)
    assert rep.shape == (2, 4, 3) and (rep[:, 2] == last).all()
    assert mean_prediction(np.array([1.0, 2.0]), 3, 2).shape == (3, 2, 2)
    column = np.arange(10.0)[:, None]
    assert mean_observation(lambda idx: column[idx], np.arange(10)) == pytest.approx([4.5])
    assert mean_observation(lambda idx: column[idx], np.arange(10), max_rows=2) == pytest.approx([4.5])  # rows 0, 9
    with pytest.raises(ValueError, match="at least one row"):
        mean_observation(lambda idx: column[idx], np.arange(0))


# --------------------------------------------------------------------------------- pure math
def test_metric_math():
    sq = np.array([[4.0, 9.0], [0.0, 0.0]])
    out = normalized_rmse(sq, np.array([1.0, 0.0]), np.array([2.0, 0.0]))
    assert out[0].tolist() == [1.0, 3.0] and np.isnan(out[1]).all()  # zero std -> raw units; no count -> NaN
    frames = np.zeros((2, 4, 4, 3))
    assert frame_mse(frames + 51, frames).tolist() == pytest.approx([0.04, 0.04])
    assert psnr_from_mse(np.array([0.01, 0.0])).tolist() == [pytest.approx(20.0), 100.0]


# --------------------------------------------------------------------------------- stats
def test_t_quantiles_match_tables():
    table = {1: 12.7062047, 4: 2.7764451, 7: 2.3646243, 29: 2.0452296}  # two-sided 95%, from printed t tables
    for df, t in table.items():
        assert student_t_ppf(0.975, df) == pytest.approx(t, abs=1e-6)
    assert student_t_ppf(0.025, 4) == pytest.approx(-2.7764451, abs=1e-6)


def test_mean_ci_and_iqr_by_hand():
    values = [2, 4, 4, 4, 5, 5, 7, 9]
    half = 2.3646243 * math.sqrt(32 / 7) / math.sqrt(8)  # t_{0.975,7} * s / sqrt(n), s^2 = 32 / 7
    mean, low, high = mean_ci(values)
    assert (mean, low, high) == pytest.approx((5.0, 5.0 - half, 5.0 + half), abs=1e-6)
    assert median_iqr([4, 1, 3, 2]) == pytest.approx((2.5, 1.75, 3.25))
    single = summarize([3.0])
    assert single.std == 0.0 and math.isnan(single.ci95_low)
    with pytest.raises(ValueError, match="empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        median_iqr([1.0, float("nan")])


# --------------------------------------------------------------------------------- plots
def test_plots_write_png(reader, tmp_path):
    model = CounterModel(_state_task(), obs_bias=[0, 0.5, 0, 0])
    report = evaluate_fidelity(model, reader, [0, 1, 2], horizons=(1, 8), num_starts=None, num_examples=3)
    ex = report.examples
    assert ex.real.shape == (3, 9, 4) and ex.imagined.shape == (3, 9, 4)
    assert ex.episode[0] == 1 and ex.length[0] == 8  # the longest future comes first
    assert np.isnan(ex.real[ex.length < 8][:, -1]).all()  # nothing real past an episode's end
    paths = [
        plot_trajectories(ex, tmp_path / "traj.png", report.dim_names),
        plot_nrmse_curves({"a": report, "b": report}, tmp_path / "sub" / "curve.png"),
    ]
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        "\n".join(
            json.dumps({"step": s, "split": sp, "metrics": {"loss": 1.0 / (s + 1), "lr": 1e-3}})
            for s in range(0, 50, 10)
            for sp in ("train", "val")
        )
        + "\n"
    )
    curves = read_learning_curves(log)
    assert set(curves) == {"train/loss", "val/loss", "train/lr", "val/lr"} and curves["val/loss"][0].tolist() == [
        0,
        10,
        20,
        30,
        40,
    ]
    csv = tmp_path / "m.csv"
    csv.write_text("step,loss,note\n0,1.0,a\n1,0.5,b\n")
    assert set(read_learning_curves(csv)) == {"loss"}
    paths += [plot_learning_curves(log, tmp_path / "lc.png"), plot_learning_curves(csv, tmp_path / "lc2.png")]
    for path in paths:
        data = Path(path).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000
    with pytest.raises(KeyError, match="nope"):
        plot_learning_curves(log, tmp_path / "x.png", keys=["nope"])


# --------------------------------------------------------------------------------- real-env returns
def test_real_returns_match_sequential_runs():
    push_left = lambda obs: np.zeros(obs.shape[0], dtype=np.int64)  # noqa: E731  (CartPole falls in ~10 steps)
    stats = evaluate_on_real_env(push_left, "CartPole-v1", episodes=5, seed=3, num_envs=2)
    expected = []
    for copy, quota in enumerate(episode_quotas(5, 2)):  # copy i is seeded seed + i, then autoresets
        env = gym.make("CartPole-v1")
        env.reset(seed=3 + copy)
        for k in range(quota):
            if k:
                env.reset()
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(0)
                total, done = total + reward, terminated or truncated
            expected.append(total)
    assert stats.returns == expected and stats.episodes == 5 and stats.lengths == [int(r) for r in expected]
    assert stats.mean == pytest.approx(np.mean(expected))
    assert stats.ci95_low < stats.mean < stats.ci95_high or stats.std == 0
    with pytest.raises(ValueError, match="shape"):
        evaluate_on_real_env(lambda obs: np.zeros((obs.shape[0], 3)), "CartPole-v1", episodes=1)


def test_frame_rows_draw_one_labelled_row_per_entry(tmp_path):
    import matplotlib.image

    from worldrl.evaluation.plots import plot_frame_rows

    frames = np.zeros((3, 8, 12, 3), np.float32)
    frames[1] = np.nan  # past an episode's end: drawn black, not an error
    rows = {"real": frames + 255, "imagined": frames, "paint": frames}
    path = plot_frame_rows(rows, tmp_path / "rows.png", ["t+1", "t+2", "t+3"], "three rows")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > image.shape[1] / 3  # three rows of wide frames, not one strip
    with pytest.raises(ValueError):
        plot_frame_rows({"real": frames, "short": frames[:2]}, tmp_path / "bad.png", ["a", "b", "c"], "mismatch")
