"""``worldrl/Playground-v0``: a procedural MuJoCo scene as a Gymnasium env, with an event log and synthetic audio.

``gym.make("worldrl/Playground-v0", scene="collide", render_mode="rgb_array")``. ``scene`` is a kind (``KINDS``) or a
``SceneDescription``; with a kind, each reset draws a new scene from the env's seed unless ``scene_seed`` (or
``reset(options={"scene_seed": s})``) fixes it. The action is a planar force on the scene's agent object (push
scenes); passive scenes ignore it and still step. Observations: ``state`` (for each of ``MAX_OBJECTS`` object slots:
position, orientation quaternion, linear velocity, angular velocity; zeros for empty slots), ``pixels`` (the
``front`` camera, ``height x width``) and ``audio`` (one log10-mel vector of the synthetic audio derived from
contacts during the step that led to this observation; silence at reset). The push kind rewards the negative
distance of the target to the goal zone and terminates when the target is inside it; other kinds give reward 0.

``info["events"]`` holds the events of the step; the episode's log is ``env.unwrapped.events`` (also in
``info["event_log"]``), the waveform so far ``env.unwrapped.waveform()``, the scene's MJCF ``env.unwrapped.xml``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from worldrl.errors import EnvError
from worldrl.tasks.scenes.audio import SAMPLE_RATE, ContactSynth
from worldrl.tasks.scenes.events import Event, EventDetector
from worldrl.tasks.scenes.kinds import check_kind, sample_scene
from worldrl.tasks.scenes.mel import N_MELS, frame_log_mel, silence
from worldrl.tasks.scenes.spec import (
    CAMERA,
    FRAME_SKIP,
    MAX_OBJECTS,
    TIMESTEP,
    SceneDescription,
    compile_scene,
    initial_state,
)

STATE_PER_OBJECT = 13
PUSH_FORCE = 15.0
"""Newtons per unit of action."""
ENV_ID = "worldrl/Playground-v0"


class PlaygroundEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / (TIMESTEP * FRAME_SKIP)))}

    def __init__(
        self,
        scene: str | SceneDescription = "drop",
        *,
        scene_seed: int | None = None,
        n_objects: int | None = None,
        render_mode: str | None = None,
        width: int = 64,
        height: int = 64,
        pixels: bool = True,
        audio: bool = True,
        force_threshold: float = 1.0,
    ):
        if render_mode not in (None, "rgb_array"):
            raise EnvError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if width <= 0 or height <= 0:
            raise EnvError(f"width and height must be positive, got {width}x{height}")
        if isinstance(scene, SceneDescription):
            self.fixed: SceneDescription | None = scene
            self.kind = scene.kind
        else:
            check_kind(scene)
            self.fixed, self.kind = None, scene
            if scene_seed is not None or n_objects is not None:
                sample_scene(scene, scene_seed or 0, n_objects)  # bad n_objects fails here, not at reset
        self.scene_seed, self.n_objects = scene_seed, n_objects
        self.render_mode, self.width, self.height = render_mode, int(width), int(height)
        self.use_pixels, self.use_audio, self.force_threshold = pixels, audio, force_threshold
        self.dt = TIMESTEP * FRAME_SKIP
        self.samples_per_frame = int(round(SAMPLE_RATE * self.dt))
        obs = {"state": spaces.Box(-np.inf, np.inf, (MAX_OBJECTS * STATE_PER_OBJECT,), np.float32)}
        if pixels:
            obs["pixels"] = spaces.Box(0, 255, (self.height, self.width, 3), np.uint8)
        if audio:
            obs["audio"] = spaces.Box(-np.inf, np.inf, (N_MELS,), np.float32)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.scene: SceneDescription | None = None
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._renderer: mujoco.Renderer | None = None
        self.events: list[Event] = []

    # ------------------------------------------------------------------ building

    def _load(self, scene: SceneDescription) -> None:
        if scene == self.scene and self.model is not None:
            return
        self.close()
        self.scene = scene
        self.model, self.xml = compile_scene(scene)
        self.model.vis.global_.offwidth = max(self.width, 64)
        self.model.vis.global_.offheight = max(self.height, 64)
        self.data = mujoco.MjData(self.model)
        self.slots = [self.model.joint(n) for n in scene.names()]
        self.agent_body = self.model.body(scene.agent).id if scene.agent else None
        self.target_body = self.model.body(scene.target).id if scene.target else None

    def _renderer_ready(self) -> mujoco.Renderer:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0  # software GL: shadows and reflections cost ~40x
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self._renderer

    # ------------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if self.fixed is not None:
            scene = self.fixed
        else:
            scene_seed = options.get("scene_seed", self.scene_seed)
            if scene_seed is None:
                scene_seed = int(self.np_random.integers(2**31 - 1))
            scene = sample_scene(self.kind, int(scene_seed), self.n_objects)
        self._load(scene)
        mujoco.mj_resetData(self.model, self.data)
        self.qpos0, self.qvel0 = initial_state(scene, self.model)
        self.data.qpos[:], self.data.qvel[:] = self.qpos0, self.qvel0
        mujoco.mj_forward(self.model, self.data)
        self.detector = EventDetector(self.model, scene, force_threshold=self.force_threshold)
        self.detector.reset(self.data)
        self.events = self.detector.events
        self.synth = ContactSynth(SAMPLE_RATE, seed=int(self.np_random.integers(2**31 - 1)))
        self._chunks: list[np.ndarray] = []
        self._context = np.zeros(self.samples_per_frame // 2, np.float32)
        self.steps = 0
        return self._observation(silence()), self._info([])

    def step(self, action):
        if self.data is None:
            raise EnvError("call reset() before step()")
        action = np.clip(np.asarray(action, np.float32).reshape(2), -1.0, 1.0)
        if self.agent_body is not None:
            self.data.xfrc_applied[self.agent_body, :2] = PUSH_FORCE * action
        new_events = []
        for _ in range(FRAME_SKIP):
            mujoco.mj_step(self.model, self.data)
            events, impacts, slides = self.detector.update(self.data)
            new_events += events
            if self.use_audio:
                self.synth.add(impacts, slides, TIMESTEP)
        self.steps += 1
        mel = silence()
        if self.use_audio:
            chunk = self.synth.render(self.samples_per_frame)
            self._chunks.append(chunk)
            mel = frame_log_mel(chunk, self.samples_per_frame, SAMPLE_RATE, context=self._context)[0]
            self._context = chunk[-(self.samples_per_frame // 2) :]
        reward, terminated = self._reward()
        return self._observation(mel), reward, terminated, False, self._info(new_events)

    def _reward(self) -> tuple[float, bool]:
        if self.target_body is None or self.scene.goal is None:
            return 0.0, False
        gx, gy, r = self.scene.goal
        distance = float(np.hypot(*(self.data.xpos[self.target_body, :2] - (gx, gy))))
        return -distance, distance <= r

    def _observation(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        obs = {"state": self.state()}
        if self.use_pixels:
            obs["pixels"] = self.render_frame()
        if self.use_audio:
            obs["audio"] = mel.astype(np.float32)
        return obs

    def _info(self, new_events: list[Event]) -> dict[str, Any]:
        return {
            "events": [e.to_dict() for e in new_events],
            "event_log": self.events,
            "scene_seed": self.scene.seed,
            "time": float(self.data.time),
        }

    def state(self) -> np.ndarray:
        out = np.zeros((MAX_OBJECTS, STATE_PER_OBJECT), np.float32)
        for i, joint in enumerate(self.slots):
            a, v = int(joint.qposadr[0]), int(joint.dofadr[0])
            out[i, :7] = self.data.qpos[a : a + 7]
            out[i, 7:] = self.data.qvel[v : v + 6]
        return out.reshape(-1)

    def render_frame(self) -> np.ndarray:
        renderer = self._renderer_ready()
        renderer.update_scene(self.data, camera=CAMERA)
        return np.asarray(renderer.render(), np.uint8).copy()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.data is None:
            return None
        return self.render_frame()

    def waveform(self) -> np.ndarray:
        """The episode's synthetic audio derived from contacts so far (float32, ``SAMPLE_RATE`` Hz)."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


__all__ = ["ENV_ID", "PUSH_FORCE", "STATE_PER_OBJECT", "PlaygroundEnv"]
