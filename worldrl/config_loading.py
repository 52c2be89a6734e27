"""The one strict loader and the one validation idiom of every config dataclass.

``config_from_dict(TrainerConfig, data)`` builds a config from JSON/YAML data: an unknown field is refused with
the known ones named (a typo must not silently fall back to a default), JSON lists become tuples where the field
is a tuple, and a nested dataclass field is built from its own mapping the same way. ``require(self, name, ok,
what)`` is how ``__post_init__`` refuses a value. Both raise ``ConfigError`` naming the field.

The bottom layer: it imports nothing of worldrl but its errors.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from worldrl.errors import ConfigError

T = TypeVar("T")


def config_from_dict(cls: type[T], data: Mapping[str, Any], where: str | None = None) -> T:
    """An instance of dataclass ``cls`` from ``data``; ``where`` names the section in messages (default: the class).

    Raises:
        ConfigError: an unknown or missing field, or a value ``cls`` refuses.
    """
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of fields, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [key for key in data if key not in fields]
    if unknown:
        names = ", ".join(f"'{where}.{key}'" for key in unknown)
        raise ConfigError(f"unknown field(s) {names}; known fields of {where}: {sorted(fields)}")
    hints = _type_hints(cls)
    values = {key: _restore(value, hints.get(key), fields[key], f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except TypeError as err:  # a required field without a default is missing
        raise ConfigError(f"{where}: {err}") from None


def require(config: Any, name: str, ok: bool, what: str) -> None:
    """The validation idiom of ``__post_init__``: ``ConfigError("Class.name must be <what>, got <value>")``."""
    if not ok:
        raise ConfigError(f"{type(config).__name__}.{name} must be {what}, got {getattr(config, name)!r}")


def check_fields(config: Any, rules: Mapping[str, tuple[bool, str]]) -> None:
    """``require`` over a table ``{field: (ok, what it must be)}``, for configs with many simple rules."""
    for name, (ok, what) in rules.items():
        require(config, name, ok, what)


def _restore(value: Any, hint: Any, field: dataclasses.Field, where: str) -> Any:
    """JSON has no tuples and no dataclasses: rebuild them where the field's type (or default) says so."""
    nested = _dataclass_in(hint)
    if nested is not None and isinstance(value, Mapping):
        return config_from_dict(nested, value, where)
    if isinstance(value, list) and (_is_tuple_type(hint) or isinstance(_default_of(field), tuple)):
        return tuple(value)
    return _checked_scalar(value, hint, where)


_SCALARS = (bool, int, float, str)


def _checked_scalar(value: Any, hint: Any, where: str) -> Any:
    """A value for a field typed with plain scalars (``int``, ``float | None``, ...): numbers written as strings
    (YAML reads ``1e-3`` as a string) become numbers, a whole float becomes an int; anything else of the wrong
    type is a ``ConfigError`` naming the field, so ``data.window=two`` fails here and not deep inside a run."""
    options = _options(hint)
    if hint is None or not all(o in _SCALARS or o is type(None) for o in options):
        return value  # not a plain scalar field (lists, mappings, Any, Literal...): the class checks it
    if value is None and type(None) in options:
        return value
    for kind in (bool, int, float, str):
        if kind in options:
            converted = _as_scalar(value, kind)
            if converted is not None:
                return converted
    names = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise ConfigError(f"{where} must be {names}, got {value!r}")


def _as_scalar(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` when it is one already or converts without loss; None otherwise."""
    if kind is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None  # True is an int to Python, never a number here
    if isinstance(value, str) and kind in (int, float):
        try:
            value = float(value)
        except ValueError:
            return None
    if kind is int and isinstance(value, float):
        return int(value) if value.is_integer() else None
    if kind is float and isinstance(value, int | float):
        return float(value)
    return value if isinstance(value, kind) else None


def _type_hints(cls: type) -> dict[str, Any]:
    """Resolved field types; empty when a forward reference cannot be resolved (the defaults are used instead)."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {}


def _options(hint: Any) -> tuple[Any, ...]:
    """The members of ``X | None`` (or ``Optional[X]``), else ``(hint,)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _dataclass_in(hint: Any) -> type | None:
    return next((h for h in _options(hint) if isinstance(h, type) and dataclasses.is_dataclass(h)), None)


def _is_tuple_type(hint: Any) -> bool:
    return any(h is tuple or typing.get_origin(h) is tuple for h in _options(hint))


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


# ----------------------------------------------------------------------------------------------- YAML

MAX_YAML_BYTES = 4_000_000
"""Largest config text accepted (presets are a few KB)."""
MAX_YAML_NODES = 1_000_000
"""Most nodes a document may have once its aliases are expanded (a YAML "billion laughs" has ~10^9)."""


def load_yaml(text: str, where: str) -> Any:
    """The one YAML loader for user files and values: ``yaml.safe_load`` with limits, checked before building.

    ``safe_load`` runs no code, but an alias bomb (a few lines of nested ``*anchors``) builds a graph whose
    expansion is exponential: any code walking it (number coercion, overrides, saving it back) hangs and then
    exhausts memory. The composed document is measured first, counting each alias as the subtree it stands
    for; too large, recursive or too deeply nested documents raise ``ConfigError`` naming ``where``.
    """
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{where} is {len(text)} characters long; configs are limited to {MAX_YAML_BYTES}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where} is not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to be a config") from None
    finally:
        loader.dispose()


def _check_expanded_size(root: Any, where: str) -> None:
    """Nodes of the document with every alias expanded, computed once per distinct node (no expansion)."""
    import yaml

    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        if ready:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                raise ConfigError(
                    f"{where}: its aliases expand to more than {MAX_YAML_NODES} values "
                    "(an alias bomb?); refusing to load it"
                )
            continue
        if key in open_:
            raise ConfigError(f"{where}: a recursive alias (an anchor used inside itself); refusing to load it")
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise ConfigError(f"{where}: a recursive alias (an anchor used inside itself); refusing to load it")
            if id(child) not in sizes:
                stack.append((child, False))


__all__ = ["MAX_YAML_BYTES", "MAX_YAML_NODES", "check_fields", "config_from_dict", "load_yaml", "require"]
