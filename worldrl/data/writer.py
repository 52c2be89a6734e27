"""Write LeRobot v3.0 datasets: ``create -> add_frame -> save_episode -> finalize``, as lerobot does.

Files match lerobot's: many episodes per data parquet (a new file past ``data_files_size_in_mb``) and
many episodes per mp4 (a new file past ``video_files_size_in_mb``); video frames are encoded while they
arrive and appended to the current mp4 by remuxing at ``save_episode``.

Crash safety. Every file is replaced atomically (temp file + ``os.replace``), so no reader ever sees a
torn file; the price is that ``save_episode`` rewrites the current data parquet and mp4 (bounded by the
size limits; lower them with ``data_files_size_in_mb``/``video_files_size_in_mb`` for huge recordings).
An episode is committed in memory only after its data and video files are on disk, and the metadata
files (tasks, episodes table, stats, info) are then rewritten from that committed state, so a failure
anywhere leaves the metadata describing exactly the finished episodes once ``finalize`` runs (the
with-block runs it on any exception, Ctrl-C included; SIGINT is deferred while an episode commits).

One writer at a time. ``create`` takes an exclusive OS lock (``flock``) on ``<root>/.worldrl.lock`` and
``finalize`` releases it; the OS releases it when the process dies, so a killed writer never blocks the
next one. A second writer (resume, overwrite or new) fails at once with a ``DatasetLockedError``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from worldrl.data.lerobot_format import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNKS_SIZE,
    DEFAULT_DATA_FILE_SIZE_MB,
    DEFAULT_FEATURES,
    DEFAULT_VIDEO_FILE_SIZE_MB,
    EPISODES_PATH,
    INFO_PATH,
    NUMERIC_DTYPES,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    DatasetExistsError,
    DatasetFormatError,
    coerce_frame_value,
    data_schema,
    feature_differences,
    file_size_mb,
    has_dataset,
    keys_of_dtype,
    next_chunk_file,
    validate_features,
    write_parquet,
)
from worldrl.data.reader import read_episodes_table, read_info, read_stats, read_tasks
from worldrl.data.stats import ImageStatsAccumulator, aggregate_stats, vector_stats
from worldrl.data.video import EpisodeVideoEncoder, VideoSettings, concatenate_videos, probe_video_info
from worldrl.errors import ConfigError, DatasetError
from worldrl.io import FileLock, LockHeldError, atomic_path, write_json

STAGING_DIR = ".worldrl-staging"  # in-progress episode videos; ignored by readers, removed by finalize
LOCK_FILE = ".worldrl.lock"  # held by the one writer; outside data/ and meta/, so readers never list it


class DatasetLockedError(DatasetError):
    """Another writer (another process, or another writer object in this one) holds the dataset."""


def lock_dataset(root: Path) -> FileLock:
    """Take the writer lock of the dataset at ``root`` (creating the directory), or raise ``DatasetLockedError``."""
    if root.exists() and not root.is_dir():
        raise DatasetExistsError(f"{root} is a file, not a dataset directory")
    root.mkdir(parents=True, exist_ok=True)
    try:
        return FileLock(root / LOCK_FILE).acquire()
    except LockHeldError as err:
        who = f"process {err.holder}" if err.holder else "another process"
        raise DatasetLockedError(
            f"{root}: another writer ({who}) holds this dataset; wait for it to finish "
            f"or stop it (a killed writer releases it)"
        ) from None


def _write_meta_json(path: Path, data: dict[str, Any]) -> None:
    """LeRobot's own layout (indent 4, keys in insertion order: a dataset's feature order is its column order)."""
    write_json(path, data, indent=4, sort_keys=False)


@dataclass(frozen=True)
class DatasetSummary:
    """What a writer session produced."""

    root: Path
    num_episodes: int
    """Episodes in the dataset (including those there before a resume)."""
    num_frames: int
    """Frames in the dataset."""
    bytes_written: int
    """Growth of the dataset directory during this session."""
    episodes_added: int
    frames_added: int
    seconds: float
    """Wall time from create to finalize."""

    def __str__(self) -> str:
        return (
            f"{self.root}: {self.num_episodes} episodes, {self.num_frames} frames "
            f"(+{self.episodes_added} episodes, +{self.frames_added} frames, "
            f"{self.bytes_written / 1e6:.2f} MB in {self.seconds:.1f}s)"
        )


@dataclass
class _FileCursor:
    """The file new episodes go to, and what it already holds (committed episodes only)."""

    chunk: int = 0
    file: int = 0
    tables: list[Any] = field(default_factory=list)
    """Data: committed arrow tables. Episodes metadata: committed rows."""
    end_s: float = 0.0
    """Video: duration already in the file, where the next episode starts."""
    frames: int = 0


@dataclass
class _EpisodeBuffer:
    size: int = 0
    tasks: list[str] = field(default_factory=list)
    values: dict[str, list] = field(default_factory=dict)
    images: dict[str, list[bytes]] = field(default_factory=dict)
    image_stats: dict[str, ImageStatsAccumulator] = field(default_factory=dict)
    encoders: dict[str, EpisodeVideoEncoder] = field(default_factory=dict)


class LeRobotDatasetWriter:
    """Records episodes into a LeRobot v3.0 dataset. Build it with :meth:`create`."""

    def __init__(self, root: Path, info: dict[str, Any], settings: VideoSettings) -> None:
        self._root = Path(root)
        self.info = info
        self.settings = settings
        self.tasks: list[str] = []
        self.stats: dict[str, Any] = {}
        self._last_episode: dict[str, Any] | None = None
        self._data = _FileCursor()
        self._meta = _FileCursor()
        self._videos = {k: _FileCursor() for k in keys_of_dtype(info["features"], "video")}
        self._buffer = _EpisodeBuffer()
        self._dirty_data = False
        self._new_video_files: list[Path] = []
        self._finalized: DatasetSummary | None = None
        self._start_time = time.time()
        self._start_bytes = 0
        self._start_counts = (0, 0)
        self._lock: FileLock | None = None

    # ------------------------------------------------------------------------------------------- create

    @classmethod
    def create(
        cls,
        root: str | os.PathLike,
        fps: int,
        features: Mapping[str, Mapping[str, Any]],
        robot_type: str | None = None,
        overwrite: bool = False,
        resume: bool = False,
        vcodec: str = "libsvtav1",
        crf: int = 30,
        gop: int = 2,
        *,
        chunks_size: int = DEFAULT_CHUNKS_SIZE,
        data_files_size_in_mb: float = DEFAULT_DATA_FILE_SIZE_MB,
        video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_SIZE_MB,
    ) -> LeRobotDatasetWriter:
        """Start a dataset at ``root`` (a new one, a replacement with ``overwrite``, or an append with ``resume``)."""
        root = Path(root)
        if overwrite and resume:
            raise ConfigError("overwrite and resume are exclusive: replace the dataset or append to it")
        if not isinstance(fps, (int, np.integer)) or isinstance(fps, bool) or fps <= 0:
            raise ConfigError(f"fps must be a positive int, got {fps!r}")
        if chunks_size < 1 or data_files_size_in_mb <= 0 or video_files_size_in_mb <= 0:
            raise ConfigError("chunks_size, data_files_size_in_mb and video_files_size_in_mb must be positive")
        settings = VideoSettings(vcodec=vcodec, crf=crf, gop=gop)
        features = validate_features(features)
        created = not root.exists()
        lock = lock_dataset(root)
        try:
            if has_dataset(root) and resume:
                writer = cls._resume(root, int(fps), features, settings)
            else:
                _prepare_empty_root(root, overwrite)
                info = _new_info(
                    int(fps), features, robot_type, chunks_size, data_files_size_in_mb, video_files_size_in_mb
                )
                writer = cls(root, info, settings)
                _write_meta_json(root / INFO_PATH, info)
        except BaseException:
            lock.release()
            if created:
                with contextlib.suppress(OSError):
                    root.rmdir()
            raise
        writer._lock = lock
        writer._start_bytes = _dir_bytes(root)
        writer._start_counts = (writer.num_episodes, writer.num_frames)
        return writer

    @classmethod
    def _resume(cls, root: Path, fps: int, features: dict[str, Any], settings: VideoSettings) -> LeRobotDatasetWriter:
        info = read_info(root)
        if info["codebase_version"] != CODEBASE_VERSION:
            raise DatasetFormatError(
                f"{root / INFO_PATH}: cannot append to a {info['codebase_version']} dataset; convert it to v3.0 first"
            )
        if int(info["fps"]) != fps:
            raise DatasetFormatError(f"cannot resume {root}: it was recorded at fps {info['fps']}, not {fps}")
        diffs = feature_differences(info["features"], features)
        if diffs:
            raise DatasetFormatError(f"cannot resume {root}: features differ: " + "; ".join(diffs))
        writer = cls(root, info, settings)
        writer.tasks, writer.stats = read_tasks(root), read_stats(root)
        episodes = read_episodes_table(root)
        _restore_committed(root, info, episodes)
        if episodes:
            writer._continue_after(episodes[-1])
        # The episodes table is the source of truth (it is written before info.json).
        info["total_episodes"] = len(episodes)
        info["total_frames"] = int(sum(e["length"] for e in episodes))
        info["total_tasks"] = len(writer.tasks)
        info["splits"] = {"train": f"0:{len(episodes)}"}
        shutil.rmtree(root / STAGING_DIR, ignore_errors=True)
        _write_meta_json(root / INFO_PATH, info)
        return writer

    def _continue_after(self, last: dict[str, Any]) -> None:
        """New episodes go to fresh files after the last episode's (as lerobot does when resuming)."""
        size = self.info["chunks_size"]
        self._last_episode = last
        self._data = _FileCursor(*next_chunk_file(last["data/chunk_index"], last["data/file_index"], size))
        meta = last["meta/episodes/chunk_index"], last["meta/episodes/file_index"]
        self._meta = _FileCursor(*next_chunk_file(*meta, size))
        for key in self._videos:
            prefix = f"videos/{key}/"
            chunk, file = last[prefix + "chunk_index"], last[prefix + "file_index"]
            self._videos[key] = _FileCursor(*next_chunk_file(chunk, file, size))

    # ------------------------------------------------------------------------------------------- properties

    @property
    def root(self) -> Path:
        return self._root

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def episode_size(self) -> int:
        """Frames in the unfinished episode."""
        return self._buffer.size

    # ------------------------------------------------------------------------------------------- frames

    def add_frame(self, frame: Mapping[str, Any], task: str) -> None:
        """Append one frame (every recorded feature, no default keys) to the current episode."""
        self._check_open()
        if not isinstance(task, str) or not task:
            raise DatasetFormatError(f"task must be a non-empty string, got {task!r}")
        recorded = [k for k in self.features if k not in DEFAULT_FEATURES]
        unknown = [k for k in frame if k not in recorded]
        if unknown:
            why = "is added by the writer" if unknown[0] in DEFAULT_FEATURES else "is not a feature of this dataset"
            raise DatasetFormatError(f"frame key {unknown[0]!r} {why} (features: {recorded})")
        missing = [k for k in recorded if k not in frame]
        if missing:
            raise DatasetFormatError(f"frame lacks feature(s) {missing}")
        converted = {k: coerce_frame_value(k, self.features[k], frame[k]) for k in recorded}
        for key, value in converted.items():  # all validated first: a bad frame leaves the episode untouched
            _STORE[self.features[key]["dtype"]](self, key, value)
        self._buffer.tasks.append(task)
        self._buffer.size += 1

    def _store_value(self, key: str, value: np.ndarray) -> None:
        self._buffer.values.setdefault(key, []).append(value)

    def _store_image(self, key: str, value: np.ndarray) -> None:
        self._buffer.images.setdefault(key, []).append(_png_bytes(value))
        self._buffer.image_stats.setdefault(key, ImageStatsAccumulator()).update(value)

    def _store_video(self, key: str, value: np.ndarray) -> None:
        enc = self._buffer.encoders.get(key)
        if enc is None:
            path = self.root / STAGING_DIR / key / f"episode_{self.num_episodes:06d}.mp4"
            h, w, _ = self.features[key]["shape"]
            enc = self._buffer.encoders[key] = EpisodeVideoEncoder(path, self.fps, h, w, self.settings)
        enc.add(value)
        self._buffer.image_stats.setdefault(key, ImageStatsAccumulator()).update(value)

    def clear_episode(self) -> None:
        """Drop the unfinished episode (its frames and staged video)."""
        for enc in self._buffer.encoders.values():
            enc.abort()
        self._buffer = _EpisodeBuffer()

    # ------------------------------------------------------------------------------------------- episodes

    def save_episode(self) -> int:
        """Write the current episode (data, videos, metadata) and return its episode_index."""
        self._check_open()
        buf = self._buffer
        if buf.size == 0:
            raise DatasetFormatError("save_episode: the episode has no frames (call add_frame first)")
        ep_index, n = self.num_episodes, buf.size
        new_tasks = [t for t in dict.fromkeys(buf.tasks) if t not in self.tasks]
        tasks = self.tasks + new_tasks
        columns = self._episode_columns(ep_index, tasks)
        ep_stats = self._episode_stats(columns)
        schema = data_schema(self.features)
        table = pa.Table.from_arrays([_arrow_column(columns[f.name], f.type) for f in schema], schema=schema)
        staged = {k: enc.close() for k, enc in buf.encoders.items()}
        with _sigint_deferred():
            try:
                data_loc = self._write_data(table)
                video_loc = {k: self._write_video(k, staged[k], n) for k in self._videos}
                row = {"episode_index": ep_index, "tasks": list(dict.fromkeys(buf.tasks)), "length": n, **data_loc}
                for loc in video_loc.values():
                    row.update(loc)
                row.update({f"stats/{k}/{s}": v for k, st in ep_stats.items() for s, v in st.items()})
                self._commit(row, table, tasks, ep_stats, n)
            finally:
                self._buffer = _EpisodeBuffer()
                shutil.rmtree(self.root / STAGING_DIR, ignore_errors=True)
            self._write_metadata()
        return ep_index

    def _episode_columns(self, ep_index: int, tasks: list[str]) -> dict[str, Any]:
        buf, n = self._buffer, self._buffer.size
        task_index = {t: i for i, t in enumerate(tasks)}
        columns: dict[str, Any] = {k: np.stack(v) for k, v in buf.values.items()}
        for key, pngs in buf.images.items():
            columns[key] = [{"bytes": b, "path": f"frame-{i:06d}.png"} for i, b in enumerate(pngs)]
        columns["timestamp"] = (np.arange(n) / self.fps).astype(np.float32)
        columns["frame_index"] = np.arange(n, dtype=np.int64)
        columns["episode_index"] = np.full(n, ep_index, dtype=np.int64)
        columns["index"] = np.arange(self.num_frames, self.num_frames + n, dtype=np.int64)
        columns["task_index"] = np.array([task_index[t] for t in buf.tasks], dtype=np.int64)
        for key, ft in self.features.items():  # shape (1,) is a scalar column, as lerobot stores it
            if key in columns and ft["dtype"] not in ("image", "video") and list(ft["shape"]) == [1]:
                columns[key] = np.asarray(columns[key]).reshape(n)
        return columns

    def _episode_stats(self, columns: dict[str, Any]) -> dict[str, dict[str, list]]:
        stats: dict[str, dict[str, list]] = {}
        for key, ft in self.features.items():
            if key in self._buffer.image_stats:
                stats[key] = self._buffer.image_stats[key].result()
            elif ft["dtype"] not in ("string", "image", "video"):
                stats[key] = {k: np.asarray(v).tolist() for k, v in vector_stats(np.asarray(columns[key])).items()}
        return stats

    def _write_data(self, table: pa.Table) -> dict[str, int]:
        cur, limit = self._data, self.info["data_files_size_in_mb"]
        path = self._data_path(cur)
        if cur.tables and file_size_mb(path) * (1 + table.num_rows / max(cur.frames, 1)) >= limit:
            self._data = cur = _FileCursor(*next_chunk_file(cur.chunk, cur.file, self.info["chunks_size"]))
            path = self._data_path(cur)
        self._dirty_data = True
        write_parquet(path, [*cur.tables, table], data_schema(self.features))
        start = self.num_frames
        return {
            "data/chunk_index": cur.chunk,
            "data/file_index": cur.file,
            "dataset_from_index": start,
            "dataset_to_index": start + table.num_rows,
        }

    def _write_video(self, key: str, staged: Path, n: int) -> dict[str, Any]:
        cur = self._videos[key]
        path = self._video_path(key, cur)
        if cur.frames and file_size_mb(path) + file_size_mb(staged) >= self.info["video_files_size_in_mb"]:
            self._videos[key] = cur = _FileCursor(*next_chunk_file(cur.chunk, cur.file, self.info["chunks_size"]))
            path = self._video_path(key, cur)
        if cur.frames == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._new_video_files.append(path)
            os.replace(staged, path)  # same filesystem: atomic
            start = 0.0
        else:
            with atomic_path(path) as tmp:
                start = concatenate_videos([path, staged], tmp)[1]
        if "info" not in self.features[key]:
            self.features[key]["info"] = probe_video_info(path)
        return {
            f"videos/{key}/chunk_index": cur.chunk,
            f"videos/{key}/file_index": cur.file,
            f"videos/{key}/from_timestamp": start,
            f"videos/{key}/to_timestamp": start + n / self.fps,
        }

    def _commit(self, row: dict[str, Any], table: pa.Table, tasks: list[str], ep_stats: dict, n: int) -> None:
        """The episode becomes part of the dataset (in memory; ``_write_metadata`` then mirrors it)."""
        self._data.tables.append(table)
        self._data.frames += n
        self._dirty_data = False
        for key, cur in self._videos.items():
            cur.frames += n
            cur.end_s = row[f"videos/{key}/to_timestamp"]
        self._new_video_files.clear()
        meta_path = self._episodes_path(self._meta)
        grown_mb = file_size_mb(meta_path) * (1 + 1 / max(len(self._meta.tables), 1))
        if self._meta.tables and grown_mb >= self.info["data_files_size_in_mb"]:
            self._meta = _FileCursor(*next_chunk_file(self._meta.chunk, self._meta.file, self.info["chunks_size"]))
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = self._meta.chunk, self._meta.file
        self._meta.tables.append(row)
        self._last_episode = row
        self.tasks = tasks
        self.stats = aggregate_stats([self.stats, ep_stats]) if self.stats else ep_stats
        total = self.num_episodes + 1
        self.info.update(
            total_episodes=total,
            total_frames=self.num_frames + n,
            total_tasks=len(tasks),
            splits={"train": f"0:{total}"},
        )

    def _write_metadata(self) -> None:
        """Mirror the committed state into tasks, episodes table, stats and info (in that order)."""
        import pandas as pd

        if self.tasks:
            # An unnamed index of task strings, exactly as lerobot 0.4 writes it (column __index_level_0__).
            frame = pd.DataFrame({"task_index": range(len(self.tasks))}, index=pd.Index(self.tasks))
            table = pa.Table.from_pandas(frame)
            write_parquet(self.root / TASKS_PATH, table)
        if self._meta.tables:
            write_parquet(self._episodes_path(self._meta), pa.Table.from_pylist(self._meta.tables))
        if self.stats:
            _write_meta_json(self.root / STATS_PATH, self.stats)
        _write_meta_json(self.root / INFO_PATH, self.info)

    # ------------------------------------------------------------------------------------------- finalize

    def finalize(self) -> DatasetSummary:
        """Drop any unfinished episode, make files and metadata consistent, and summarise (idempotent)."""
        if self._finalized is not None:
            return self._finalized
        if self._buffer.size:
            warnings.warn(
                f"finalize: dropping the unfinished episode ({self._buffer.size} frames); "
                "call save_episode() to keep it",
                stacklevel=2,
            )
        self.clear_episode()
        try:
            self._repair()
            self._write_metadata()
            shutil.rmtree(self.root / STAGING_DIR, ignore_errors=True)
        finally:
            if self._lock is not None:
                self._lock.release()
        added = (self.num_episodes - self._start_counts[0], self.num_frames - self._start_counts[1])
        self._finalized = DatasetSummary(
            root=self.root,
            num_episodes=self.num_episodes,
            num_frames=self.num_frames,
            bytes_written=max(_dir_bytes(self.root) - self._start_bytes, 0),
            episodes_added=added[0],
            frames_added=added[1],
            seconds=time.time() - self._start_time,
        )
        return self._finalized

    def _repair(self) -> None:
        """Undo the file writes of an episode that failed before it was committed."""
        if self._dirty_data:
            path = self._data_path(self._data)
            if self._data.tables:
                write_parquet(path, self._data.tables, data_schema(self.features))
            else:
                path.unlink(missing_ok=True)
            self._dirty_data = False
        for path in self._new_video_files:  # a fresh mp4 no committed episode points to
            path.unlink(missing_ok=True)
        self._new_video_files.clear()

    def __enter__(self) -> LeRobotDatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None:
            self.clear_episode()  # a partial episode is never written
        self.finalize()
        return False

    # ------------------------------------------------------------------------------------------- helpers

    def _check_open(self) -> None:
        if self._finalized is not None:
            raise DatasetFormatError(f"the writer for {self.root} is finalized; create a new one with resume=True")

    def _data_path(self, cur: _FileCursor) -> Path:
        return self.root / self.info["data_path"].format(chunk_index=cur.chunk, file_index=cur.file)

    def _video_path(self, key: str, cur: _FileCursor) -> Path:
        return self.root / self.info["video_path"].format(video_key=key, chunk_index=cur.chunk, file_index=cur.file)

    def _episodes_path(self, cur: _FileCursor) -> Path:
        return self.root / EPISODES_PATH.format(chunk_index=cur.chunk, file_index=cur.file)


# ----------------------------------------------------------------------------------------------- module helpers


def _new_info(
    fps: int, features: dict[str, Any], robot_type: str | None, chunks_size: int, data_mb: float, video_mb: float
) -> dict[str, Any]:
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": chunks_size,
        "data_files_size_in_mb": data_mb,
        "video_files_size_in_mb": video_mb,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if keys_of_dtype(features, "video") else None,
        "features": features,
    }


def _prepare_empty_root(root: Path, overwrite: bool) -> None:
    if has_dataset(root):
        if not overwrite:
            raise DatasetExistsError(
                f"{root} already holds a dataset; pass overwrite=True to replace it or resume=True to append"
            )
        for child in root.iterdir():  # everything but the lock this writer holds
            if child.name != LOCK_FILE:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    elif root.exists() and any(p.name not in (STAGING_DIR, LOCK_FILE) for p in root.iterdir()):
        raise DatasetExistsError(f"{root} exists, is not empty and is not a dataset; refusing to write into it")
    root.mkdir(parents=True, exist_ok=True)


def _restore_committed(root: Path, info: dict[str, Any], episodes: list[dict[str, Any]]) -> None:
    """Bring the files back to the committed state (the episodes table) after a writer was killed.

    A kill can leave rows of an uncommitted episode in a data parquet file, data or video files that no
    episode points to, temporary files of an unfinished atomic write and the staging directory. Readers
    that list every file under ``data/`` (lerobot does) would read those rows, so they go: partial data
    files are rewritten with their committed rows only, unreferenced files and temporaries are deleted.
    Frames appended after the last committed one in a referenced mp4 stay (no episode's timestamps reach them).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for tmp in [p for p in root.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    shutil.rmtree(root / STAGING_DIR, ignore_errors=True)
    owners: dict[Path, set[int]] = {}
    for ep in episodes:
        path = root / info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
        owners.setdefault(path, set()).add(int(ep["episode_index"]))
    for path in sorted((root / "data").rglob("*.parquet")) if (root / "data").is_dir() else []:
        keep = owners.get(path)
        if keep is None:
            path.unlink()
            continue
        table = pq.read_table(path)
        committed = pc.is_in(table["episode_index"], value_set=pa.array(sorted(keep), pa.int64()))
        if not pc.all(committed).as_py():
            write_parquet(path, table.filter(committed), table.schema)
    for key in keys_of_dtype(info["features"], "video"):
        referenced = {
            root
            / info["video_path"].format(
                video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"], file_index=ep[f"videos/{key}/file_index"]
            )
            for ep in episodes
        }
        folder = root / "videos" / key
        for path in folder.rglob("*.mp4") if folder.is_dir() else []:
            if path not in referenced:
                path.unlink()


def _dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C while an episode commits, then deliver it: no half-committed episode."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *args: received.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])


def _arrow_column(values: Any, type_: pa.DataType) -> pa.Array:
    """One data column: fixed-size lists from a 2-D array, else a plain array of the schema's type."""
    if pa.types.is_fixed_size_list(type_):
        values = np.asarray(values)
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=type_.value_type), type_.list_size)
    return pa.array(values, type=type_)


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


_STORE = {
    "image": LeRobotDatasetWriter._store_image,
    "video": LeRobotDatasetWriter._store_video,
    **{d: LeRobotDatasetWriter._store_value for d in ("string", *NUMERIC_DTYPES)},
}
