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
    unknown = sorted(set(data) - set(fields))
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
    if hint is None:
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
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return from_mapping(hint, value, where=where)  # type: ignore[arg-type]
    if origin is tuple and isinstance(value, list | tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where=f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _convert(a, v, where=f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=False))
        ) if args else tuple(value)
    if origin is dict and isinstance(value, Mapping):
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


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
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc


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
