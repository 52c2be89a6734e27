"""LeRobot v3.0 datasets: writer, reader, training windows, statistics, video (see lerobot_format.py)."""

from worldrl.data.hub import resolve_dataset_root
from worldrl.data.lerobot_format import (
    DatasetExistsError,
    DatasetFormatError,
    DatasetNotFoundError,
    termination_key,
)
from worldrl.data.reader import LeRobotDatasetReader
from worldrl.data.sequences import WindowDataset, split_episodes
from worldrl.data.stats import aggregate_stats, compute_feature_stats
from worldrl.data.video import VideoSettings
from worldrl.data.writer import DatasetSummary, LeRobotDatasetWriter

__all__ = [
    "DatasetExistsError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DatasetSummary",
    "LeRobotDatasetReader",
    "LeRobotDatasetWriter",
    "VideoSettings",
    "WindowDataset",
    "aggregate_stats",
    "compute_feature_stats",
    "resolve_dataset_root",
    "split_episodes",
    "termination_key",
]
