"""``create_dataloaders``: train/val/test loaders of video (+ audio + state) windows from LeRobot datasets.

The document's signature. ``datasets`` is a local dataset directory or a Hub repo id (``owner/name``), a list of
them, or a list of dicts ``{"root": ..., "camera": ..., "revision": ...}``. Episodes are split (seeded) into
train/val/test, so no window of a held-out episode is ever trained on. Items are the shared trainer's windows
(``worldrl.data.sequences.WindowDataset``): ``obs/<camera>`` uint8 ``[T, video_size, video_size, C]``,
``obs/observation.audio`` ``[T, audio_features]`` and ``obs/observation.state`` when the dataset has them,
``action``, ``reward``, ``terminated``, ``is_first``, ``mask``; the loaders collate them into ``[B, T]``
TensorDicts (``batch["obs"][key]``), which is what ``NeuralWorldTrainer`` and ``worldrl train`` consume.

A Hub id that is not cached while offline, a dataset without a camera, or audio of another width than
``audio_features`` is a one-line ``DataLoadingError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate

from worldrl.data.hub import resolve_dataset_root
from worldrl.data.lerobot_format import DatasetNotFoundError, termination_key
from worldrl.data.reader import LeRobotDatasetReader
from worldrl.data.sequences import WindowDataset
from worldrl.errors import DataLoadingError

AUDIO_KEY = "observation.audio"
STATE_KEY = "observation.state"
SPLITS = ("train", "val", "test")


def split_episodes_three(
    episodes: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Seeded split of episode indices into train/val/test (each held-out split gets >= 1 episode when asked
    for and there are enough episodes; train always keeps at least one)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataLoadingError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 with a sum below 1"
        )
    eps = [int(e) for e in episodes]
    order = [eps[i] for i in np.random.default_rng(seed).permutation(len(eps))]
    counts = []
    for fraction in (val_fraction, test_fraction):
        n = int(round(len(eps) * fraction))
        counts.append(max(n, 1) if fraction > 0 and len(eps) - sum(counts) > 1 else n)
    n_val, n_test = counts
    if n_val + n_test >= len(eps):
        raise DataLoadingError(f"{len(eps)} episode(s) cannot be split into train/val/test with these fractions")
    return {
        "val": sorted(order[:n_val]),
        "test": sorted(order[n_val : n_val + n_test]),
        "train": sorted(order[n_val + n_test :]),
    }


def _source(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"root": spec}
    if isinstance(spec, Mapping) and "root" in spec:
        unknown = sorted(set(spec) - {"root", "camera", "revision"})
        if unknown:
            raise DataLoadingError(f"dataset entry {dict(spec)} has unknown key(s) {unknown} (root, camera, revision)")
        return dict(spec)
    raise DataLoadingError(f"a dataset is a path, a Hub repo id or a dict with 'root', got {spec!r}")


def open_reader(root: str, revision: str | None = None) -> LeRobotDatasetReader:
    """A reader of a local dataset or a (cached or downloadable) Hub dataset; failures as ``DataLoadingError``."""
    try:
        return LeRobotDatasetReader(resolve_dataset_root(root, revision))
    except DatasetNotFoundError as err:
        raise DataLoadingError(str(err)) from None
    except (OSError, ValueError) as err:
        raise DataLoadingError(f"cannot read dataset {root}: {err}") from None


def window_keys(reader: LeRobotDatasetReader, camera: str | None) -> dict[str, str | None]:
    """The window layout (``obs/<key>`` names) of one camera, the audio and the state of a dataset."""
    features = reader.features
    cameras = [k for k, f in features.items() if k.startswith("observation") and f.get("dtype") in ("image", "video")]
    if camera is None and not cameras:
        raise DataLoadingError(
            f"dataset {reader.root} has no camera (observation.images.*); features: {sorted(features)}"
        )
    camera = camera or cameras[0]
    if camera not in cameras:
        raise DataLoadingError(f"dataset {reader.root} has no camera {camera!r}; cameras: {cameras}")
    keys: dict[str, str | None] = {f"obs/{camera}": camera}
    for key in (AUDIO_KEY, STATE_KEY):
        if key in features:
            keys[f"obs/{key}"] = key
    keys.update(
        {
            "action": "action",
            "reward": "next.reward" if "next.reward" in features else None,
            "terminated": termination_key(reader),
        }
    )
    return keys


class MultimodalWindows(Dataset):
    """``WindowDataset`` items with frames resized to ``video_size`` and, when ``augment``, photometric jitter
    (brightness and contrast per window: it changes no geometry, so states and audio stay true)."""

    def __init__(self, windows: WindowDataset, camera: str, video_size: int, augment: bool, seed: int = 0) -> None:
        self.windows, self.camera, self.video_size, self.augment, self.seed = windows, camera, video_size, augment, seed
        self.reader = windows.reader
        self.keys = windows.keys
        self._draws = 0

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.windows[index])
        name = f"obs/{self.camera}"
        frames = torch.as_tensor(np.asarray(item[name]))
        if frames.shape[1] != self.video_size or frames.shape[2] != self.video_size or self.augment:
            x = frames.permute(0, 3, 1, 2).float()
            if x.shape[-2:] != (self.video_size, self.video_size):
                x = F.interpolate(x, size=(self.video_size, self.video_size), mode="bilinear", antialias=True)
            if self.augment:
                self._draws += 1
                rng = np.random.default_rng([self.seed, index, self._draws])
                gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
                x = (x - 127.5) * gain + 127.5 + bias
            frames = x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        item[name] = frames
        return item

    def stats(self, role: str) -> dict[str, Any]:
        return self.windows.stats(role)


def collate_multimodal(items: list[dict[str, Any]]) -> TensorDict:
    """Windows -> a ``[B, T]`` TensorDict with the ``obs/<key>`` entries nested under ``obs`` (the layout of the
    shared trainer's batches); per-window scalars (``episode_index``) are broadcast over time."""
    stacked = default_collate(items)
    batch_size = tuple(stacked["mask"].shape[:2])
    flat, obs = {}, {}
    for name, value in stacked.items():
        value = torch.as_tensor(value)
        value = value[:, None].expand(batch_size) if value.ndim == 1 else value
        if name.startswith("obs/"):
            obs[name[len("obs/") :]] = value
        else:
            flat[name] = value
    return TensorDict({**flat, "obs": TensorDict(obs, batch_size=batch_size)}, batch_size=batch_size)


def create_dataloaders(
    datasets: str | list[str] | list[dict[str, Any]],
    batch_size: int = 32,
    num_workers: int = 4,
    pin_memory: bool = True,
    video_size: int = 256,
    sequence_length: int = 16,
    audio_features: int = 128,
    augmentation: bool = True,
    **kwargs: Any,
) -> dict[str, DataLoader]:
    """``{"train", "val", "test"}`` loaders (see the module docstring). Extra keywords: ``val_fraction`` (0.1),
    ``test_fraction`` (0.1), ``seed`` (0), ``camera`` (the first camera of each dataset), ``stride`` (1)."""
    options = {"val_fraction": 0.1, "test_fraction": 0.1, "seed": 0, "camera": None, "stride": 1}
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise DataLoadingError(f"create_dataloaders got unknown option(s) {unknown}; known: {sorted(options)}")
    options.update(kwargs)
    if batch_size < 1 or sequence_length < 1 or video_size < 1 or num_workers < 0:
        raise DataLoadingError(
            f"batch_size, sequence_length and video_size must be >= 1 and num_workers >= 0, got {batch_size}, "
            f"{sequence_length}, {video_size}, {num_workers}"
        )
    specs = [datasets] if isinstance(datasets, str | Mapping) else list(datasets)
    if not specs:
        raise DataLoadingError("create_dataloaders needs at least one dataset")
    parts: dict[str, list[MultimodalWindows]] = {split: [] for split in SPLITS}
    layout: list[str] | None = None
    for spec in specs:
        source = _source(spec)
        reader = open_reader(source["root"], source.get("revision"))
        keys = window_keys(reader, source.get("camera") or options["camera"])
        camera = next(iter(keys))[len("obs/") :]
        if AUDIO_KEY in reader.features and int(np.prod(reader.features[AUDIO_KEY]["shape"])) != audio_features:
            raise DataLoadingError(
                f"dataset {reader.root} has {reader.features[AUDIO_KEY]['shape']} audio features per frame, "
                f"but audio_features={audio_features}"
            )
        shape = [name if not name.startswith("obs/observation.images") else "camera" for name in keys if keys[name]]
        if layout is not None and shape != layout:
            raise DataLoadingError(f"dataset {reader.root} has windows {shape}, the first dataset {layout}")
        layout = shape
        episodes = [int(e["episode_index"]) for e in reader.episodes]
        split = split_episodes_three(episodes, options["val_fraction"], options["test_fraction"], options["seed"])
        for name, eps in split.items():
            if not eps:
                continue
            windows = WindowDataset(reader, keys=keys, window=sequence_length, episodes=eps, stride=options["stride"])
            augment = augmentation and name == "train"
            parts[name].append(MultimodalWindows(windows, camera, video_size, augment, options["seed"]))
    loaders = {}
    for name in SPLITS:
        if not parts[name]:
            continue
        dataset = parts[name][0] if len(parts[name]) == 1 else ConcatDataset(parts[name])
        loaders[name] = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=name == "train",
            num_workers=num_workers,
            pin_memory=pin_memory and torch.cuda.is_available(),
            collate_fn=collate_multimodal,
            generator=torch.Generator().manual_seed(int(options["seed"])) if name == "train" else None,
        )
    return loaders


__all__ = [
    "MultimodalWindows",
    "collate_multimodal",
    "create_dataloaders",
    "open_reader",
    "split_episodes_three",
    "window_keys",
]
