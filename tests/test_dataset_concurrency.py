"""Dataset writers in real processes: one writer at a time (an OS lock), and resume after ``kill -9``.

lerobot itself is not installable in this environment, so "read as lerobot does" is checked with pyarrow
over every parquet file under ``data/`` (lerobot's loader globs that folder) as well as with worldrl's reader.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worldrl.data import LeRobotDatasetReader, LeRobotDatasetWriter
from worldrl.data.reader import read_episodes_table
from worldrl.data.writer import LOCK_FILE, STAGING_DIR, DatasetLockedError
from worldrl.errors import DatasetError

LENGTH = 6

# A child process that records state-only episodes; argv: root mode kill_point data_mb episodes.
# kill_point: "hold" (take the lock, wait for a line on stdin), "commit" (SIGKILL itself after episode 3's data
# rows are written but before it is committed), "tempfile" (SIGKILL while writing episode 3's temporary
# parquet), "none" (finish normally), "loop" (record until killed from outside).
WRITER = r"""
import os, signal, sys
import numpy as np
import pyarrow.parquet as pq
from worldrl.data import LeRobotDatasetWriter

root, mode, kill_point, data_mb, episodes = sys.argv[1:6]
features = {
    "observation.state": {"dtype": "float32", "shape": [2], "names": None},
    "action": {"dtype": "float32", "shape": [1], "names": None},
}
w = LeRobotDatasetWriter.create(root, fps=10, features=features, resume=mode == "resume",
                                overwrite=mode == "overwrite", data_files_size_in_mb=float(data_mb))
print("locked", flush=True)
if kill_point == "hold":
    sys.stdin.readline()
    w.finalize()
    sys.exit(0)
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
e = 0
while kill_point == "loop" or e < int(episodes):
    if e == 3 and kill_point == "commit":
        type(w)._commit = die
    if e == 3 and kill_point == "tempfile":
        write = pq.ParquetWriter.write_table
        def write_then_die(self, table, *a, **k):
            write(self, table, *a, **k)
            die()
        pq.ParquetWriter.write_table = write_then_die
    for i in range(LENGTH):
        w.add_frame({"observation.state": np.array([w.num_episodes, i], np.float32),
                     "action": np.array([i], np.float32)}, task="t")
    w.save_episode()
    print("saved", w.num_episodes, flush=True)
    e += 1
w.finalize()
""".replace("LENGTH", str(LENGTH))


def start_writer(
    root: Path, mode: str = "new", kill_point: str = "none", data_mb: float = 100.0, episodes: int = 5
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), mode, kill_point, str(data_mb), str(episodes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(proc: subprocess.Popen, line: str) -> None:
    while True:
        got = proc.stdout.readline()
        assert got, f"writer exited before {line!r}: {proc.stderr.read()}"
        if got.startswith(line):
            return


# ----------------------------------------------------------------------------------------------- locking


@pytest.mark.parametrize("mode", ["resume", "overwrite", "new"])
def test_second_writer_fails_at_once_while_first_holds_the_dataset(tmp_path, mode):
    root = tmp_path / "ds"
    start_writer(root, episodes=1).communicate(timeout=120)
    holder = start_writer(root, mode="resume", kill_point="hold")
    try:
        wait_for(holder, "locked")
        second = start_writer(root, mode=mode)
        out, err = second.communicate(timeout=120)
        assert second.returncode != 0, out
        last = err.strip().splitlines()[-1]
        assert "DatasetLockedError" in last and str(root) in last and "another writer" in last
        assert f"process {holder.pid}" in last
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=120) == 0
    finally:
        holder.kill()
    assert not (root / LOCK_FILE).exists()  # released and removed
    assert LeRobotDatasetReader(root).num_episodes == 1  # the second writer changed nothing
    start_writer(root, mode="resume", episodes=1).communicate(timeout=120)  # free again
    assert LeRobotDatasetReader(root).num_episodes == 2


def test_killed_writer_releases_its_lock(tmp_path):
    root = tmp_path / "ds"
    holder = start_writer(root, kill_point="hold")
    wait_for(holder, "locked")
    with pytest.raises(DatasetLockedError, match="another writer"):
        LeRobotDatasetWriter.create(
            root, fps=10, features={"a": {"dtype": "float32", "shape": [1], "names": None}}, resume=True
        )
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert (root / LOCK_FILE).exists()  # left behind by the kill, but no longer locked
    start_writer(root, mode="resume", episodes=1).communicate(timeout=120)
    assert LeRobotDatasetReader(root).num_episodes == 1


def test_two_collect_commands_one_dataset(tmp_path):
    """The CLI: the second ``worldrl collect --resume`` exits 2 with one line naming the dataset."""
    root = tmp_path / "ds"
    start_writer(root, episodes=1).communicate(timeout=120)
    holder = start_writer(root, mode="resume", kill_point="hold")
    try:
        wait_for(holder, "locked")
        cmd = [
            sys.executable,
            "-m",
            "worldrl",
            "collect",
            "--env",
            "Pendulum-v1",
            "--episodes",
            "1",
            "--out",
            str(root),
            "--resume",
            "--max-episode-steps",
            "5",
            "--quiet",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(root) in lines[0] and "another writer" in lines[0], done.stderr


def test_lock_is_not_a_dataset_file(tmp_path):
    """The lock file lives at the root, outside data/ and meta/, and is gone after a clean finish."""
    assert isinstance(DatasetLockedError("x"), DatasetError)
    root = tmp_path / "ds"
    start_writer(root, episodes=2).communicate(timeout=120)
    assert sorted(p.name for p in root.iterdir()) == ["data", "meta"]


# ----------------------------------------------------------------------------------------------- kill -9


def check_committed_state(root: Path, episodes: int) -> None:
    """Every reader sees each frame once: unique, contiguous ``index`` in files lerobot would load."""
    total = episodes * LENGTH
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == episodes and reader.num_frames == total
    np.testing.assert_array_equal(reader.column("index").reshape(-1), np.arange(total))
    files = sorted((root / "data").glob("*/*.parquet"))  # as lerobot globs: hidden files included
    table = pa.concat_tables([pq.read_table(f, columns=["index", "episode_index", "frame_index"]) for f in files])
    np.testing.assert_array_equal(np.sort(table["index"].to_numpy()), np.arange(total))
    ep, fr = table["episode_index"].to_numpy(), table["frame_index"].to_numpy()
    assert np.bincount(ep).tolist() == [LENGTH] * episodes
    state = reader.column("observation.state")
    np.testing.assert_array_equal(state[:, 0], np.repeat(np.arange(episodes), LENGTH))  # no shifted frames
    np.testing.assert_array_equal(np.sort(fr), np.sort(np.tile(np.arange(LENGTH), episodes)))
    leftovers = [p for p in root.rglob("*") if ".tmp-" in p.name or p.name in (STAGING_DIR, LOCK_FILE)]
    assert leftovers == []


@pytest.mark.parametrize(("kill_point", "data_mb"), [("commit", 100.0), ("commit", 1e-9), ("tempfile", 100.0)])
def test_resume_after_sigkill_restores_the_committed_state(tmp_path, kill_point, data_mb):
    root = tmp_path / "ds"
    proc = start_writer(root, kill_point=kill_point, data_mb=data_mb, episodes=6)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    done = start_writer(root, mode="resume", data_mb=data_mb, episodes=2)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    check_committed_state(root, 3 + 2)


def test_resume_after_sigkill_at_a_random_moment(tmp_path):
    root = tmp_path / "ds"
    proc = start_writer(root, kill_point="loop", data_mb=0.002)
    for _ in range(4):
        wait_for(proc, "saved")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    committed = len(read_episodes_table(root))
    done = start_writer(root, mode="resume", data_mb=0.002, episodes=2)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    check_committed_state(root, LeRobotDatasetReader(root).num_episodes)
    assert LeRobotDatasetReader(root).num_episodes >= committed + 2
