"""From a YAML config to a trained world model: load + override + validate, build data/task/model, fit.

Config layout (every section optional except ``data.root`` and ``model.family``)::

    output_dir: runs/ensemble_pendulum
    seed: 0
    data: {root, obs_key | obs_keys, window, val_fraction, task_id, target_fps, collect: {...CollectConfig fields...},
          synthetic: {...MovingShapesConfig fields: a moving-square video written when root is missing...}}

``data.obs_key`` (one dataset key) or ``data.obs_keys`` (several) choose what the model observes; when neither is
set the family decides from the dataset's features (``WorldModel.observation_keys``: the ensemble reads every
vector ``observation.*`` key, other families ``observation.state``). ``data.target_fps`` trains on every k-th
frame (``k = dataset fps / target_fps``, a whole number): the model then steps at ``target_fps`` with action repeat k.
    model: {family: ensemble, ...that family's config fields...}
    trainer: {...TrainerConfig fields...}

Overrides are ``dotted.key=value`` strings whose values are parsed as YAML scalars (``trainer.lr=3e-4``,
``trainer.ema_decay=null``, ``model.hidden_dims=[64,64]``). Any key the schema does not know is an error
naming the key, whether it comes from the file or from an override.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from tensordict import TensorDict

from worldrl.config_loading import config_from_dict, load_yaml
from worldrl.data.suite_layouts import check_dataset_task
from worldrl.errors import ConfigError
from worldrl.io import atomic_write_bytes
from worldrl.models.base import WorldModel, build_model, get_family
from worldrl.models.observations import episode_start_observations
from worldrl.models.task_spec import SUPERVISION_DIMS, TaskSpec
from worldrl.tasks.suites import suite_of
from worldrl.training.config import TrainerConfig
from worldrl.training.distributed import main_process_first, process_info
from worldrl.training.trainer import Trainer, TrainResult, resolve_device, seed_everything

TOP_KEYS = ("output_dir", "seed", "init_from", "data", "model", "trainer")
"""``init_from``: a saved model directory (e.g. a run's ``checkpoints/step_N/model``) whose weights the run starts
from, with a fresh optimizer: fine-tuning under other loss weights. Its tensors must match the run's model."""
MAX_SAVED_STARTS = 1024
"""Episode starts saved with a checkpoint at most (a pixel dataset's first frames must stay small)."""
DATA_DEFAULTS: dict[str, Any] = {
    "root": None,
    "obs_key": None,
    "obs_keys": None,
    "window": 2,
    "val_fraction": 0.1,
    "task_id": None,
    "target_fps": None,
    "collect": None,
    "synthetic": None,
    "video_cache_mb": 256,
}


# --------------------------------------------------------------------------- loading and overrides
def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML config, apply ``key=value`` overrides and validate the result.

    ``path`` is a file, or the name of a preset shipped in the package (``vjepa2_debug``, ``vjepa2_debug.yaml``:
    ``worldrl.configs``, the repository's ``configs/``)."""
    path = Path(path)
    if not path.is_file() and len(path.parts) == 1:
        from importlib import resources

        preset = resources.files("worldrl.configs") / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
        path = Path(str(preset)) if preset.is_file() else path
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    cfg = load_yaml(path.read_text(), str(path)) or {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level, got {type(cfg).__name__}")
    cfg = coerce_numbers(apply_overrides(cfg, overrides))
    validate_config(cfg)
    return cfg


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def coerce_numbers(node: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` (no dot) as a string; turn such strings back into floats, everywhere."""
    if isinstance(node, dict):
        return {k: coerce_numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [coerce_numbers(v) for v in node]
    if isinstance(node, str) and _SCIENTIFIC.fullmatch(node.strip()):
        return float(node)
    return node


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.lr=3e-4"`` -> ``(["trainer", "lr"], 0.0003)``; the value is a YAML scalar (or flow list/map)."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"override {text!r} must look like dotted.key=value")
    value = load_yaml(raw, f"override {text!r}: value {raw!r}") if raw.strip() else None
    return parts, coerce_numbers(value)


def apply_overrides(cfg: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``cfg`` with each override set (intermediate sections are created when missing)."""
    out = yaml.safe_load(yaml.safe_dump(cfg))  # deep copy of plain data
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(parts[: depth + 1])} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def validate_config(cfg: dict[str, Any]) -> None:
    """Raise ``ConfigError`` naming the first key the schema does not know, or a missing required key."""
    _known(cfg, "", TOP_KEYS)
    data = _section(cfg, "data")
    _known(data, "data.", DATA_DEFAULTS)
    requested_keys(data)
    _check_data_values(data)
    if not data.get("root"):
        raise ConfigError("data.root is required (a LeRobot dataset directory or a Hub repo id)")
    if data.get("collect") is not None:
        collect = _section(data, "collect", "data.collect")
        collect_config(collect, data["root"])
    if data.get("synthetic") is not None:
        from worldrl.data.moving_shapes import MovingShapesConfig

        config_from_dict(MovingShapesConfig, _section(data, "synthetic", "data.synthetic"), "data.synthetic")
    if cfg.get("init_from") is not None and not isinstance(cfg["init_from"], str):
        raise ConfigError(f"init_from must be a saved model's directory or Hub id, got {cfg['init_from']!r}")
    model = _section(cfg, "model")
    family = model.get("family")
    if not family:
        raise ConfigError("model.family is required (e.g. ensemble, vrnn)")
    try:
        config_class = get_family(family).config_class
    except KeyError as err:
        raise ConfigError(f"model.family: {err.args[0]}") from None
    # keys and values, before any data is read or collected (the strict loader names the bad field)
    config_class.from_dict(model, "model")
    TrainerConfig.from_dict(_section(cfg, "trainer"), "trainer")


def _check_data_values(data: dict[str, Any]) -> None:
    """The numeric ``data`` fields, typed and in range (a typo like ``data.window=two`` must not reach a loop)."""

    def number(key: str, whole: bool) -> float | None:
        value = data.get(key)
        if value is None or isinstance(value, bool):
            return None if value is None else float("nan")
        try:
            x = float(value)
        except (TypeError, ValueError):
            return float("nan")
        return x if not whole or x.is_integer() else float("nan")

    window = number("window", whole=True)
    if "window" in data and not (window is not None and window >= 1):
        raise ConfigError(f"data.window must be an integer >= 1, got {data['window']!r}")
    fraction = number("val_fraction", whole=False)
    if "val_fraction" in data and not (fraction is not None and 0 <= fraction < 1):
        raise ConfigError(f"data.val_fraction must be a number in [0, 1), got {data['val_fraction']!r}")
    fps = number("target_fps", whole=False)
    if data.get("target_fps") is not None and not (fps is not None and fps > 0):
        raise ConfigError(f"data.target_fps must be a number > 0 or null, got {data['target_fps']!r}")
    cache = number("video_cache_mb", whole=True)
    if "video_cache_mb" in data and not (cache is not None and cache >= 0):
        raise ConfigError(f"data.video_cache_mb must be an integer >= 0, got {data['video_cache_mb']!r}")


def _section(cfg: dict[str, Any], key: str, name: str | None = None) -> dict[str, Any]:
    value = cfg.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{name or key} must be a mapping, got {value!r}")
    return value


def _known(section: dict[str, Any], prefix: str, known: Any) -> None:
    for key in section:
        if key not in known:
            raise ConfigError(f"unknown config key '{prefix}{key}'; known keys there: {sorted(known)}")


def collect_config(section: dict[str, Any], root: str) -> Any:
    """The ``CollectConfig`` of a ``data.collect`` section, recording into the dataset ``root``."""
    from worldrl.data.collect import CollectConfig

    return config_from_dict(CollectConfig, {**section, "out": root}, "data.collect")


# --------------------------------------------------------------------------- the task
def requested_keys(data: dict[str, Any]) -> list[str] | None:
    """The observation keys a config's ``data`` section names, or None to let the family choose."""
    if data.get("obs_key") and data.get("obs_keys"):
        raise ConfigError("set data.obs_key or data.obs_keys, not both")
    if data.get("obs_keys"):
        keys = data["obs_keys"]
        if isinstance(keys, str) or not all(isinstance(k, str) for k in keys) or not keys:
            raise ConfigError(f"data.obs_keys must be a non-empty list of dataset keys, got {keys!r}")
        return list(keys)
    return [data["obs_key"]] if data.get("obs_key") else None


def infer_task(reader: Any, obs_keys: str | list[str], task_id: str | None) -> TaskSpec:
    """Spaces from the real env when ``task_id`` is a registered gymnasium id, else from the dataset.

    Several keys give a keyed task (a ``Dict`` observation space); the real env's space then checks the
    ``observation.state`` key, whose layout it defines.
    """
    keys = [obs_keys] if isinstance(obs_keys, str) else list(obs_keys)
    features = reader.features
    for key in (*keys, "action"):
        if key not in features:
            raise ConfigError(f"dataset {reader.root} has no feature {key!r}; features: {sorted(features)}")
    check_dataset_task(reader.info.get("robot_type"), task_id)  # a PushT recording is no model of FetchPush
    recorded = reader.info.get("robot_type")
    if task_id is None and recorded is not None and (recorded in gym.registry or suite_of(recorded) is not None):
        task_id = recorded
    # suite recordings (PushT, ALOHA, Fetch) use LeRobot's keys, not the env's default observation: spaces from data
    known = task_id is not None and task_id in gym.registry and suite_of(task_id) is None
    real = TaskSpec.from_env_id(task_id) if known else None
    spaces = {key: _key_space(features[key], key, real, task_id, single=len(keys) == 1) for key in keys}
    action_space = real.action_space if real is not None else _action_box_from_stats(reader)
    fields = {"task_id": task_id, "fps": float(reader.fps), "max_episode_steps": real and real.max_episode_steps}
    return TaskSpec.keyed(spaces, action_space, **fields)


def _key_space(
    feature: dict[str, Any], key: str, real: TaskSpec | None, task_id: str | None, single: bool
) -> gym.spaces.Box:
    """One key's Box: uint8 frames for images, the real env's space for its state vector, the bounds recorded in
    the feature (suite recordings), else unbounded."""
    shape = tuple(int(s) for s in feature["shape"])
    if feature["dtype"] in ("image", "video"):
        return gym.spaces.Box(0, 255, shape, np.uint8)
    if real is not None and (single or key == "observation.state"):
        space = real.observation_space
        if isinstance(space, gym.spaces.Dict):  # keyed real env (Playground-v0): its entry of the same name
            space = space.spaces.get(key.removeprefix("observation."))
            if space is None:
                return gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
        if tuple(space.shape or ()) != shape:
            raise ConfigError(f"data key {key!r} has shape {shape} but {task_id} observations have {space.shape}")
        return space
    if "low" in feature and "high" in feature:  # the env's own bounds, recorded by collect (suite_layouts)
        low, high = (np.asarray(feature[b], np.float32).reshape(shape) for b in ("low", "high"))
        return gym.spaces.Box(low, high, shape, np.float32)
    return gym.spaces.Box(-np.inf, np.inf, shape, np.float32)


def _action_box_from_stats(reader: Any) -> gym.spaces.Box:
    shape = tuple(int(s) for s in reader.features["action"]["shape"])
    stats = (reader.stats or {}).get("action", {})
    low = np.asarray(stats.get("min", np.full(shape, -np.inf)), np.float32).reshape(shape)
    high = np.asarray(stats.get("max", np.full(shape, np.inf)), np.float32).reshape(shape)
    return gym.spaces.Box(low, high, shape, np.float32)


# --------------------------------------------------------------------------- building and training
def build_trainer(cfg: dict[str, Any]) -> Trainer:
    """Everything ``train_from_config`` does before ``fit``: data, split, task, model, normalisation, trainer."""
    from worldrl.data import LeRobotDatasetReader, WindowDataset, split_episodes, termination_key
    from worldrl.data.sequences import frame_step_for

    cfg = coerce_numbers(cfg)
    validate_config(cfg)
    seed = int(cfg.get("seed", 0))
    data = {**DATA_DEFAULTS, **(cfg.get("data") or {})}
    root = data["root"]
    trainer_cfg = TrainerConfig.from_dict({"seed": seed, **(cfg.get("trainer") or {})})
    # under torchrun one process records a missing dataset; the others read it once it is there
    with main_process_first(trainer_cfg.strategy, resolve_device(trainer_cfg.device)):
        prepare_dataset(data, root)
    # decoded video segments are kept up to this size: training windows revisit episodes, and a segment that
    # fell out of the cache is decoded again whole
    reader = LeRobotDatasetReader(root, video_cache_mb=int(data["video_cache_mb"]))
    family = get_family(cfg["model"]["family"]).model_class
    try:
        obs_keys = family.observation_keys(reader.features, requested_keys(data))
    except ValueError as err:
        raise ConfigError(f"dataset {root}: {err}") from None
    task = infer_task(reader, obs_keys, data["task_id"])
    # absent reward/termination columns map to None: the windows then hold zeros (no reward, never terminal)
    keys = {
        **({"obs": task.obs_key} if not task.is_keyed else {f"obs/{key}": key for key in task.obs_keys}),
        "action": "action",
        "reward": "next.reward" if "next.reward" in reader.features else None,
        "terminated": termination_key(reader),
        **supervision_windows(reader, task, cfg["model"].get("supervision_keys") or []),
    }
    episodes = [int(e["episode_index"]) for e in reader.episodes]
    train_eps, val_eps = split_episodes(episodes, float(data["val_fraction"]), seed)
    window = int(data["window"])
    step = frame_step_for(float(reader.fps), data["target_fps"])
    task.fps = float(reader.fps) / step  # the model's step spans `step` recorded frames
    train_ds = WindowDataset(reader, keys=keys, window=window, episodes=train_eps, frame_step=step)
    val_ds = (
        WindowDataset(reader, keys=keys, window=window, episodes=val_eps, frame_step=step) if len(val_eps) else None
    )

    seed_everything(seed)  # model initialisation is part of the run's reproducibility
    model_cfg = dict(cfg["model"])
    model = build_model(model_cfg.pop("family"), model_cfg, task)
    model.fit_normalization(_available_stats(train_ds, [name for name in keys if keys[name] and name != "terminated"]))
    # Envs built from the checkpoint reset from these (the training episodes' first observations).
    model.start_states = episode_starts(reader, task, train_eps[:MAX_SAVED_STARTS])
    if cfg.get("init_from"):
        from worldrl.models.checkpoint import initialise_from

        initialise_from(model, cfg["init_from"])  # normalisation buffers included: they are part of the weights
    output_dir = Path(cfg.get("output_dir") or "runs/default")
    return Trainer(model, train_ds, val_ds, trainer_cfg, output_dir)


def supervision_windows(reader: Any, task: TaskSpec, keys: list[str]) -> dict[str, str]:
    """Window names ``supervision/<key>`` for a model's ``supervision_keys`` (dataset vectors it is trained to
    predict but never observes), with their sizes recorded in ``task.extra`` so a checkpoint rebuilds the heads."""
    if not isinstance(keys, list | tuple):
        raise ConfigError(f"model.supervision_keys must be a list of dataset keys, got {keys!r}")
    dims = {}
    for key in keys:
        feature = reader.features.get(key)
        if feature is None or feature.get("dtype") in ("image", "video", "string"):
            vectors = [k for k, f in reader.features.items() if f.get("dtype") not in ("image", "video", "string")]
            raise ConfigError(f"model.supervision_keys: {key!r} is not a vector feature of {reader.root} ({vectors})")
        if key in task.obs_keys:
            raise ConfigError(f"model.supervision_keys: {key!r} is observed by the model; supervision keys are not")
        dims[key] = int(np.prod(feature["shape"]))
    if dims:
        task.extra[SUPERVISION_DIMS] = dims
    return {f"supervision/{key}": key for key in dims}


def prepare_dataset(data: dict[str, Any], root: str) -> None:
    """Record (``data.collect``) or synthesise (``data.synthetic``) the dataset ``root`` when it is missing."""
    if data["collect"] and not (Path(root) / "meta" / "info.json").exists():
        from worldrl.data.collect import collect

        collect(collect_config(data["collect"], root))
    if data["synthetic"] is not None and not (Path(root) / "meta" / "info.json").exists():
        from worldrl.data.moving_shapes import MovingShapesConfig, write_moving_shapes

        write_moving_shapes(root, config_from_dict(MovingShapesConfig, data["synthetic"] or {}, "data.synthetic"))


def episode_starts(reader: Any, task: TaskSpec, episodes: list[int]) -> torch.Tensor | TensorDict:
    """The first observation of each episode: a tensor, or a TensorDict with one entry per key of a keyed task."""
    starts = episode_start_observations(reader, task, episodes)
    if not task.is_keyed:
        return torch.as_tensor(starts)
    return TensorDict({key: torch.as_tensor(value) for key, value in starts.items()}, batch_size=[len(episodes)])


def _available_stats(dataset: Any, roles: list[str]) -> dict[str, dict[str, Any]]:
    """Dataset statistics per role; roles without any (images lacking stats) are left to the model to fit."""
    stats = {}
    for role in roles:
        try:
            stats[role] = dataset.stats(role)
        except KeyError:
            continue
    return stats


RESUMABLE_KEYS = (
    "output_dir",
    "trainer.max_steps",
    "trainer.eval_every",
    "trainer.val_batches",
    "trainer.early_stopping_patience",
    "trainer.checkpoint_every",
    "trainer.keep_last",
    "trainer.log_every",
    "trainer.progress",
    "trainer.loggers",
    "trainer.num_workers",
    "trainer.device",
    "trainer.wandb_project",
    "data.video_cache_mb",
)
"""Settings ``--resume`` may change (how long the run goes and how it is observed); other changes are refused."""


def accept_run(cfg: dict[str, Any], resume: bool) -> list[str]:
    """Decide whether the run ``cfg`` may start in its ``output_dir``, before anything is written there.

    A directory holding checkpoints needs ``resume``; a resume whose settings differ from the run's saved
    ``config.yaml`` is refused naming the changed keys, unless all of them are ``RESUMABLE_KEYS``. Returns
    those changes (``"key: old -> new"``) for the caller to report; they apply to the resumed run.
    """
    from worldrl.errors import OutputExistsError
    from worldrl.training.checkpointing import latest_checkpoint

    output_dir = Path(cfg.get("output_dir") or "runs/default")
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputExistsError(f"output_dir {output_dir} is a file, not a directory")
    if latest_checkpoint(output_dir / "checkpoints") is None:
        return []
    if not resume:
        raise OutputExistsError(
            f"{output_dir} already holds checkpoints of a run; resume it (--resume / "
            "fit(resume=True)) or choose another output_dir"
        )
    saved = output_dir / "config.yaml"
    if not saved.is_file():
        return []
    old, new = _flatten(coerce_numbers(load_yaml(saved.read_text(), str(saved)) or {})), _flatten(coerce_numbers(cfg))
    changed = {k: (old.get(k), new.get(k)) for k in sorted({*old, *new}) if old.get(k) != new.get(k)}
    refused = [f"{k} ({a!r} -> {b!r})" for k, (a, b) in changed.items() if k not in RESUMABLE_KEYS]
    if refused:
        raise ConfigError(
            f"--resume of {output_dir} changes {', '.join(refused)}, which a resumed run cannot "
            f"change (it may change {', '.join(RESUMABLE_KEYS)}); restore them or train into a "
            "new output_dir"
        )
    return [f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()]


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and (node or not prefix):
        return {k: v for key, value in node.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def write_resolved_config(cfg: dict[str, Any], output_dir: Path) -> Path:
    """Keep the exact config (overrides applied) next to the run, for reproducibility (rank 0 writes it)."""
    path = output_dir / "config.yaml"
    if process_info().is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, yaml.safe_dump(cfg, sort_keys=False).encode())
    return path


def train_from_config(cfg: dict[str, Any], resume: bool = False) -> TrainResult:
    """Train the model a config describes; ``resume`` continues from the newest checkpoint of ``output_dir``
    (changed settings: see ``accept_run``)."""
    import sys

    for change in accept_run(cfg, resume):
        print(f"resume: applying changed {change}", file=sys.stderr)
    trainer = build_trainer(cfg)
    write_resolved_config(cfg, trainer.output_dir)
    return trainer.fit(resume=resume)


def load_trained(result: TrainResult, device: str = "cpu") -> WorldModel:
    """The final model of a finished run."""
    return WorldModel.from_pretrained(str(result.model_path), device=device)
