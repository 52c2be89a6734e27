"""Where a dataset lives: a local directory, lerobot's local cache, or a Hugging Face Hub snapshot."""

from __future__ import annotations

import os
from pathlib import Path

from worldrl.data.lerobot_format import INFO_PATH, DatasetNotFoundError


def lerobot_home() -> Path:
    """lerobot's local dataset root: ``$HF_LEROBOT_HOME``, else ``$HF_HOME/lerobot`` (~/.cache/huggingface/lerobot)."""
    if os.environ.get("HF_LEROBOT_HOME"):
        return Path(os.environ["HF_LEROBOT_HOME"]).expanduser()
    hf_home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()
    return hf_home / "lerobot"


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and "\\" not in text


def resolve_dataset_root(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """The local root directory of a dataset given a path or a Hub repo id (``owner/name``).

    Order: an existing local directory; ``$HF_LEROBOT_HOME/<repo_id>`` (lerobot's own cache, so
    ``HF_HUB_OFFLINE=1`` works for datasets lerobot already fetched); a Hub snapshot (repo_type
    "dataset"), which offline only succeeds if the snapshot is cached.
    """
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    text = str(path_or_repo_id)
    if path.exists() or not _looks_like_repo_id(text):
        raise DatasetNotFoundError(f"{path} is not a dataset directory (it does not exist or is a file)")
    local = lerobot_home() / text
    if (local / INFO_PATH).exists():
        return local
    return _snapshot(text, revision)


def _snapshot(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise DatasetNotFoundError(
            f"{repo_id!r} is not a local directory and huggingface_hub is not installed to fetch it"
        ) from None
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except Exception as err:  # offline mode, unknown repo, no network: the remedy is the same for the user
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        raise DatasetNotFoundError(
            f"dataset {repo_id!r} is neither a local directory nor available from the Hugging Face Hub"
            f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {type(err).__name__}: {err}. Download it on a "
            f"machine with network, e.g. `hf download {repo_id} --repo-type dataset"
            f"{f' --revision {revision}' if revision else ''} "
            f"--local-dir {lerobot_home() / repo_id}`, then pass that directory (or keep it there: "
            "worldrl looks in $HF_LEROBOT_HOME/<repo_id> first)."
        ) from None
