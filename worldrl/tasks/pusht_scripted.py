"""A scripted PushT controller that solves the task: greedy pushes on the T's outline toward the goal pose.

PushT (LeRobot's ``gym-pusht``) is solved when the T-shaped block covers 95% of its goal pose (x 256, y 256,
angle pi/4); the action is the target position of a round pusher (radius 15) under a PD controller. The
controller reads the block's pose (from its 8 keypoints, as recorded in ``observation.environment_state``) and,
every step:

1. samples contact points on the T's outline (with their outward normals) and scores each by how far the point
   must still travel *into* the block to reach its place in the goal pose, ``dot(goal_point - point, -normal)``:
   pushing there moves the block (translation and rotation alike) the way the goal needs;
2. keeps pushing at its current contact while that contact stays good (hysteresis stops it dithering between
   contacts), else picks the best-scoring one;
3. goes to a stand-off point outside that contact, round the block when the straight path would hit it, then
   pushes through it by the remaining error (clipped), so pushes shrink as the block nears its goal.

It is a known-rules baseline (it reads the block pose and the goal), not a learned policy. ``PushTScriptedPolicy``
acts on a batch of recorded observations (agent xy, then the 16 keypoint coordinates), so ``worldrl collect
--policy worldrl.tasks.pusht_scripted:collect_policy`` records its episodes; ``reset(mask)`` clears the contact of
finished episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])
"""gym-pusht's goal pose of the block: x, y (pixels of the 512x512 arena), angle (rad)."""
AGENT_RADIUS = 15.0
ARENA = (0.0, 512.0)

# The T in its body frame (gym-pusht's ``add_tee`` with scale 30): a 120x30 bar on top of a 30x90 stem.
KEYPOINTS_LOCAL = np.array(
    [[-60, 0], [60, 0], [60, 30], [-60, 30], [-15, 30], [15, 30], [15, 120], [-15, 120]], dtype=np.float64
)
"""The 8 keypoints in ``environment_state`` order (``PushTEnv.get_keypoints``), in the block's frame."""
OUTLINE = np.array([[-60, 0], [60, 0], [60, 30], [15, 30], [15, 120], [-15, 120], [-15, 30], [-60, 30]], float)
"""The T's outline, counter-clockwise (y up, pymunk's frame)."""
RECTANGLES = ((-60.0, 60.0, 0.0, 30.0), (-15.0, 15.0, 30.0, 120.0))
"""The T as two boxes (xmin, xmax, ymin, ymax) in the block frame, for distances."""


@dataclass(frozen=True)
class PusherConfig:
    """Settings of the scripted pusher (pixels, radians)."""

    spacing: float = 7.5
    """Distance between candidate contact points along the outline."""
    corner_clearance: float = 17.0
    """Candidates this close to a concave corner are dropped (the pusher cannot reach into the corner)."""
    standoff: float = 8.0
    """Gap between the pusher's rim and the block at the approach point."""
    reach_tolerance: float = 6.0
    """Within this distance of the approach point the pusher starts pushing."""
    max_push: float = 25.0
    """The longest push per step (how far past the contact the target lies)."""
    push_gain: float = 1.0
    """Push depth per pixel of remaining error at the contact."""
    keep_ratio: float = 0.6
    """The current contact is kept while its score is at least this fraction of the best one."""
    min_score: float = 0.3
    """A contact scoring below this (pixels) is abandoned."""
    travel_cost: float = 0.05
    """Score penalty per pixel the pusher must travel to reach a contact (prefers near contacts)."""
    detour_radius: float = 105.0
    """Radius of the circle round the block's centre the pusher follows when the straight path is blocked."""
    clearance: float = 4.0
    """Extra margin (beyond the pusher's radius) a straight path must keep from the block."""


def rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def pose_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """The block pose (x, y, angle) whose T best fits 8 observed keypoints (least squares, Kabsch in 2-D)."""
    points = np.asarray(keypoints, np.float64).reshape(8, 2)
    local_mean, world_mean = KEYPOINTS_LOCAL.mean(axis=0), points.mean(axis=0)
    a, b = KEYPOINTS_LOCAL - local_mean, points - world_mean
    angle = np.arctan2(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]), np.sum(a * b))
    position = world_mean - rotation(angle) @ local_mean
    return np.array([position[0], position[1], angle])


def to_world(pose: np.ndarray, local: np.ndarray) -> np.ndarray:
    return local @ rotation(pose[2]).T + pose[:2]


def outline_contacts(config: PusherConfig) -> tuple[np.ndarray, np.ndarray]:
    """Candidate contact points on the T's outline and their outward normals, in the block frame."""
    points, normals = [], []
    concave = OUTLINE[[3, 6]]  # the two inner corners where stem meets bar
    for start, end in zip(OUTLINE, np.roll(OUTLINE, -1, axis=0)):
        edge = end - start
        length = float(np.linalg.norm(edge))
        normal = np.array([edge[1], -edge[0]]) / length
        for t in np.arange(config.spacing / 2, length, config.spacing) / length:
            p = start + t * edge
            if np.min(np.linalg.norm(concave - p, axis=1)) >= config.corner_clearance:
                points.append(p)
                normals.append(normal)
    return np.array(points), np.array(normals)


def distance_to_block(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from world points ``[N, 2]`` to the T at ``pose`` (0 inside)."""
    local = (points - pose[:2]) @ rotation(pose[2])
    dists = []
    for xmin, xmax, ymin, ymax in RECTANGLES:
        dx = np.maximum(np.maximum(xmin - local[:, 0], local[:, 0] - xmax), 0.0)
        dy = np.maximum(np.maximum(ymin - local[:, 1], local[:, 1] - ymax), 0.0)
        dists.append(np.hypot(dx, dy))
    return np.min(dists, axis=0)


def path_is_clear(pose: np.ndarray, start: np.ndarray, end: np.ndarray, margin: float) -> bool:
    samples = start + np.linspace(0.0, 1.0, 12)[:, None] * (end - start)
    return bool(np.all(distance_to_block(pose, samples) > margin))


class PushTScriptedPolicy:
    """The scripted pusher for a batch of PushT observations (``[B, 18]``: agent xy, then 16 keypoint coords)."""

    def __init__(self, config: PusherConfig | None = None, goal: np.ndarray = GOAL_POSE):
        self.config = config or PusherConfig()
        self.goal = np.asarray(goal, np.float64)
        self.points, self.normals = outline_contacts(self.config)
        self.contact: dict[int, int] = {}  # env row -> index of its current contact point

    def reset(self, mask: np.ndarray | None = None) -> None:
        if mask is None:
            self.contact.clear()
            return
        for row in np.flatnonzero(mask):
            self.contact.pop(int(row), None)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float64).reshape(len(obs), -1)
        actions = [self.act_one(row, o[:2], pose_from_keypoints(o[2:18])) for row, o in enumerate(obs)]
        return np.asarray(actions, np.float32)

    def act_one(self, row: int, agent: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """The target position for one pusher at ``agent`` and a block at ``pose``."""
        cfg = self.config
        world = to_world(pose, self.points)
        inward = -self.normals @ rotation(pose[2]).T
        error = to_world(self.goal, self.points) - world
        score = np.sum(error * inward, axis=1)
        standoff = world - inward * (AGENT_RADIUS + cfg.standoff)
        ranked = score - cfg.travel_cost * np.linalg.norm(standoff - agent, axis=1)
        best = int(np.argmax(ranked))
        current = self.contact.get(row)
        if score[best] < cfg.min_score:  # near contacts are done; a far one may still be worth the trip
            best = int(np.argmax(score))
        if current is None or score[current] < max(cfg.min_score, cfg.keep_ratio * ranked[best]):
            current = best
        self.contact[row] = current
        if score[current] < cfg.min_score:  # nothing worth pushing: hold still
            return agent.astype(np.float32)
        target = self.reach_or_push(agent, pose, world[current], inward[current], standoff[current], score[current])
        return np.clip(target, *ARENA).astype(np.float32)

    def reach_or_push(
        self,
        agent: np.ndarray,
        pose: np.ndarray,
        contact: np.ndarray,
        inward: np.ndarray,
        standoff: np.ndarray,
        score: float,
    ) -> np.ndarray:
        cfg = self.config
        behind = np.dot(agent - contact, -inward)  # how far outside the contact the pusher is, along the normal
        lateral = np.linalg.norm((agent - contact) - np.dot(agent - contact, inward) * inward)
        if behind > AGENT_RADIUS - 4.0 and lateral < cfg.reach_tolerance + 4.0:
            push = min(cfg.max_push, cfg.push_gain * score + 2.0)
            return contact - inward * AGENT_RADIUS + inward * push
        if np.linalg.norm(agent - standoff) < cfg.reach_tolerance:
            return standoff
        if path_is_clear(pose, agent, standoff, AGENT_RADIUS + cfg.clearance):
            return standoff
        return self.detour(agent, pose, standoff)

    def detour(self, agent: np.ndarray, pose: np.ndarray, standoff: np.ndarray) -> np.ndarray:
        """A waypoint on a circle round the block's centre, stepping from the pusher's side toward the goal's."""
        centre = to_world(pose, KEYPOINTS_LOCAL).mean(axis=0)
        start = np.arctan2(*(agent - centre)[::-1])
        end = np.arctan2(*(standoff - centre)[::-1])
        step = (end - start + np.pi) % (2 * np.pi) - np.pi
        angle = start + np.clip(step, -0.6, 0.6)
        radius = max(self.config.detour_radius, float(np.linalg.norm(agent - centre)))
        return centre + radius * np.array([np.cos(angle), np.sin(angle)])


collect_policy = PushTScriptedPolicy()
"""The instance ``worldrl collect --policy worldrl.tasks.pusht_scripted:collect_policy`` records with."""

__all__ = [
    "GOAL_POSE",
    "KEYPOINTS_LOCAL",
    "PushTScriptedPolicy",
    "PusherConfig",
    "collect_policy",
    "pose_from_keypoints",
]
