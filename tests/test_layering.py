"""The layers of DESIGN.md, checked: no module of a lower layer imports a module of a higher one.

Layers, bottom to top (a module may import its own layer and those below)::

    io          worldrl.io, worldrl.errors, worldrl.config_loading: files, error types, config parsing
    nn          worldrl.nn: shared layers
    tasks       worldrl.tasks: the real-env factory and per-task reward/termination rules
    data        worldrl.data: LeRobot datasets, recording real envs into them, windows, replay
    models      worldrl.models: the protocol and the families
    training    worldrl.training: the trainer
    evaluation  worldrl.evaluation: fidelity, real-env returns, reports, videos
    envs        worldrl.envs: the learned simulators as Gymnasium/TorchRL envs
    agents      worldrl.agents: planners, MPC, learners
    loops       worldrl.loops: applications combining the layers (the online loop)
    cli         worldrl.cli, worldrl.__main__: the command line

Where evaluation sits: it runs policies in the *real* env (``worldrl.tasks``) and scores models
(``worldrl.models``) on datasets (``worldrl.data``); it needs no learned env and no agent, so it sits below
envs and agents, and the agents' learning curves call it from above.

How it is checked: a subprocess imports every module of the installed package (``pkgutil`` over
``worldrl`` and over ``worldrl.envs`` / ``worldrl.agents``, which install into the namespace from the
repository top), so a module that no longer imports fails here too; then each module's source is parsed
with ``ast`` and every ``import`` / ``from ... import`` is checked, including those inside functions (the
lazy imports of optional dependencies and of heavy modules), under ``TYPE_CHECKING``, and strings that name a
worldrl module (lazy registries such as ``worldrl.envs.__init__``'s, Gymnasium entry points). The import runs in
a subprocess because importing torchrl changes the process's multiprocessing start method.

The package root ``worldrl/__init__.py`` is left out: it is the facade whose import registers the env ids
with Gymnasium (DESIGN.md: users write ``import worldrl``), so it must import ``worldrl.envs``.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("io", ("worldrl.io", "worldrl.errors", "worldrl.config_loading")),
    ("nn", ("worldrl.nn",)),
    ("tasks", ("worldrl.tasks",)),
    ("data", ("worldrl.data",)),
    ("models", ("worldrl.models",)),
    ("training", ("worldrl.training",)),
    ("evaluation", ("worldrl.evaluation",)),
    ("envs", ("worldrl.envs",)),
    ("agents", ("worldrl.agents",)),
    ("loops", ("worldrl.loops",)),
    ("cli", ("worldrl.cli", "worldrl.__main__")),
]
"""Bottom to top. A new top-level module or subpackage of worldrl must be placed here (checked below)."""

FACADE = "worldrl"
"""The package root, outside the layers (see the module docstring)."""

NAMESPACE_PACKAGES = ("worldrl.envs", "worldrl.agents", "worldrl.loops")
"""Subpackages that may live outside ``worldrl/`` in a source checkout (setuptools package-dir)."""

MODULE_STRING = re.compile(r"^worldrl(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?$")
"""A string constant naming a worldrl module (optionally ``:attribute``), as lazy registries hold them."""

_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys, traceback
import worldrl

names = {m.name for m in pkgutil.walk_packages(worldrl.__path__, "worldrl.")}
for package in NAMESPACE_PACKAGES:
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as err:
        if err.name != package:
            raise
        continue  # not written yet (worldrl.loops)
    names.add(package)
    names |= {m.name for m in pkgutil.walk_packages(module.__path__, package + ".")}
files, errors = {"worldrl": worldrl.__file__}, {}
for name in sorted(names):
    try:
        if name.rpartition(".")[2] == "__main__":  # running it would start the CLI
            files[name] = importlib.util.find_spec(name).origin
            continue
        files[name] = importlib.import_module(name).__file__
    except Exception:
        errors[name] = traceback.format_exc(limit=3)
print(json.dumps({"files": files, "errors": errors}))
"""


@dataclass(frozen=True)
class Violation:
    module: str
    module_layer: str
    statement: str
    imported_layer: str
    line: int

    def __str__(self) -> str:
        return f"{self.module} (layer {self.module_layer}) line {self.line}: `{self.statement}` reaches layer {self.imported_layer}"


def layer_of(module: str) -> str | None:
    """The layer of a worldrl module name (longest prefix wins), None for the facade and for non-worldrl names."""
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return None if best is None else best[1]


def rank(layer: str) -> int:
    return [name for name, _ in LAYERS].index(layer)


def imports_in(source: str, module: str, is_package: bool = False) -> list[tuple[ast.stmt, list[str]]]:
    """Every import statement anywhere in ``source`` (inside functions too) with the worldrl modules it may load.

    ``from a.b import c`` may load ``a.b`` and ``a.b.c`` (``c`` may be a submodule, as in ``from worldrl import
    envs``); relative imports are resolved against ``module``. A string that is exactly a worldrl module name
    (``"worldrl.envs.simulator"``, ``"worldrl.agents.mpc:MPCAgent"``) counts too: lazy registries and entry points
    import by name.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.append((node, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node, module, is_package)
            found.append((node, [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            found.append((node, [node.value.partition(":")[0]]))  # a lazy registry entry or an entry point
    return found


def _resolve_relative(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def violations_in(source: str, module: str, is_package: bool = False) -> list[Violation]:
    """The import statements in ``source`` (the code of ``module``) that reach a layer above ``module``'s."""
    own = layer_of(module)
    if own is None:
        return []
    out = []
    for node, names in imports_in(source, module, is_package):
        layers = [layer for layer in map(layer_of, names) if layer is not None]
        highest = max(layers, key=rank, default=None)
        if highest is not None and rank(highest) > rank(own):
            out.append(Violation(module, own, ast.unparse(node), highest, node.lineno))
    return sorted(out, key=lambda v: v.line)


@pytest.fixture(scope="module")
def installed() -> dict[str, object]:
    code = f"NAMESPACE_PACKAGES = {NAMESPACE_PACKAGES!r}\n{_IMPORT_ALL}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_module_imports(installed):
    errors = installed["errors"]
    assert not errors, "modules that fail to import:\n" + "\n".join(f"{k}:\n{v}" for k, v in errors.items())
    names = set(installed["files"])
    assert {"worldrl.io", "worldrl.data.collect", "worldrl.envs.simulator", "worldrl.agents.mpc"} <= names


def test_every_module_has_a_layer(installed):
    unplaced = sorted(name for name in installed["files"] if name != FACADE and layer_of(name) is None)
    assert not unplaced, f"modules outside every layer (add them to LAYERS in {Path(__file__).name}): {unplaced}"


def test_no_module_imports_a_higher_layer(installed):
    found: list[Violation] = []
    for name, file in sorted(installed["files"].items()):
        if name == FACADE:
            continue
        found += violations_in(Path(file).read_text(), name, is_package=Path(file).name == "__init__.py")
    assert not found, "imports that reach a higher layer:\n" + "\n".join(f"  {v}" for v in found)


# --------------------------------------------------------------------------- the checker itself
def test_checker_finds_lazy_and_relative_imports():
    source = (
        "import numpy\n"
        "from worldrl.io import write_json\n"
        "def f():\n"
        "    from worldrl.envs.simulator import LearnedSimulator\n"
        "    import worldrl.cli\n"
        "from ..agents import mpc\n"
    )
    found = violations_in(source, "worldrl.data.collect")
    assert [str(v) for v in found] == [
        "worldrl.data.collect (layer data) line 4: `from worldrl.envs.simulator import LearnedSimulator` reaches layer envs",
        "worldrl.data.collect (layer data) line 5: `import worldrl.cli` reaches layer cli",
        "worldrl.data.collect (layer data) line 6: `from ..agents import mpc` reaches layer agents",
    ]
    lazy = violations_in(
        '_LAZY = {"X": "worldrl.envs.vector_env:X", "doc": "see worldrl.envs for more"}\n', "worldrl.models.base"
    )
    assert [(v.statement, v.imported_layer) for v in lazy] == [("'worldrl.envs.vector_env:X'", "envs")]


def test_checker_allows_same_layer_and_below():
    source = (
        "from worldrl.data.writer import LeRobotDatasetWriter\nfrom worldrl.tasks import real_envs\nimport worldrl.io\n"
    )
    assert violations_in(source, "worldrl.data.collect") == []
    assert [v.imported_layer for v in violations_in("from worldrl import envs\n", "worldrl.models.base")] == ["envs"]
    assert layer_of("worldrl.loops.online") == "loops" and layer_of("worldrl") is None and layer_of("numpy") is None
