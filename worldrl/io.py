"""File and directory writes that readers never see half done, and JSON read strictly.

The bottom layer: it imports nothing of worldrl, so every other layer (datasets, checkpoints, trainer
state, reports, agents) writes files through this one mechanism. A write goes to a temporary name beside
the target (same filesystem, so the final ``os.replace`` is an atomic rename) and is fsynced first, so a
crash or a concurrent reader sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    The suffix is kept so that libraries choosing a format by extension (PyAV, pyarrow) still do. On an
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` by rename (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` by rename (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: PathLike, data: Any, *, indent: int = 2, sort_keys: bool = True, allow_nan: bool = True) -> None:
    """Write ``data`` as JSON atomically; numpy/torch arrays and scalars become lists and numbers.

    ``sort_keys=False`` keeps insertion order where it carries meaning (a dataset's feature order);
    ``allow_nan=False`` refuses NaN/inf, which strict JSON readers reject.
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan, default=_to_builtin)
    atomic_write_text(path, text + "\n")


def _to_builtin(obj: Any) -> Any:
    """``json.dumps`` fallback: anything with ``tolist`` (numpy arrays and scalars, tensors) by duck typing."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: PathLike, error: Callable[[str], Exception] | None = None) -> dict[str, Any]:
    """The JSON object stored at ``path``; every failure names the file.

    A missing file raises ``FileNotFoundError``, anything else (invalid JSON, bad UTF-8, not an object)
    ``ValueError``, unless the caller passes its own ``error`` type (a ``CheckpointError``, a
    ``DatasetFormatError``) so that its users catch one type.
    """
    path = Path(path)
    if not path.is_file():
        raise (error or FileNotFoundError)(f"{path} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise (error or ValueError)(f"{path} is corrupted: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise (error or ValueError)(f"{path} is corrupted: expected a JSON object, found {type(data).__name__}")
    return data


@contextlib.contextmanager
def atomic_directory(directory: PathLike) -> Iterator[Path]:
    """Yield an empty directory beside ``directory``; on success swap it in with renames only.

    Until the swap readers see the old directory whole; a crash leaves at most a hidden temporary
    beside it. On an error the temporary is removed and ``directory`` is untouched.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _swap_into_place(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_into_place(tmp: Path, directory: Path) -> None:
    """Replace ``directory`` by ``tmp``: move the old one aside, rename the new one in, then delete the old."""
    if not directory.exists():
        os.replace(tmp, directory)
        return
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


class LockHeldError(OSError):
    """Another process holds the lock; ``holder`` is the pid it wrote into the lock file (0 if unknown)."""

    def __init__(self, path: Path, holder: int) -> None:
        super().__init__(f"{path} is locked by {'process ' + str(holder) if holder else 'another process'}")
        self.path, self.holder = path, holder


class FileLock:
    """An exclusive OS lock (``flock``) on ``path``, taken without waiting; the OS drops it when the process dies.

    The lock file holds the holder's pid and is deleted on :meth:`release`. Taking the lock checks that the
    locked file is still the one at ``path`` (a releaser may have deleted it meanwhile), so two processes
    never both hold it. A lock file left by a killed process is simply locked again.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        import fcntl

        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                raise LockHeldError(self.path, int(holder) if holder.isdigit() else 0) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # deleted (and maybe recreated) by the previous holder's release: lock the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
            self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still held: a waiter that opened it sees a different inode
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


__all__ = [
    "FileLock",
    "LockHeldError",
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_json",
    "write_json",
]
