"""The real-env factory: Gymnasium ids (MuJoCo, classic control) and dm_control suite tasks.

``make_real_env("InvertedPendulum-v5", render_mode="rgb_array", width=64, height=64)`` renders
offscreen (set ``MUJOCO_GL=egl`` on a headless machine); ``make_real_env("dmc:cartpole-swingup")``
wraps a dm_control task as a Gymnasium env. ``pixels=True`` adds the rendered frame to every
observation (``{"state": obs, "pixels": uint8 [H, W, 3]}``) so vector envs render inside their
workers, at exactly the observation they return, across autoresets.

It sits below ``worldrl.data`` (which records these envs) and ``worldrl.envs`` (which imitates them).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from worldrl.errors import EnvError, MissingDependencyError
from worldrl.tasks.render_wrappers import PixelObservation, ResizeRender, disable_render_effects
from worldrl.tasks.suites import import_suite

PYGAME_INSTALL_HINT = "`pip install pygame` (or `pip install gymnasium[classic-control]`)"


class UnknownEnvError(EnvError):
    """An env id that neither Gymnasium's registry nor a worldrl backend knows."""


def _make_dmc(name: str, *, render_mode, width, height, camera, **kwargs) -> gym.Env:
    """The ``dmc:`` backend; its adapter module is imported here, on first use, as dm_control itself is."""
    from worldrl.tasks.dmc import DMC_INSTALL_HINT, DMCEnv

    domain, sep, task = name.partition("-")
    if not sep or not task:
        raise UnknownEnvError(
            f"dm_control id must look like 'dmc:domain-task' (e.g. 'dmc:cartpole-swingup'), got 'dmc:{name}'"
        )
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
    if name not in gym.registry:  # an optional suite's id (gym_pusht/..., FetchPush-v4) or a typo
        import_suite(name)
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
        raise MissingDependencyError(
            f"rendering {env_id!r} needs pygame, which is not installed: {PYGAME_INSTALL_HINT}"
        )
    elif render_mode == "rgb_array" and not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # offscreen pygame: no display, no XDG_RUNTIME_DIR noise
    if render_mode is not None:  # envs without rendering may not accept the argument at all
        kwargs["render_mode"] = render_mode
    env = gym.make(gym_id, **kwargs)
    if camera is not None and render_mode is not None:
        check_camera(env, env_id, camera, mujoco)
    if render_mode == "rgb_array" and not mujoco:
        env = ResizeRender(env, height, width)
    return env


def check_camera(env: gym.Env, env_id: str, camera: str, mujoco: bool) -> None:
    """MuJoCo renders the default view for an unknown camera name: refuse it, naming the model's cameras."""
    model = getattr(env.unwrapped, "model", None) if mujoco else None
    names = [model.camera(i).name for i in range(model.ncam)] if model is not None else []
    if camera not in names:
        env.close()
        has = f"its cameras are {names}" if names else "it has no named cameras"
        raise EnvError(f"{env_id} has no camera {camera!r}; {has} (omit --camera for the default view)")


# prefix before ":" -> factory; anything else is a Gymnasium id (optionally "module:EnvId").
BACKENDS: dict[str, Callable[..., gym.Env]] = {"dmc": _make_dmc}


def make_real_env(
    env_id: str,
    *,
    render_mode: str | None = None,
    width: int = 64,
    height: int = 64,
    camera: str | None = None,
    max_episode_steps: int | None = None,
    pixels: bool = False,
    render_effects: bool = True,
    **kwargs: Any,
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
    env_id: str,
    num_envs: int,
    vectorization: str = "sync",
    *,
    autoreset_mode: gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP,
    **kwargs: Any,
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


def tracking_camera(env_id: str) -> str | None:
    """The first camera of a Gymnasium MuJoCo env's model that follows a body, else None (other envs too).

    HalfCheetah-v5's default view is fixed, so a cheetah that runs leaves the frame within a second; its model's
    ``track`` camera follows the torso. Building the env (without rendering) only to read the model is cheap."""
    import mujoco

    if env_id.startswith("dmc:"):
        return None
    env = make_real_env(env_id)
    try:
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            return None
        following = {int(mujoco.mjtCamLight.mjCAMLIGHT_TRACK), int(mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM)}
        names = [model.camera(i).name for i in range(model.ncam) if int(model.cam_mode[i]) in following]
        return names[0] if names else None
    finally:
        env.close()


def observation_names(env: gym.Env) -> list[str] | None:
    """Names of the flattened state elements where the env knows them (dm_control), else None."""
    return getattr(env.unwrapped, "observation_names", None)


__all__ = [
    "BACKENDS",
    "PYGAME_INSTALL_HINT",
    "VECTORIZATION",
    "UnknownEnvError",
    "env_fps",
    "make_real_env",
    "make_real_vector_env",
    "observation_names",
    "tracking_camera",
]
