"""Forked children of a worldrl process run torch on one thread, so fork-based worker pools do not hang.

``gym.make_vec("WorldModel-v0", vectorization_mode="async")`` builds one env in the parent (to read its spaces)
and then forks one worker per env. By then torch's OpenMP thread pool is running in the parent; a forked child
inherits the pool's state but not its threads, and its first parallel torch op waits for them forever. The
hook below sets torch to one intra-op thread in every child forked after ``import worldrl`` (what PyTorch's own
DataLoader workers do), so the child never enters the inherited pool. A worker that wants more threads may call
``torch.set_num_threads`` itself; ``vector_kwargs={"context": "forkserver"}`` (or ``"spawn"``) avoids the
inheritance altogether, at the cost of a fresh interpreter per worker.
"""

from __future__ import annotations

import os
import sys

_installed = False


def _one_torch_thread_in_child() -> None:
    torch = sys.modules.get("torch")  # a parent that never imported torch has no pool to inherit
    if torch is not None:
        torch.set_num_threads(1)


def install_fork_hook() -> None:
    """Register the after-fork hook once per process (idempotent; a no-op where ``os.fork`` does not exist)."""
    global _installed
    if _installed or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(after_in_child=_one_torch_thread_in_child)
    _installed = True
