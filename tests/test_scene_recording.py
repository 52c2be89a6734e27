"""Recording physics scenes: a LeRobot v3.0 dataset with per-frame audio, plus waveforms, event logs and scene files."""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest

from worldrl.cli import main
from worldrl.data.collect import CollectConfig, collect
from worldrl.data.collect_scenes import AUDIO_KEY, episode_dir, read_wav
from worldrl.data.reader import LeRobotDatasetReader
from worldrl.errors import ConfigError
from worldrl.tasks.scenes.audio import SAMPLE_RATE
from worldrl.tasks.scenes.mel import frame_log_mel, silence


@pytest.fixture(autouse=True)
def _egl(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.chdir(tmp_path)


def test_cli_records_video_audio_waveforms_events_and_scene_files(tmp_path) -> None:
    out = tmp_path / "ds"
    rc = main(
        [
            "collect",
            "--env",
            "worldrl/Playground-v0",
            "--scene",
            "drop",
            "--episodes",
            "2",
            "--pixels",
            "--audio",
            "--out",
            str(out),
            "--max-episode-steps",
            "30",
            "--image-size",
            "32",
            "--quiet",
            "--vcodec",
            "libx264",
        ]
    )
    assert rc == 0
    reader = LeRobotDatasetReader(out)
    assert reader.num_episodes == 2 and reader.num_frames == 60
    assert (
        reader.features[AUDIO_KEY]["shape"] == [32]
        and "synthetic audio derived from contacts" in reader.features[AUDIO_KEY]["description"]
    )
    assert reader.frames("observation.images.front", np.arange(3)).shape == (3, 32, 32, 3)
    audio, state = reader.column(AUDIO_KEY), reader.column("observation.state")
    for ep in range(2):
        lo, hi = reader.episode_range(ep)
        extras = episode_dir(out, ep)
        wave, rate = read_wav(extras / "waveform.wav")
        assert rate == SAMPLE_RATE and wave.shape == (30 * 320,)
        # row t holds o_t: silence at reset, then the mel of step t's audio (16-bit WAV: coarser than float32)
        np.testing.assert_array_equal(audio[lo], silence())
        mel = frame_log_mel(wave, 320, SAMPLE_RATE)
        loud = audio[lo + 1 : hi] > -4
        np.testing.assert_allclose(audio[lo + 1 : hi][loud], mel[:29][loud], atol=0.05)
        events = json.loads((extras / "events.json").read_text())["events"]
        assert any(e["kind"] == "contact" and "floor" in e["objects"] for e in events)
        # re-simulate with plain mujoco from the stored MJCF and initial state
        init = json.loads((extras / "initial_state.json").read_text())
        model = mujoco.MjModel.from_xml_path(str(extras / "scene.xml"))
        data = mujoco.MjData(model)
        data.qpos[:], data.qvel[:] = init["qpos"], init["qvel"]
        mujoco.mj_step(model, data, 10 * 20)
        n = len(json.loads((extras / "scene.json").read_text())["objects"])
        np.testing.assert_allclose(state[lo + 20].reshape(6, 13)[:n, :3], data.qpos.reshape(n, 7)[:, :3], atol=1e-3)


def test_push_recording_keeps_rewards_and_needs_no_audio(tmp_path) -> None:
    summary = collect(
        CollectConfig("worldrl/Playground-v0", tmp_path / "p", episodes=1, scene="push", max_episode_steps=10, seed=1),
        progress=False,
    )
    reader = LeRobotDatasetReader(tmp_path / "p")
    assert summary.frames == 10 and AUDIO_KEY not in reader.features
    assert (reader.column("next.reward") < 0).all()
    assert not (episode_dir(tmp_path / "p", 0) / "waveform.wav").exists()


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(env_id="Pendulum-v1", scene="drop"), "scene must be None unless"),
        (dict(env_id="Pendulum-v1", audio=True), "audio must be False unless"),
        (dict(env_id="worldrl/Playground-v0", scene="volcano"), "unknown scene kind 'volcano'"),
    ],
)
def test_bad_scene_options_are_one_line_errors(tmp_path, bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CollectConfig(out=tmp_path / "x", episodes=1, **bad)


def test_scene_recording_refuses_options_it_cannot_honour(tmp_path) -> None:
    for extra in ({"num_envs": 2}, {"camera": "top"}):
        config = CollectConfig("worldrl/Playground-v0", tmp_path / "x", episodes=1, scene="drop", **extra)
        with pytest.raises(ConfigError, match="records with one env and its 'front' camera"):
            collect(config, progress=False)
