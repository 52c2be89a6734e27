"""Writing measured numbers into docs: marked sections of docs/benchmarks.md and a description of the machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import gymnasium as gym
import torch

from worldrl.io import atomic_write_bytes


def update_doc_section(path: str | os.PathLike, name: str, body: str) -> Path:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (or append that section).

    Each benchmark owns one section, so re-running one never touches the others' numbers.
    """
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text and text.index(start) < text.index(end):
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    return path


def describe_machine() -> str:
    """CPU model and count, GPU if any, and the versions that move the numbers."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{os.cpu_count()} CPUs ({cpu}){gpu}; torch {torch.__version__} with {torch.get_num_threads()} threads; "
        f"gymnasium {gym.__version__}; Python {platform.python_version()}"
    )
