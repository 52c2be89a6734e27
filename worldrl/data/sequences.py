"""Fixed-length training windows over a LeRobot dataset that never cross an episode boundary.

All index arithmetic is precomputed: item ``i`` is an anchor frame; its window is ``anchor + offsets``,
clamped to the anchor's episode. Steps past the episode end repeat the last frame and are marked
False in ``mask``, so a model can ignore them (DreamerV3/TD-MPC2 style padded batches).

``frame_step`` samples every k-th frame (``frame_step_for`` picks k from a dataset's fps and the fps a model
should see, as V-JEPA 2-AC trains on 4 fps clips of 15 fps DROID videos). Every key is subsampled alike, so the
action of a model step is the first action of its k recorded steps: a model trained so acts with action repeat k.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from worldrl.data.lerobot_format import termination_key
from worldrl.data.reader import LeRobotDatasetReader
from worldrl.data.stats import stats_arrays, vector_stats
from worldrl.errors import ConfigError


def default_keys(reader: LeRobotDatasetReader) -> dict[str, str | None]:
    """obs/action/reward/terminated as worldrl names them; reward and terminated are None when absent."""
    keys: dict[str, str | None] = {
        "obs": "observation.state",
        "action": "action",
        "reward": "next.reward",
        "terminated": termination_key(reader),
    }
    if "next.reward" not in reader.features:
        warnings.warn(f"{reader.root} has no 'next.reward': window key 'reward' will be zeros", stacklevel=3)
        keys["reward"] = None
    return keys


def window_offsets(delta_timestamps: Sequence[float], fps: int, name: str) -> np.ndarray:
    """Frame offsets for time offsets in seconds; each must sit on the frame grid (1e-4 s tolerance, as lerobot)."""
    deltas = np.asarray(list(delta_timestamps), dtype=np.float64)
    if deltas.ndim != 1 or len(deltas) == 0:
        raise ConfigError(f"delta_timestamps[{name!r}] must be a non-empty list of seconds")
    frames = np.rint(deltas * fps)
    off_grid = np.abs(frames / fps - deltas) > 1e-4
    if off_grid.any():
        raise ConfigError(
            f"delta_timestamps[{name!r}] = {deltas[off_grid].tolist()} are not multiples of 1/fps = {1 / fps:.6f}s"
        )
    return frames.astype(np.int64)


def frame_step_for(fps: float, target_fps: float | None) -> int:
    """Frames to skip so ``fps`` recordings play at ``target_fps`` (None: 1); it must divide ``fps`` exactly."""
    if target_fps is None:
        return 1
    if not target_fps > 0 or target_fps > fps:
        raise ConfigError(f"target fps must be in (0, {fps:g}] (the dataset's fps), got {target_fps!r}")
    step = round(fps / target_fps)
    if abs(fps / step - target_fps) > 1e-6 * fps:
        raise ConfigError(
            f"target fps {target_fps:g} is not the dataset's {fps:g} fps divided by a whole number "
            f"(nearest: {fps / step:g} with frame_step {step})"
        )
    return step


class WindowDataset(Dataset):
    """``ds[i]`` -> ``{name: [T, *shape], "mask": [T], "is_first": [T], "episode_index": ()}`` (see module doc)."""

    def __init__(
        self,
        reader: LeRobotDatasetReader,
        keys: Mapping[str, str | None] | None = None,
        window: int = 2,
        episodes: Sequence[int] | None = None,
        stride: int = 1,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        image_format: Literal["uint8", "float"] = "uint8",
        pad_end: bool = True,
        frame_step: int = 1,
    ) -> None:
        if frame_step < 1:
            raise ConfigError(f"frame_step must be >= 1, got {frame_step}")
        if window < 1:
            raise ConfigError(f"window must be >= 1, got {window}")
        if stride < 1:
            raise ConfigError(f"stride must be >= 1, got {stride}")
        if image_format not in ("uint8", "float"):
            raise ConfigError(f"image_format must be 'uint8' or 'float', got {image_format!r}")
        self.reader, self.window, self.stride, self.pad_end = reader, window, stride, pad_end
        self.frame_step = frame_step
        self.image_format = image_format
        self.keys = dict(keys) if keys is not None else default_keys(reader)
        for name, key in self.keys.items():
            if key is not None and key not in reader.features:
                raise KeyError(
                    f"window key {name!r} -> {key!r} is not a feature of {reader.root} (features: {list(reader.features)})"
                )
        self.offsets = {name: np.arange(window) * frame_step for name in self.keys}
        self.delta_names = set(delta_timestamps or {})
        for name, deltas in (delta_timestamps or {}).items():
            if name not in self.keys:
                raise KeyError(
                    f"delta_timestamps names {name!r}, which is not one of the window keys {list(self.keys)}"
                )
            self.offsets[name] = window_offsets(deltas, reader.fps, name)  # seconds: fps-aware already
        self.episodes = list(episodes) if episodes is not None else [int(e["episode_index"]) for e in reader.episodes]
        self._anchors, self._ep_lo, self._ep_hi, self._ep_idx = self._build_index()
        self._columns = {
            key: reader.column(key)
            for key in self.keys.values()
            if key is not None and reader.features[key]["dtype"] not in ("image", "video")
        }

    def _build_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        anchors, lo, hi, ep_ids = [], [], [], []
        for ep in self.episodes:
            start, end = self.reader.episode_range(ep)
            last_start = end - 1 if self.pad_end else end - 1 - (self.window - 1) * self.frame_step
            a = np.arange(start, last_start + 1, self.stride, dtype=np.int64)
            anchors.append(a)
            lo.append(np.full(len(a), start))
            hi.append(np.full(len(a), end))
            ep_ids.append(np.full(len(a), ep))
        cat = lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)  # noqa: E731
        return cat(anchors), cat(lo), cat(hi), cat(ep_ids)

    def __len__(self) -> int:
        return len(self._anchors)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range ({len(self)} windows)")
        anchor, lo, hi = self._anchors[i], self._ep_lo[i], self._ep_hi[i]
        base = anchor + np.arange(self.window) * self.frame_step
        out: dict[str, torch.Tensor] = {
            "mask": torch.from_numpy(base < hi),
            "is_first": torch.from_numpy(base == lo),
            "episode_index": torch.tensor(int(self._ep_idx[i]), dtype=torch.int64),
        }
        for name, key in self.keys.items():
            pos = anchor + self.offsets[name]
            idx = np.clip(pos, lo, hi - 1)
            out[name] = self._values(key, idx)
            if name in self.delta_names:
                out[f"{name}_is_pad"] = torch.from_numpy((pos < lo) | (pos >= hi))
        return out

    def _values(self, key: str | None, idx: np.ndarray) -> torch.Tensor:
        if key is None:
            return torch.zeros(len(idx), dtype=torch.float32)
        if key not in self._columns:
            frames = torch.from_numpy(self.reader.frames(key, idx))
            return frames.float().div_(255.0) if self.image_format == "float" else frames
        values = self._columns[key][idx]
        if is_scalar_signal(key, self.reader.features[key]):
            values = values.reshape(len(idx))
        return torch.from_numpy(np.ascontiguousarray(values))

    def stats(self, name: str) -> dict[str, np.ndarray]:
        """Statistics of a mapped name (from meta/stats.json, else computed), float32; (1,) squeezed to ()."""
        key = self.keys.get(name)
        if key is None:
            raise KeyError(f"{name!r} is not a window key with a feature (keys: {self.keys})")
        ft = self.reader.features[key]
        raw = self.reader.stats.get(key)
        if raw is None:
            if ft["dtype"] in ("image", "video", "string"):
                raise KeyError(f"{self.reader.root} has no stats for {key!r} in meta/stats.json")
            raw = vector_stats(self.reader.column(key))
        out = stats_arrays(raw)
        if is_scalar_signal(key, ft):
            out = {k: v if k == "count" else v.reshape(()) for k, v in out.items()}
        return out


def is_scalar_signal(key: str, feature: dict) -> bool:
    """LeRobot stores per-step signals (``next.reward``, ``next.done``...) with shape (1,); windows give them as
    ``[T]``. Actions and states keep their feature dimension even when it is 1 (Pendulum's action is ``[T, 1]``)."""
    return key.startswith("next.") and tuple(feature["shape"]) == (1,)


def split_episodes(
    episode_indices: Sequence[int], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Random train/validation split of episodes; at least one validation episode when there are >= 2."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    eps = [int(e) for e in episode_indices]
    if len(set(eps)) != len(eps):
        raise ConfigError("episode_indices has duplicates")
    n_val = int(round(len(eps) * val_fraction))
    n_val = min(max(n_val, 1), len(eps) - 1) if len(eps) >= 2 and val_fraction > 0 else 0
    perm = np.random.default_rng(seed).permutation(len(eps))
    val = sorted(eps[j] for j in perm[:n_val])
    train = sorted(eps[j] for j in perm[n_val:])
    return train, val
