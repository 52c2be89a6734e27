"""scripts/pusht_plan_ranking.py: rank correlation, the candidates around a recorded plan, and the replay of a
recorded PushT state (the real env must reproduce the recording, or the diagnosis compares against noise)."""

from __future__ import annotations

import numpy as np
import pytest
from _scripts import load_script

ranking = load_script("pusht_plan_ranking")


def test_spearman_reads_order_not_scale():
    a = np.array([0.1, 0.5, 0.2, 3.0])
    assert ranking.spearman(a, a**3 + 7.0) == pytest.approx(1.0)
    assert ranking.spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(ranking.spearman(a, np.ones(4)))  # a constant score ranks nothing


def test_candidates_start_with_the_recorded_plan_and_holding_still_and_stay_in_the_arena():
    recorded = np.array([[100.0, 500.0], [110.0, 505.0], [120.0, 510.0]], np.float32)
    hold = np.array([90.0, 495.0], np.float32)
    plans = ranking.candidates(recorded, hold, 16, 0.3, np.random.default_rng(0))
    assert plans.shape == (16, 3, 2)
    assert np.array_equal(plans[0], recorded) and np.array_equal(plans[1], np.broadcast_to(hold, (3, 2)))
    assert plans.min() >= 0.0 and plans.max() <= 512.0
    assert not np.allclose(plans[2], recorded)  # perturbed


def test_replay_reproduces_a_recorded_pusht_segment():
    pytest.importorskip("gym_pusht")
    from worldrl.data.suite_layouts import LAYOUTS
    from worldrl.tasks.pusht_scripted import PushTScriptedPolicy
    from worldrl.tasks.real_envs import make_real_env

    env = make_real_env("gym_pusht/PushT-v0", **LAYOUTS["gym-pusht"].kwargs(False))
    obs, _ = env.reset(seed=3)
    policy, agents, blocks, actions = PushTScriptedPolicy(), [], [], []
    for _ in range(30):  # the scripted pusher reaches and pushes the block
        agents.append(np.asarray(obs["agent_pos"], np.float32))
        blocks.append(np.asarray(obs["environment_state"], np.float32).reshape(8, 2))
        actions.append(policy(np.concatenate([agents[-1], blocks[-1].reshape(-1)])[None])[0])
        obs, *_ = env.step(actions[-1])
    final = np.asarray(obs["environment_state"]).reshape(8, 2)
    t = 20
    velocity = (agents[t] - agents[t - 1]) * ranking.FPS
    other = make_real_env("gym_pusht/PushT-v0", **LAYOUTS["gym-pusht"].kwargs(False))
    other.reset(seed=0)
    ranking.replay(other, agents[t], velocity, blocks[t], np.ones((4, 2), np.float32) * 256)  # dirty the space
    _, keypoints, _ = ranking.replay(other, agents[t], velocity, blocks[t], np.asarray(actions[t:]))
    assert np.abs(blocks[-1] - blocks[t]).max() > 2.0  # the block moved in the segment
    assert np.abs(keypoints - final).max() < 2.0
