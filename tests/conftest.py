"""Shared test setup: headless rendering, offline hub, one thread per worker, fixture paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# Property tests draw the same examples on every run (`make test` and CI must not flip on a lucky draw);
# HYPOTHESIS_PROFILE=explore draws new ones, to hunt for counterexamples on purpose.
from hypothesis import settings  # noqa: E402

settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

REPO_ROOT = Path(__file__).resolve().parents[1]
# Test data written by the real tools (see tests/fixtures/README.md): a copy of shared/fixtures.
FIXTURES = REPO_ROOT / "tests" / "fixtures"


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_pytest_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SB3's default logger makes a dir per learn() call; keep them in pytest's tmp rather than /tmp."""
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3_logs"))


@pytest.fixture
def lerobot_fixture(tmp_path: Path) -> Path:
    """A private copy of the dataset written by lerobot 0.4.4 itself (tests must not modify the original)."""
    src = FIXTURES / "lerobot-v3-image"
    if not src.exists():
        pytest.fail(f"fixture missing: {src}")
    dst = tmp_path / "lerobot-v3-image"
    shutil.copytree(src, dst)
    return dst
