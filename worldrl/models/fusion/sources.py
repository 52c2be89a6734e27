"""Local directory of a pretrained source (a path, or a Hub id's snapshot) and its weights hash."""

from __future__ import annotations

from pathlib import Path

from worldrl.errors import InputNotFoundError


def resolve_local_dir(source: str, what: str, subfolder: str | None = None) -> str:
    """The directory holding ``source``'s files (its ``subfolder`` only, when given: a pipeline repo's ``vae/``):
    the path itself, or the Hub snapshot (downloaded when the network allows, else the local cache); one line naming
    ``what`` when neither has it."""
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path / subfolder) if subfolder else str(path)
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise InputNotFoundError(f"{what}={source}: no such directory (and not a Hub id owner/name)")
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt"]
    if subfolder:
        patterns = [f"{subfolder}/{p}" for p in patterns]
    inside = (lambda root: str(Path(root) / subfolder)) if subfolder else str
    try:
        return inside(snapshot_download(source, allow_patterns=patterns))
    except Exception as online_error:  # noqa: BLE001 - any Hub/network failure: try the cache, then say which
        try:
            return inside(snapshot_download(source, allow_patterns=patterns, local_files_only=True))
        except Exception:  # noqa: BLE001
            raise InputNotFoundError(
                f"{what}={source}: not a local directory, and the Hub id could not be downloaded nor found in the "
                f"local cache ({type(online_error).__name__}); download it where there is a network and pass the path"
            ) from None


__all__ = ["resolve_local_dir"]
