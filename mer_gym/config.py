"""Validated construction of configuration dataclasses from plain mappings (YAML, JSON, kwargs).

Every config object in mer-gym is a dataclass that validates itself in ``__post_init__``. This module
turns an untrusted mapping into one, so that a bad key or value fails with one clear message that
names the field, where it came from and what is allowed, never a traceback from deep inside.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the field and the fix."""


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and naming the bad field.

    Nested dataclass fields are built recursively from nested mappings; tuples are converted from
    lists (YAML has no tuples). ``where`` prefixes every message, e.g. ``"preset 'tiny': face"``.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys need not be strings
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed keys for {cls.__name__}: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints.get(name), value, where=f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError) and str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from exc


def _convert(hint: Any, value: Any, *, where: str) -> Any:
    """``value`` converted to field type ``hint``, or a ConfigError naming ``where``.

    Checked: ``str``, ``int``, ``float`` (ints and numpy numbers are accepted), ``bool``, ``dict``,
    ``tuple[...]`` (from YAML lists), ``X | None`` and nested dataclasses (from mappings); any
    other hint (``Any``, unions of several types, callables, ...) passes the value through to the
    dataclass's own ``__post_init__``.
    """
    if hint is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], value, where=where)
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return from_mapping(hint, value, where=where)
        raise _type_error(where, value, f"a mapping of {hint.__name__} fields")
    if origin is tuple or hint is tuple:
        if not isinstance(value, list | tuple):
            raise _type_error(where, value, "a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where=f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        if not args:
            return tuple(value)
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_convert(a, v, where=f"{where}[{i}]") for i, (a, v) in pairs)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _type_error(where, value, "a mapping")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool | np.bool_):
            raise _type_error(where, value, "true or false")
        return bool(value)
    if hint is int:
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
            raise _type_error(where, value, "an integer")
        return int(value)
    if hint is float:
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
            raise _type_error(where, value, "a number")
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{where} = {value!r}: too large for a float") from None
    if hint is str and not isinstance(value, str):
        raise _type_error(where, value, "a string")
    return value


def _type_error(where: str, value: Any, expected: str) -> ConfigError:
    got = "nothing (null)" if value is None else f"{value!r} ({type(value).__name__})"
    return ConfigError(f"{where}: expected {expected}, got {got}{_numeric_text_hint(value)}")


def _numeric_text_hint(value: Any) -> str:
    """A hint for numbers that YAML read as text (``1e-3`` is a string in YAML 1.1)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return f"; YAML read {value!r} as text: write it as a number (e.g. 1.0e-3, not 1e-3)"
    return ""


def check_range(where: str, value: float, low: float, high: float) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (NaN fails too)."""
    if not (low <= value <= high):
        raise ConfigError(f"{where} = {value!r} is out of range: expected a value in [{low}, {high}]")


def check_probability(where: str, value: Any) -> None:
    """Raise ConfigError unless ``value`` is a number (not a bool) in [0, 1] (NaN fails too)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} = {value!r}: expected a probability in [0, 1]")
    check_range(where, float(value), 0.0, 1.0)


def check_interval(where: str, interval: tuple[float, float], low: float, high: float) -> None:
    """Raise ConfigError unless ``interval`` is an ordered pair inside ``[low, high]``."""
    if len(interval) != 2:
        raise ConfigError(f"{where} = {interval!r}: expected a pair [min, max]")
    a, b = interval
    if not (low <= a <= b <= high):
        raise ConfigError(
            f"{where} = {list(interval)!r}: expected [min, max] with {low} <= min <= max <= {high}"
        )


def parse_yaml(text: str, *, where: str) -> Any:
    """``yaml.safe_load`` of ``text``; a syntax error becomes a ConfigError naming ``where``."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
    except RecursionError:
        raise ConfigError(f"{where}: the YAML is nested too deeply to read") from None
    if _refers_to_itself(data):
        raise ConfigError(f"{where}: the YAML refers to itself (an alias *x used inside its own anchor &x)")
    return data


def _refers_to_itself(value: Any) -> bool:
    """Whether a parsed YAML value contains itself (a recursive alias). Shared aliases are
    visited once, so a "billion laughs" document costs no more than its text."""
    done: set[int] = set()

    def visit(node: Any, path: set[int]) -> bool:
        if not isinstance(node, dict | list) or id(node) in done:
            return False
        if id(node) in path:
            return True
        path.add(id(node))
        items = node.values() if isinstance(node, dict) else node
        found = any(visit(v, path) for v in items)
        path.discard(id(node))
        done.add(id(node))
        return found

    return visit(value, set())


def plain(value: Any, *, nan_as_none: bool = False) -> Any:
    """A YAML/JSON-safe copy of ``value``: dicts and sequences recursively (tuples become lists),
    numpy scalars as Python numbers, and with ``nan_as_none`` float NaN as None."""
    if isinstance(value, dict):
        return {k: plain(v, nan_as_none=nan_as_none) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, nan_as_none=nan_as_none) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()  # a numpy scalar
    if nan_as_none and isinstance(value, float) and value != value:
        return None
    return value
