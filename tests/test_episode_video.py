"""Recording one real episode of a policy as an mp4."""

from __future__ import annotations

import av
import numpy as np
import pytest

from worldrl.evaluation.episode_video import record_real_episode


def _frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_records_every_frame_of_a_mujoco_episode_with_its_return(tmp_path):
    actions = []
    rec = record_real_episode(
        lambda obs: actions.append(obs) or np.zeros(1, np.float32),
        "InvertedPendulum-v5",
        tmp_path / "ep.mp4",
        seed=3,
        size=(64, 96),
        max_steps=12,
    )
    frames = _frames(rec.path)
    assert rec.length == len(actions) == 12 and len(frames) == 13  # the reset frame + one per step
    assert frames[0].shape == (64, 96, 3) and frames[0].std() > 0  # a real render, not a blank frame
    assert rec.episode_return == pytest.approx(12.0)  # InvertedPendulum pays 1 per step the pole stays up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.mp4"]  # no temporary file left behind


def test_classic_control_episode_runs_to_its_time_limit(tmp_path):
    rec = record_real_episode(lambda obs: np.zeros(1, np.float32), "Pendulum-v1", tmp_path / "p.mp4", size=(48, 48))
    assert rec.length == 200 and len(_frames(rec.path)) == 201 and rec.episode_return < 0


def test_bad_size_and_failing_policy_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match="even"):
        record_real_episode(lambda obs: np.zeros(1), "Pendulum-v1", tmp_path / "odd.mp4", size=(47, 48))

    def broken(obs):
        raise RuntimeError("policy exploded")

    (tmp_path / "old.mp4").write_bytes(b"keep me")
    with pytest.raises(RuntimeError, match="policy exploded"):
        record_real_episode(broken, "Pendulum-v1", tmp_path / "old.mp4", size=(48, 48))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.mp4"]  # the earlier file is untouched
    assert (tmp_path / "old.mp4").read_bytes() == b"keep me"


def test_runners_are_filmed_by_the_camera_that_follows_them(tmp_path):
    from worldrl.tasks.real_envs import make_real_env, tracking_camera

    # HalfCheetah's default view is fixed (a running cheetah leaves it); its model's `track` camera follows the torso
    assert tracking_camera("HalfCheetah-v5") == "track"
    assert tracking_camera("InvertedPendulum-v5") is None and tracking_camera("Pendulum-v1") is None
    rec = record_real_episode(
        lambda obs: np.zeros(6, np.float32), "HalfCheetah-v5", tmp_path / "c.mp4", seed=1, size=(48, 48), max_steps=2
    )
    views = {}
    for camera in ("track", None):
        env = make_real_env("HalfCheetah-v5", render_mode="rgb_array", width=48, height=48, camera=camera)
        env.reset(seed=1)
        views[camera] = np.asarray(env.render(), np.float32)
        env.close()
    first = _frames(rec.path)[0].astype(np.float32)  # H.264 is lossy: the nearer view is the one recorded
    assert np.abs(first - views["track"]).mean() < np.abs(first - views[None]).mean()
