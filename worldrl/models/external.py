"""References to large frozen weights that a checkpoint names instead of copying (a pretrained encoder, an LLM).

A family that loads, say, a V-JEPA 2 encoder from ``facebook/vjepa2-...`` or a local directory reports it in
``WorldModel.external_weights()``; ``save_pretrained`` then leaves those tensors out of ``model.safetensors``
and writes ``external.json`` with the source and a sha256 of its weight files. Loading rebuilds the model from
its config (which loads the source again), hashes what it finds and refuses a mismatch: a checkpoint never
silently runs on different frozen weights than it was trained with.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors",)
"""Files whose bytes make up a source's weights (configs and tokenizers do not change the numbers)."""


@dataclass(frozen=True)
class ExternalWeights:
    """One frozen part of a model that lives outside the checkpoint."""

    prefix: str
    """State-dict prefix of the part (``"encoder."``): these tensors are not written into the checkpoint."""
    source: str
    """Local directory or Hub repo id the part was loaded from."""
    local_dir: str
    """Where the source's files are on this machine (the directory itself, or the Hub snapshot)."""

    def sha256(self) -> str:
        return weights_sha256(self.local_dir)


def weights_sha256(directory: str | os.PathLike) -> str:
    """sha256 over the weight files of ``directory`` (relative name and bytes, sorted): stable across copies."""
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"{root} holds no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


__all__ = ["ExternalWeights", "weights_sha256"]
