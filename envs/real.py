"""The real-env factory: Gymnasium ids (MuJoCo, classic control) and dm_control suite tasks.

``make_real_env("InvertedPendulum-v5", render_mode="rgb_array", width=64, height=64)`` renders
offscreen (set ``MUJOCO_GL=egl`` on a headless machine); ``make_real_env("dmc:cartpole-swingup")``
wraps a dm_control task as a Gymnasium env. ``pixels=True`` adds the rendered frame to every
observation (``{"state": obs, "pixels": uint8 [H, W, 3]}``) so vector envs render inside their
workers, at exactly the observation they return, across autoresets.

What a LeRobot dataset can store (``check_storable``):

- observation: a ``Box`` of any shape, flattened row-major to float32 ``observation.state``; or a
  ``Dict`` of Boxes, each flattened and concatenated in the Dict's own key order (gymnasium sorts
  the keys of a plain dict, so the order is alphabetical unless the env built the Dict unsorted).
- action: a ``Box`` (float32, flattened) or a ``Discrete`` (one int64 element holding the index,
  so ``action`` has shape ``[1]`` and dtype ``int64``; offsets other than 0 are kept as given).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worldrl.errors import EnvError, MissingDependencyError

DMC_INSTALL_HINT = "dm_control is not installed: `pip install worldrl[dmc]` (or `pip install dm-control`)"
PYGAME_INSTALL_HINT = "`pip install pygame` (or `pip install gymnasium[classic-control]`)"


class UnknownEnvError(EnvError):
    """An env id that neither Gymnasium's registry nor a worldrl backend knows."""


class UnsupportedSpaceError(EnvError):
    """An observation or action space that a LeRobot dataset cannot hold."""


# --------------------------------------------------------------------------- storage layout


# Feature names for tasks whose observation/action layout is documented upstream.
KNOWN_NAMES: dict[str, tuple[list[str], list[str]]] = {
    "Pendulum-v1": (["cos_theta", "sin_theta", "theta_dot"], ["torque"]),
    "InvertedPendulum-v4": (["slider_pos", "hinge_angle", "slider_vel", "hinge_vel"], ["slider_force"]),
    "InvertedPendulum-v5": (["slider_pos", "hinge_angle", "slider_vel", "hinge_vel"], ["slider_force"]),
    "CartPole-v1": (["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"], ["push"]),
    "MountainCarContinuous-v0": (["position", "velocity"], ["force"]),
}


@dataclass(frozen=True)
class StorageLayout:
    """How an env's observations and actions map onto flat dataset columns."""

    state_dim: int
    """Length of the flattened ``observation.state`` vector."""
    state_names: list[str] | None
    """One name per state element, or None where unknown."""
    dict_keys: tuple[str, ...] | None
    """Flatten order of a Dict observation; None for a Box observation."""
    action_shape: tuple[int, ...]
    """Shape of one action as the env takes it (``()`` for Discrete)."""
    action_dim: int
    """Length of the stored ``action`` vector."""
    action_dtype: str
    """``"float32"`` for Box actions, ``"int64"`` for Discrete ones."""
    action_names: list[str] | None
    """One name per action element, or None where unknown."""

    def flatten_obs(self, obs: Any) -> np.ndarray:
        """A batch of observations ``[N, ...]`` (or Dict of batches) -> float32 ``[N, state_dim]``."""
        if self.dict_keys is None:
            arr = np.asarray(obs)
            return arr.reshape(arr.shape[0], -1).astype(np.float32)
        parts = [np.asarray(obs[k]) for k in self.dict_keys]
        return np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1).astype(np.float32)

    def store_action(self, actions: np.ndarray) -> np.ndarray:
        """A batch of env actions -> the stored ``[N, action_dim]`` rows."""
        arr = np.asarray(actions)
        return arr.reshape(arr.shape[0], self.action_dim).astype(self.action_dtype)


def _flat_box_names(prefix: str, box: spaces.Box) -> list[str]:
    size = int(np.prod(box.shape))
    return [prefix] if size == 1 else [f"{prefix}.{i}" for i in range(size)]


def check_storable(env_id: str, observation_space: spaces.Space, action_space: spaces.Space) -> StorageLayout:
    """The storage layout for these spaces, or ``UnsupportedSpaceError`` naming env and space."""
    if isinstance(observation_space, spaces.Box):
        dict_keys, state_dim, state_names = None, int(np.prod(observation_space.shape)), None
    elif isinstance(observation_space, spaces.Dict) and all(
        isinstance(s, spaces.Box) for s in observation_space.spaces.values()
    ):
        dict_keys = tuple(observation_space.spaces.keys())
        state_names = [n for k in dict_keys for n in _flat_box_names(k, observation_space[k])]
        state_dim = len(state_names)
    else:
        raise UnsupportedSpaceError(
            f"env {env_id!r}: observation space {observation_space} cannot be stored; "
            "expected a Box or a Dict of Boxes"
        )
    if isinstance(action_space, spaces.Box):
        action_shape, action_dim, action_dtype = action_space.shape, int(np.prod(action_space.shape)), "float32"
    elif isinstance(action_space, spaces.Discrete):
        action_shape, action_dim, action_dtype = (), 1, "int64"
    else:
        raise UnsupportedSpaceError(
            f"env {env_id!r}: action space {action_space} cannot be stored; expected a Box or a Discrete"
        )
    known_state, known_action = KNOWN_NAMES.get(env_id, (None, None))
    if known_state is not None and len(known_state) == state_dim:
        state_names = known_state
    action_names = known_action if known_action is not None and len(known_action) == action_dim else None
    return StorageLayout(state_dim, state_names, dict_keys, tuple(action_shape), action_dim, action_dtype, action_names)


def is_storable(env_id: str, observation_space: spaces.Space, action_space: spaces.Space) -> bool:
    """Whether ``check_storable`` accepts these spaces."""
    try:
        check_storable(env_id, observation_space, action_space)
    except UnsupportedSpaceError:
        return False
    return True


# --------------------------------------------------------------------------- wrappers


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-resample an ``[H, W, 3]`` uint8 frame to ``[height, width, 3]`` (identity if it already fits)."""
    if frame.shape[:2] == (height, width):
        return frame
    from PIL import Image  # pillow ships with matplotlib, a core dependency

    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BOX))


class ResizeRender(gym.Wrapper):
    """Resizes ``render()`` output for envs that cannot render at a requested size (classic control)."""

    def __init__(self, env: gym.Env, height: int, width: int):
        super().__init__(env)
        self.height, self.width = height, width

    def render(self) -> np.ndarray:
        return resize_frame(np.asarray(self.env.render()), self.height, self.width)


class PixelObservation(gym.ObservationWrapper):
    """Observation -> ``{"state": obs, "pixels": render()}``, the frame rendered at that observation.

    Unlike gymnasium's ``AddRenderObservation`` it renders nothing at construction, so an async
    vector env's probe env in the parent process never opens a GL context before forking.
    """

    def __init__(self, env: gym.Env, height: int, width: int):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise EnvError(f"PixelObservation needs render_mode='rgb_array', got {env.render_mode!r}")
        pixel_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.observation_space = spaces.Dict({"state": env.observation_space, "pixels": pixel_space}, sort_keys=False)

    def observation(self, observation: Any) -> dict[str, Any]:
        frame = np.asarray(self.env.render())
        if frame.shape != self.observation_space["pixels"].shape:
            raise ValueError(
                f"render() returned a frame of shape {frame.shape}, expected {self.observation_space['pixels'].shape}"
            )
        return {"state": observation, "pixels": frame}


# --------------------------------------------------------------------------- dm_control adapter


class DMCEnv(gym.Env):
    """A dm_control suite task as a Gymnasium env.

    The observation dict is flattened in the order of the task's observation spec (dm_control
    keeps it ordered) into a float32 Box; the action Box comes from the action spec. dm_control
    episodes end only by its time limit, reported as truncation unless the task sets discount 0.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self, domain: str, task: str, *, render_mode: str | None = None, width: int = 64, height: int = 64,
        camera: str | int | None = None, task_kwargs: dict | None = None, environment_kwargs: dict | None = None,
    ):
        try:
            from dm_control import suite
        except ImportError as err:
            raise MissingDependencyError(DMC_INSTALL_HINT) from err
        if (domain, task) not in suite.ALL_TASKS:
            close = difflib.get_close_matches(f"{domain}-{task}", [f"{d}-{t}" for d, t in suite.ALL_TASKS], n=5)
            raise UnknownEnvError(f"unknown dm_control task 'dmc:{domain}-{task}'; close matches: {close}")
        if render_mode not in (None, "rgb_array"):
            raise EnvError(f"DMCEnv supports render_mode None or 'rgb_array', got {render_mode!r}")
        self._suite, self.domain, self.task = suite, domain, task
        self._task_kwargs, self._env_kwargs = dict(task_kwargs or {}), dict(environment_kwargs or {})
        self.render_mode, self.width, self.height = render_mode, width, height
        self.camera = 0 if camera is None else camera
        try:
            self._env = self._load(self._task_kwargs.get("random"))
        except AttributeError as err:  # dm_control's generated bindings lag behind a newer mujoco
            import mujoco

            raise MissingDependencyError(
                f"dm_control cannot load 'dmc:{domain}-{task}' with mujoco {mujoco.__version__} ({err}); "
                "install a dm-control release built for this mujoco version"
            ) from err
        self.dt = float(self._env.control_timestep())
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        obs_spec = self._env.observation_spec()
        self._obs_keys = tuple(obs_spec.keys())
        size = sum(int(np.prod(s.shape)) for s in obs_spec.values())
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        act = self._env.action_spec()
        self.action_space = spaces.Box(
            np.broadcast_to(act.minimum, act.shape).astype(np.float32),
            np.broadcast_to(act.maximum, act.shape).astype(np.float32), dtype=np.float32,
        )

    @property
    def observation_names(self) -> list[str]:
        """One name per flattened observation element (``key`` or ``key.i``)."""
        spec = self._env.observation_spec()
        names = []
        for k in self._obs_keys:
            n = int(np.prod(spec[k].shape))
            names += [k] if n == 1 else [f"{k}.{i}" for i in range(n)]
        return names

    def _load(self, random: Any):
        return self._suite.load(
            self.domain, self.task, task_kwargs={**self._task_kwargs, "random": random},
            environment_kwargs=self._env_kwargs,
        )

    def _flatten(self, observation: dict) -> np.ndarray:
        return np.concatenate([np.asarray(observation[k], np.float32).ravel() for k in self._obs_keys])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:  # dm_control draws its randomness from a RandomState fixed at load time
            self._env = self._load(seed)
        step = self._env.reset()
        return self._flatten(step.observation), {}

    def step(self, action):
        step = self._env.step(np.asarray(action, np.float64))
        ended = step.last()
        terminated = bool(ended and step.discount == 0.0)
        return self._flatten(step.observation), float(step.reward or 0.0), terminated, bool(ended and not terminated), {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self._env.physics.render(height=self.height, width=self.width, camera_id=self.camera)

    def close(self):
        self._env.close()


# --------------------------------------------------------------------------- factory


def _make_dmc(name: str, *, render_mode, width, height, camera, **kwargs) -> gym.Env:
    domain, sep, task = name.partition("-")
    if not sep or not task:
        raise UnknownEnvError(f"dm_control id must look like 'dmc:domain-task' (e.g. 'dmc:cartpole-swingup'), got 'dmc:{name}'")
    if importlib.util.find_spec("dm_control") is None:
        raise MissingDependencyError(DMC_INSTALL_HINT)
    return DMCEnv(domain, task, render_mode=render_mode, width=width, height=height, camera=camera, **kwargs)


def _resolve_gym_id(env_id: str) -> str:
    """Imports a ``module:EnvId`` prefix (as ``gym.make`` does) and checks the id is registered."""
    name = env_id
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise UnknownEnvError(f"env id {env_id!r}: cannot import module {module!r} ({err})") from err
    if name not in gym.registry:
        close = difflib.get_close_matches(name, list(gym.registry.keys()), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownEnvError(f"unknown env id {env_id!r}{hint} (dm_control tasks: 'dmc:domain-task')")
    return name


def _is_mujoco(gym_id: str) -> bool:
    entry = gym.spec(gym_id).entry_point
    if not isinstance(entry, str):
        return False
    try:
        from gymnasium.envs.mujoco import MujocoEnv
        from gymnasium.envs.registration import load_env_creator

        creator = load_env_creator(entry)
    except ImportError:
        return False
    return isinstance(creator, type) and issubclass(creator, MujocoEnv)


def _make_gym(env_id: str, *, render_mode, width, height, camera, **kwargs) -> gym.Env:
    gym_id = _resolve_gym_id(env_id)
    mujoco = _is_mujoco(gym_id)
    if render_mode is not None and mujoco:  # MuJoCo renders offscreen at the requested size itself
        if not os.environ.get("DISPLAY"):
            os.environ.setdefault("MUJOCO_GL", "egl")  # headless: glfw would fail without an X display
        kwargs.update(width=width, height=height)
        if camera is not None:
            kwargs["camera_name"] = camera
    elif render_mode is not None and importlib.util.find_spec("pygame") is None:
        raise MissingDependencyError(f"rendering {env_id!r} needs pygame, which is not installed: {PYGAME_INSTALL_HINT}")
    elif render_mode == "rgb_array" and not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # offscreen pygame: no display, no XDG_RUNTIME_DIR noise
    if render_mode is not None:  # envs without rendering may not accept the argument at all
        kwargs["render_mode"] = render_mode
    env = gym.make(gym_id, **kwargs)
    if render_mode == "rgb_array" and not mujoco:
        env = ResizeRender(env, height, width)
    return env


# prefix before ":" -> factory; anything else is a Gymnasium id (optionally "module:EnvId").
BACKENDS: dict[str, Callable[..., gym.Env]] = {"dmc": _make_dmc}


def make_real_env(
    env_id: str, *, render_mode: str | None = None, width: int = 64, height: int = 64, camera: str | None = None,
    max_episode_steps: int | None = None, pixels: bool = False, render_effects: bool = True, **kwargs: Any,
) -> gym.Env:
    """A real environment by id: any Gymnasium id, or ``"dmc:domain-task"`` for dm_control.

    ``render_mode="rgb_array"`` renders ``[height, width, 3]`` frames (MuJoCo: from ``camera`` or
    the env's default camera). ``max_episode_steps`` overrides the registered time limit.
    ``pixels=True`` implies ``rgb_array`` and returns ``{"state": obs, "pixels": frame}`` observations.
    ``render_effects=False`` switches MuJoCo shadows and reflections off (much faster with software GL).
    Extra ``kwargs`` go to the env constructor.
    """
    if width <= 0 or height <= 0:
        raise EnvError(f"width and height must be positive, got {width}x{height}")
    if pixels:
        render_mode = "rgb_array"
    prefix, sep, rest = env_id.partition(":")
    factory = BACKENDS.get(prefix) if sep else None
    if factory is not None:
        env = factory(rest, render_mode=render_mode, width=width, height=height, camera=camera, **kwargs)
        if max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
    else:
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        env = _make_gym(env_id, render_mode=render_mode, width=width, height=height, camera=camera, **kwargs)
    if not render_effects:
        disable_render_effects(env)
    return PixelObservation(env, height, width) if pixels else env


def disable_render_effects(env: gym.Env) -> None:
    """No shadows, no reflections: under software GL (EGL on Mesa) these dominate render time for scenes with a
    large reflective floor, e.g. HalfCheetah-v5 renders 64x64 frames about 10x faster without them."""
    model = getattr(env.unwrapped, "model", None)
    if model is None or not hasattr(model, "light_castshadow"):
        return  # not a MuJoCo env: nothing to switch off
    model.light_castshadow[:] = 0
    model.mat_reflectance[:] = 0


def _async_vector_env(env_fns: list[Callable[[], gym.Env]], **kwargs: Any) -> gym.vector.AsyncVectorEnv:
    # Workers forked from this process inherit its EGL/GL state and can deadlock on their first
    # render; a forkserver is a fresh interpreter that imports this module once, then forks cheaply.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return gym.vector.AsyncVectorEnv(env_fns, context="forkserver", **kwargs)


VECTORIZATION: dict[str, Callable[..., gym.vector.VectorEnv]] = {
    "sync": gym.vector.SyncVectorEnv,
    "async": _async_vector_env,
}


def make_real_vector_env(
    env_id: str, num_envs: int, vectorization: str = "sync", *,
    autoreset_mode: gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP, **kwargs: Any,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``make_real_env(env_id, **kwargs)`` in a gymnasium vector env.

    ``vectorization``: ``"sync"`` (one process) or ``"async"`` (one worker process per env).
    """
    if num_envs < 1:
        raise EnvError(f"num_envs must be >= 1, got {num_envs}")
    if vectorization not in VECTORIZATION:
        raise EnvError(f"vectorization must be one of {sorted(VECTORIZATION)}, got {vectorization!r}")
    make_real_env(env_id, **kwargs).close()  # fail fast here, with our message, not inside a worker
    fns = [lambda: make_real_env(env_id, **kwargs) for _ in range(num_envs)]
    return VECTORIZATION[vectorization](fns, autoreset_mode=autoreset_mode)


def env_fps(env: gym.Env) -> int:
    """The control rate in steps per second: ``1 / dt`` where the env exposes a timestep, else render_fps."""
    base = env.unwrapped
    for attr in ("dt", "tau"):  # MuJoCo, Pendulum, Acrobot, dm_control: dt; CartPole: tau
        value = getattr(base, attr, None)
        if isinstance(value, (int, float)) and value > 0:
            return max(1, round(1.0 / value))
    return int(env.metadata.get("render_fps") or 30)


def observation_names(env: gym.Env) -> list[str] | None:
    """Names of the flattened state elements where the env knows them (dm_control), else None."""
    return getattr(env.unwrapped, "observation_names", None)
