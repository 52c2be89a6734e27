"""The optional robot-learning suites behind Gymnasium ids, and the extra that installs each.

LeRobot's simulation envs (``gym_pusht/PushT-v0``, ``gym_aloha/AlohaInsertion-v0``) and Gymnasium-Robotics
(``FetchPush-v4``, ``FrankaKitchen-v1``) register their ids only once their package is imported, which
Gymnasium 1.x never does by itself. ``import_suite(env_id)`` imports the package an id belongs to, or raises a
one-line ``MissingDependencyError`` naming the ``worldrl`` extra to install. DeepMind Control tasks use the
``dmc:`` prefix instead (``worldrl.tasks.dmc``).

Which mujoco serves which extra (checked with gymnasium 1.4): ``gym-aloha`` needs dm-control 1.0.x built for
mujoco 3.x, so ``worldrl[robot]`` and ``worldrl[dmc]`` install mujoco < 4 next to a matching dm-control; the base
install keeps mujoco 4 (Gymnasium's own MuJoCo envs load with either).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass

from worldrl.errors import MissingDependencyError


@dataclass(frozen=True)
class Suite:
    """An optional package that registers Gymnasium ids when imported."""

    name: str
    """What users call it (``"gym-pusht"``)."""
    module: str
    """The module whose import registers the ids (``"gym_pusht"``)."""
    extra: str
    """The ``worldrl`` extra that installs it (``"robot"``)."""
    pattern: str
    """A regular expression matching the ids it registers (matched against the whole id)."""

    def matches(self, env_id: str) -> bool:
        return re.fullmatch(self.pattern, env_id) is not None

    @property
    def install_hint(self) -> str:
        return f"`pip install worldrl[{self.extra}]`"


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite("gym-pusht", "gym_pusht", "robot", r"gym_pusht/.+"),
        Suite("gym-aloha", "gym_aloha", "robot", r"gym_aloha/.+"),
        Suite(
            "gymnasium-robotics",
            "gymnasium_robotics",
            "robot",
            r"(Fetch|HandReach|HandManipulate|FrankaKitchen|AdroitHand|PointMaze|AntMaze)\w*-v\d+",
        ),
    )
}


def suite_of(env_id: str) -> Suite | None:
    """The optional suite that registers ``env_id`` (without a ``module:`` prefix), or None."""
    for suite in SUITES.values():
        if suite.matches(env_id):
            return suite
    return None


def import_suite(env_id: str) -> Suite | None:
    """Import the suite registering ``env_id`` (its ids are then in ``gym.registry``); None for other ids.

    Raises ``MissingDependencyError`` naming the extra when the suite is not installed.
    """
    suite = suite_of(env_id)
    if suite is None:
        return None
    if importlib.util.find_spec(suite.module) is None:
        raise MissingDependencyError(f"env {env_id!r} needs {suite.name}, which is not installed: {suite.install_hint}")
    importlib.import_module(suite.module)  # registers the suite's ids in gymnasium's registry
    return suite


__all__ = ["SUITES", "Suite", "import_suite", "suite_of"]
