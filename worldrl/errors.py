"""The errors worldrl raises for problems a user can fix (or must be told about), as opposed to bugs.

The ``worldrl`` command catches ``WorldRLError`` and nothing else: such an error is printed as one line on
stderr and the process exits with its ``exit_code`` (2 for bad input). Any other exception is a bug in the
library and keeps its traceback. Each input kind also subclasses the builtin it replaces (``ValueError``,
``FileNotFoundError``, ``ImportError``, ...), so callers that caught those before keep working.

This module is the bottom layer: it imports nothing of worldrl.
"""

from __future__ import annotations


class WorldRLError(Exception):
    """A user-facing problem: the message says what is wrong and, where it can, how to fix it."""

    exit_code: int = 2
    """What the ``worldrl`` command exits with (2: bad input, as argparse does)."""


class ConfigError(WorldRLError, ValueError):
    """A config field, YAML file, override or command-line option that cannot be used; names the field."""


class DatasetError(WorldRLError, ValueError):
    """A dataset that cannot be read or written as asked, or that does not fit the model or the task."""


class CheckpointError(WorldRLError, ValueError):
    """A checkpoint (model, agent or trainer state) that cannot be loaded; names the file and the problem."""


class EnvError(WorldRLError, ValueError):
    """An env id, env option or space that the library cannot serve."""


class InputNotFoundError(WorldRLError, FileNotFoundError):
    """A path the user named (config, run directory, policy file) does not exist."""


class OutputExistsError(WorldRLError, FileExistsError):
    """The output directory already holds results that the run would overwrite."""


class MissingDependencyError(WorldRLError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` that adds it."""


class ModelConfigurationError(ConfigError):
    """A model's constructor arguments or inputs that do not fit together (shapes, sizes, ranges); names them."""


class DataLoadingError(DatasetError):
    """Data that cannot be loaded for training or evaluation (missing files, offline Hub ids, bad layouts)."""


class TrainingError(WorldRLError, RuntimeError):
    """A training run that cannot go on (bad trainer state, impossible schedule); not bad data nor NaN."""

    exit_code = 1


class DivergedError(TrainingError):
    """Training produced NaN or inf: a failed run rather than bad input, hence exit code 1."""

    exit_code = 1


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataLoadingError",
    "DatasetError",
    "DivergedError",
    "EnvError",
    "InputNotFoundError",
    "ModelConfigurationError",
    "MissingDependencyError",
    "OutputExistsError",
    "TrainingError",
    "WorldRLError",
]
