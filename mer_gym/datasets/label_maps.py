"""Native label codes of each corpus and their mapping onto the canonical emotions.

The tables are data, in ``label_maps.yaml`` beside this module. A :class:`LabelScheme` holds one
dataset's tables and answers two questions for a loader: which native label a code on disk means
(:meth:`LabelScheme.native_name`), and which canonical emotion, if any, that native label becomes
(:meth:`LabelScheme.canonical`). A caller's ``label_map`` overrides the canonical mapping by native
label name, e.g. ``{"surprise": "fear"}`` or ``{"calm": "neutral"}``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from mer_gym.config import ConfigError, parse_yaml
from mer_gym.datasets.records import DatasetError
from mer_gym.labels import EMOTIONS

DATASETS: tuple[str, ...] = ("fer2013", "ckplus", "emodb", "ravdess", "cremad")
"""Corpus names, as used in records and in ``label_maps.yaml``."""


@dataclass(frozen=True)
class LabelScheme:
    """One dataset's native codes and native -> canonical mapping.

    Attributes:
        dataset: Corpus name.
        codes: Native code as on disk (``"5"``, ``"W"``, ``"06"``, ``"ANG"``) -> native label name.
        mapping: Native label name -> canonical emotion, or None (dropped).
    """

    dataset: str
    codes: Mapping[str, str]
    mapping: Mapping[str, str | None]

    def __post_init__(self) -> None:
        where = f"label_maps.yaml: {self.dataset}"
        names = list(self.codes.values())
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.codes: native names must be distinct, got {names}")
        if set(self.mapping) != set(names):
            raise ConfigError(
                f"{where}.canonical: keys {sorted(self.mapping)} must be exactly the native names "
                f"{sorted(names)}"
            )
        for name, target in self.mapping.items():
            if target is not None and target not in EMOTIONS:
                raise ConfigError(
                    f"{where}.canonical.{name} = {target!r}: expected one of {', '.join(EMOTIONS)} "
                    "or null (drop)"
                )

    @property
    def native_names(self) -> tuple[str, ...]:
        """The native label names, in code order."""
        return tuple(self.codes.values())

    def native_name(self, code: str, *, source: str) -> str:
        """The native label name of ``code``.

        Raises:
            DatasetError: If ``code`` is outside the dataset's label set; the message names
                ``source`` and lists the valid codes.
        """
        try:
            return self.codes[code]
        except KeyError:
            valid = ", ".join(f"{c} ({n})" for c, n in self.codes.items())
            raise DatasetError(
                f"{source}: label code {code!r} is not in the {self.dataset} label set; "
                f"expected one of {valid}",
                source=source,
                reason=f"label code {code!r} outside the {self.dataset} label set",
            ) from None

    def canonical(self, native: str) -> str | None:
        """The canonical emotion of a native label name, or None when the map drops it."""
        return self.mapping[native]

    def with_overrides(self, label_map: Mapping[str, str | None] | None) -> LabelScheme:
        """A copy whose mapping is updated by ``label_map`` (native name -> canonical or None).

        Raises:
            ConfigError: If a key is not a native label name of this dataset, or a value is neither
                a canonical emotion nor None.
        """
        if not label_map:
            return self
        if not isinstance(label_map, Mapping):
            raise ConfigError(
                f"{self.dataset} label_map: expected a mapping of native label name -> canonical "
                f"emotion or None, got {type(label_map).__name__}"
            )
        merged = dict(self.mapping)
        for key, value in label_map.items():
            if key not in merged:
                hint = f" (code {key!r} is {self.codes[key]!r})" if key in self.codes else ""
                raise ConfigError(
                    f"{self.dataset} label_map: key {key!r} is not a native {self.dataset} label "
                    f"name{hint}; expected one of {', '.join(self.native_names)}"
                )
            if value is not None and value not in EMOTIONS:
                raise ConfigError(
                    f"{self.dataset} label_map[{key!r}] = {value!r}: expected one of "
                    f"{', '.join(EMOTIONS)} or None (drop)"
                )
            merged[key] = value
        return LabelScheme(self.dataset, self.codes, MappingProxyType(merged))


@functools.cache
def _default_scheme(dataset: str) -> LabelScheme:
    text = (resources.files("mer_gym.datasets") / "label_maps.yaml").read_text(encoding="utf-8")
    data = parse_yaml(text, where="mer_gym/datasets/label_maps.yaml")
    if dataset not in data:
        raise ConfigError(f"label_maps.yaml has no entry for {dataset!r}")
    entry = data[dataset]
    codes = {str(k): str(v) for k, v in entry["codes"].items()}
    mapping = {str(k): (None if v is None else str(v)) for k, v in entry["canonical"].items()}
    return LabelScheme(dataset, MappingProxyType(codes), MappingProxyType(mapping))


def label_scheme(dataset: str, label_map: Mapping[str, str | None] | None = None) -> LabelScheme:
    """The label scheme of ``dataset`` from ``label_maps.yaml``, with ``label_map`` overrides.

    Args:
        dataset: One of :data:`DATASETS`.
        label_map: Optional overrides, native label name -> canonical emotion or None.

    Raises:
        ConfigError: For an unknown dataset or a bad override.

    >>> label_scheme("emodb").canonical(label_scheme("emodb").native_name("W", source="x"))
    'anger'
    >>> label_scheme("fer2013", {"surprise": "fear"}).canonical("surprise")
    'fear'
    """
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    return _default_scheme(dataset).with_overrides(label_map)
