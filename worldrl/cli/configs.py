"""``worldrl configs list`` / ``worldrl configs show NAME``: the YAML presets shipped in the package
(``worldrl.configs``, the repository's ``configs/``), usable as ``worldrl train --config NAME``."""

from __future__ import annotations

import argparse
from importlib import resources

from worldrl.errors import InputNotFoundError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the preset names and their first comment line")
    listing.add_argument("--family", default=None, help="only presets of this model family (e.g. vjepa2)")
    show = sub.add_parser("show", help="print one preset")
    show.add_argument("name", help="preset name, e.g. vjepa2_debug")


def presets() -> dict[str, str]:
    """Preset name -> YAML text, sorted by name."""
    root = resources.files("worldrl.configs")
    return {
        p.name[:-5]: p.read_text() for p in sorted(root.iterdir(), key=lambda p: p.name) if p.name.endswith(".yaml")
    }


def _summary(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _family(text: str) -> str:
    from worldrl.config_loading import load_yaml

    return str(((load_yaml(text, "preset") or {}).get("model") or {}).get("family", ""))


def run(args: argparse.Namespace) -> int:
    found = presets()
    if args.action == "list":
        for name, text in found.items():
            if args.family is None or _family(text) == args.family:
                print(f"{name:32s} {_summary(text)}")
        return 0
    name = args.name[:-5] if args.name.endswith(".yaml") else args.name
    if name not in found:
        raise InputNotFoundError(f"no preset {name!r}; presets: {', '.join(found)}")
    print(found[name], end="")
    return 0
