"""Bad input refused up front with one line naming the problem (issue 19): cameras, YAML bombs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worldrl.errors import EnvError
from worldrl.tasks.real_envs import make_real_env


def test_collect_refuses_an_unknown_camera_naming_the_models_cameras(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "worldrl", "collect", "--env", "HalfCheetah-v5", "--pixels", "--camera", "bogus",
           "--episodes", "1", "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "'bogus'" in last and "['track']" in last, done.stderr
    assert not out.exists()  # nothing created


def test_known_camera_renders_and_unknown_one_is_refused():
    env = make_real_env("HalfCheetah-v5", pixels=True, camera="track", width=16, height=16)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (16, 16, 3)
    env.close()
    with pytest.raises(EnvError, match="no named cameras"):
        make_real_env("InvertedPendulum-v5", pixels=True, camera="bogus")
