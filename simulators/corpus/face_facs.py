"""FACS tables of the face renderer, loaded and validated from ``data/facs.yaml``.

The file holds the EMFACS prototype of every emotion (simulator-facts §3, S), the geometry of every
action unit as deltas of a small set of expression parameters, the per-sample variation of an
expression and the sampling ranges of face identities. This module turns it into frozen dataclasses,
draws an expression's AU activations (:func:`au_activations`) and maps activations to expression
parameters (:func:`expression_params`). The renderer itself is :mod:`simulators.corpus.faces`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np

from mer_gym.config import ConfigError, check_interval, check_range, parse_yaml
from mer_gym.labels import EMOTIONS

EXPRESSION_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "brow_inner_dy": (-0.25, 0.2),
    "brow_outer_dy": (-0.25, 0.2),
    "brow_inner_dx": (-0.1, 0.12),
    "furrow": (0.0, 1.0),
    "forehead_lines": (0.0, 1.0),
    "lid_upper": (-0.9, 1.5),
    "lid_lower": (-0.5, 0.9),
    "lid_straight": (0.0, 1.0),
    "cheek_raise": (0.0, 1.0),
    "nose_wrinkle": (0.0, 1.0),
    "ala_raise": (-0.05, 0.12),
    "upper_lip_raise": (-0.05, 0.15),
    "corner_dy": (-0.2, 0.2),
    "corner_dx": (-0.1, 0.18),
    "lower_lip_dy": (-0.08, 0.15),
    "lip_thin": (-0.8, 0.5),
    "lips_part": (0.0, 0.15),
    "jaw_drop": (0.0, 0.3),
    "chin_raise": (0.0, 1.0),
    "fold": (0.0, 1.0),
    "dimple": (0.0, 1.0),
}
"""Expression parameters (meanings in the header of ``facs.yaml``) and the range each is clipped to."""

HAIR_STYLES: Final[tuple[str, ...]] = ("none", "short", "long")
_AU_RE: Final = re.compile(r"^(\d{1,2})([A-E]?)$")


@dataclass(frozen=True)
class Prototype:
    """The EMFACS prototype of one emotion; AU specs are ``(au, activation at intensity 1)``."""

    aus: tuple[tuple[int, float], ...]
    variants: tuple[tuple[tuple[int, float], ...], ...] = ()
    variant_weights: tuple[float, ...] = ()
    optional: tuple[tuple[int, float, float], ...] = ()  # (au, activation, probability)

    def all_aus(self) -> frozenset[int]:
        """Every AU that this prototype can produce (base, any variant, optional)."""
        found = {a for a, _ in self.aus} | {a for group in self.variants for a, _ in group}
        return frozenset(found | {a for a, _, _ in self.optional})


@dataclass(frozen=True)
class Variation:
    """Per-sample variation of an expression (see ``facs.yaml``)."""

    jitter_sd: float = 0.12
    noise_prob: float = 0.12
    noise_max: float = 0.12

    def __post_init__(self) -> None:
        check_range("variation.jitter_sd", self.jitter_sd, 0.0, 1.0)
        check_range("variation.noise_prob", self.noise_prob, 0.0, 1.0)
        check_range("variation.noise_max", self.noise_max, 0.0, 1.0)


@dataclass(frozen=True)
class FacsTable:
    """Everything in ``facs.yaml``; build it with :func:`load_facs`."""

    letters: Mapping[str, float]
    prototypes: Mapping[str, Prototype]
    au_geometry: Mapping[int, Mapping[str, float]]
    variation: Variation
    identity: Mapping[str, Mapping[str, Any]]

    def __post_init__(self) -> None:
        missing = [e for e in EMOTIONS if e not in self.prototypes]
        if missing:
            raise ConfigError(f"prototypes: missing {missing}; every canonical emotion needs one")
        for emotion, proto in self.prototypes.items():
            unknown = sorted(proto.all_aus() - set(self.au_geometry))
            if unknown:
                raise ConfigError(
                    f"prototypes.{emotion}: AU(s) {unknown} have no entry in au_geometry"
                )
        if sorted(self.identity) != ["female", "male"]:
            raise ConfigError(f"identity: expected sections female and male, got {sorted(self.identity)}")

    @property
    def au_list(self) -> tuple[int, ...]:
        """Every AU with a geometry, ascending."""
        return tuple(sorted(self.au_geometry))


def parse_au(spec: Any, letters: Mapping[str, float], *, where: str) -> tuple[int, float]:
    """Parse ``12`` or ``"5B"`` into ``(au, activation)``; no letter means E (maximum)."""
    match = _AU_RE.match(str(spec).strip())
    if match is None or isinstance(spec, bool):
        raise ConfigError(f"{where} = {spec!r}: expected an AU number with an optional letter A-E, like 12 or 5B")
    letter = match.group(2) or "E"
    return int(match.group(1)), float(letters[letter])


def _prototype(raw: Any, letters: Mapping[str, float], where: str) -> Prototype:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with aus, variants, variant_weights, optional")
    unknown = sorted(set(raw) - {"aus", "variants", "variant_weights", "optional"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: aus, variants, variant_weights, optional")
    aus = tuple(parse_au(s, letters, where=f"{where}.aus") for s in raw.get("aus") or ())
    variants = tuple(
        tuple(parse_au(s, letters, where=f"{where}.variants[{i}]") for s in group)
        for i, group in enumerate(raw.get("variants") or ())
    )
    weights = tuple(float(w) for w in raw.get("variant_weights") or [1.0] * len(variants))
    if len(weights) != len(variants) or any(w < 0 for w in weights) or (variants and sum(weights) <= 0):
        raise ConfigError(
            f"{where}.variant_weights = {list(weights)}: expected {len(variants)} weights >= 0 with a positive sum"
        )
    optional = []
    for spec, prob in (raw.get("optional") or {}).items():
        au, act = parse_au(spec, letters, where=f"{where}.optional")
        check_range(f"{where}.optional.{spec}", float(prob), 0.0, 1.0)
        optional.append((au, act, float(prob)))
    return Prototype(aus, variants, weights, tuple(optional))


def _au_geometry(raw: Any, where: str) -> dict[int, dict[str, float]]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}: expected a mapping AU -> {{parameter: delta}}")
    table: dict[int, dict[str, float]] = {}
    for au, deltas in raw.items():
        if not isinstance(au, int) or isinstance(au, bool) or not isinstance(deltas, Mapping):
            raise ConfigError(f"{where}.{au}: expected an integer AU mapped to {{parameter: delta}}")
        bad = sorted(set(deltas) - set(EXPRESSION_BOUNDS))
        if bad:
            raise ConfigError(
                f"{where}.{au}: unknown parameter(s) {bad}; allowed: {', '.join(EXPRESSION_BOUNDS)}"
            )
        table[au] = {k: float(v) for k, v in deltas.items()}
    return table


def _identity(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected sections female and male")
    out: dict[str, dict[str, Any]] = {}
    for sex, fields in raw.items():
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{where}.{sex}: expected a mapping of field -> [min, max]")
        section: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "hair_styles":
                styles = {str(k): float(v) for k, v in value.items()}
                if set(styles) != set(HAIR_STYLES) or min(styles.values()) < 0 or sum(styles.values()) <= 0:
                    raise ConfigError(
                        f"{where}.{sex}.hair_styles = {styles}: expected weights >= 0 for {', '.join(HAIR_STYLES)}"
                    )
                section[name] = styles
            else:
                pair = tuple(float(v) for v in value)
                check_interval(f"{where}.{sex}.{name}", pair, -1e9, 1e9)
                section[name] = pair
        out[str(sex)] = section
    return out


def _table_from_mapping(data: Any, where: str) -> FacsTable:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    sections = ("intensity_letters", "prototypes", "au_geometry", "variation", "identity")
    unknown = sorted(set(data) - set(sections))
    missing = [s for s in sections if s not in data]
    if unknown or missing:
        raise ConfigError(f"{where}: unknown section(s) {unknown}, missing {missing}; expected {list(sections)}")
    letters = {str(k): float(v) for k, v in data["intensity_letters"].items()}
    if sorted(letters) != list("ABCDE") or not all(0.0 < v <= 1.0 for v in letters.values()):
        raise ConfigError(f"{where}.intensity_letters = {letters}: expected A-E mapped into (0, 1]")
    raw_protos = data["prototypes"]
    if not isinstance(raw_protos, Mapping):
        raise ConfigError(f"{where}.prototypes: expected a mapping emotion -> prototype")
    variation = data["variation"] or {}
    bad = sorted(set(variation) - {"jitter_sd", "noise_prob", "noise_max"})
    if bad:
        raise ConfigError(f"{where}.variation: unknown key(s) {bad}; allowed: jitter_sd, noise_prob, noise_max")
    return FacsTable(
        letters=letters,
        prototypes={
            str(e): _prototype(p, letters, f"{where}.prototypes.{e}") for e, p in raw_protos.items()
        },
        au_geometry=_au_geometry(data["au_geometry"], f"{where}.au_geometry"),
        variation=Variation(**{k: float(v) for k, v in variation.items()}),
        identity=_identity(data["identity"], f"{where}.identity"),
    )


def load_facs(path: str | Path | None = None) -> FacsTable:
    """Load and validate a FACS table; ``None`` loads the shipped ``data/facs.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or a key or value is invalid (the message
            names it).
    """
    if path is None:
        return _default_table()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"FACS table {path} does not exist: give a YAML file like data/facs.yaml")
    return _parse(path.read_text(), f"FACS table {path}")


@lru_cache(maxsize=1)
def _default_table() -> FacsTable:
    text = (resources.files("simulators.corpus") / "data" / "facs.yaml").read_text()
    return _parse(text, "FACS table data/facs.yaml")


def _parse(text: str, where: str) -> FacsTable:
    return _table_from_mapping(parse_yaml(text, where=where), where)


def au_activations(
    emotion: str,
    intensity: float,
    rng: np.random.Generator,
    *,
    facs: FacsTable | None = None,
) -> dict[int, float]:
    """Draw the action-unit activations of one expression.

    The prototype of ``emotion`` (one variant group drawn by weight, optional AUs by probability),
    each AU jittered, plus small noise activations of other AUs; everything is scaled by
    ``intensity``, so intensity 0 gives ``{}`` (the neutral face). Neutral has no prototype AUs and
    shows only the noise. Always takes the same number of draws from ``rng``.

    Args:
        emotion: a canonical emotion, or another emotion of the table (``"surprise"``).
        intensity: 0 (neutral) … 1 (the prototype at its table activations).
        rng: the generator to draw from.
        facs: table to use; ``None`` loads ``data/facs.yaml``.

    Returns:
        AU number -> activation in (0, 1], ascending by AU, zero activations left out.
    """
    table = facs or load_facs()
    if emotion not in table.prototypes:
        raise ValueError(f"emotion {emotion!r} has no FACS prototype: use one of {', '.join(table.prototypes)}")
    check_range("intensity", float(intensity), 0.0, 1.0)
    proto = table.prototypes[emotion]
    aus = table.au_list
    n = len(aus)
    u_variant = rng.random()
    jitter = rng.standard_normal(n)
    noise_on, noise_amp, optional_u = rng.random((3, n))
    chosen: dict[int, float] = dict(proto.aus)
    if proto.variants:
        weights = np.asarray(proto.variant_weights, dtype=float)
        k = int(np.searchsorted(np.cumsum(weights / weights.sum()), u_variant, side="right"))
        chosen.update(proto.variants[min(k, len(proto.variants) - 1)])
    for au, act, prob in proto.optional:
        if optional_u[aus.index(au)] < prob:
            chosen[au] = max(chosen.get(au, 0.0), act)
    var = table.variation
    out: dict[int, float] = {}
    for i, au in enumerate(aus):
        if au in chosen:
            act = float(np.clip(chosen[au] * (1.0 + var.jitter_sd * jitter[i]), 0.0, 1.0))
        elif noise_on[i] < var.noise_prob:
            act = float(noise_amp[i] * var.noise_max)
        else:
            act = 0.0
        act *= float(intensity)
        if act > 0.0:
            out[au] = act
    return out


def expression_params(activations: Mapping[int, float], facs: FacsTable | None = None) -> dict[str, float]:
    """Sum each AU's geometry weighted by its activation; clip to :data:`EXPRESSION_BOUNDS`."""
    table = facs or load_facs()
    params = dict.fromkeys(EXPRESSION_BOUNDS, 0.0)
    for au, act in activations.items():
        if au not in table.au_geometry:
            raise ValueError(f"AU {au} has no geometry in the FACS table: known AUs {list(table.au_list)}")
        for name, delta in table.au_geometry[au].items():
            params[name] += float(act) * delta
    return {k: float(np.clip(v, *EXPRESSION_BOUNDS[k])) for k, v in params.items()}
