"""Populations of simulated users: YAML presets and the seeded sampler (the *sampler* of the model).

A population preset (``simulators/users/presets/<name>.yaml``) is data, not code. It gives:

* ``profile``: a template :class:`~simulators.users.profile.Profile` without ids (contexts,
  emotions, feedback, schedule, drift), every key optional;
* ``variation``: how much users differ around the template: Dirichlet draws around every context's
  condition distribution and the context mix, Beta draws around the camera-off, silence and
  explicit-feedback rates, a uniform inertia range;
* ``persons``: which persons of the user pool may be drawn (expressivity ranges);
* ``subgroups``: optional named shares of the population, each with its own person filter and a
  partial profile merged over the template (for fairness studies);
* ``enrolment``: waves of users joining the study ``every_days`` apart.

:func:`sample_population` draws ``n_users`` profiles with a seed; the same (preset, n, seed, pool)
gives the same profiles.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mer_gym.config import ConfigError, check_interval, from_mapping, parse_yaml
from simulators.users.pool import UserPool
from simulators.users.profile import Profile

_DUMMY = {"user_id": "template", "person_id": "template"}


@dataclass(frozen=True)
class PersonFilter:
    """Which persons of the pool a (sub)population draws from (expressivity ranges, inclusive).

    A real-corpus pool has no expressivities (NaN): its persons pass any filter.
    """

    facial_expressivity: tuple[float, float] = (0.0, 1.0)
    vocal_expressivity: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        check_interval("persons.facial_expressivity", self.facial_expressivity, 0.0, 1.0)
        check_interval("persons.vocal_expressivity", self.vocal_expressivity, 0.0, 1.0)

    def select(self, pool: UserPool) -> list[int]:
        fe = pool.persons["facial_expressivity"].to_numpy(float)
        ve = pool.persons["vocal_expressivity"].to_numpy(float)
        ok = np.ones(len(fe), bool)
        for values, (lo, hi) in ((fe, self.facial_expressivity), (ve, self.vocal_expressivity)):
            ok &= np.isnan(values) | ((values >= lo) & (values <= hi))
        return np.flatnonzero(ok).tolist()


@dataclass(frozen=True)
class Variation:
    """How users differ around the template (D: design defaults; 0 switches a draw off).

    Attributes:
        condition_concentration: Dirichlet concentration of each user's face and speech condition
            distributions around the template's, per context (smaller: users differ more).
        context_concentration: Dirichlet concentration of the context weights.
        rate_concentration: Beta concentration of ``p_camera_off``, ``p_silence`` and
            ``feedback.p_explicit`` around the template's.
        inertia: range of a user's emotional inertia, uniform (Kuppens, Allen & Sheeber 2010, P:
            0.20-0.30 across emotions), or None to keep the template's.
    """

    condition_concentration: float = 4.0
    context_concentration: float = 8.0
    rate_concentration: float = 6.0
    inertia: tuple[float, float] | None = (0.20, 0.30)

    def __post_init__(self) -> None:
        for name in ("condition_concentration", "context_concentration", "rate_concentration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"variation.{name} = {value!r}: expected a number >= 0 (0: no variation)")
        if self.inertia is not None:
            check_interval("variation.inertia", self.inertia, 0.0, 0.99)


@dataclass(frozen=True)
class Subgroup:
    """A named share of the population with its own persons and profile changes."""

    name: str
    share: float = 1.0
    persons: PersonFilter = field(default_factory=PersonFilter)
    profile: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"subgroup name = {self.name!r}: expected a non-empty string")
        if isinstance(self.share, bool) or not isinstance(self.share, int | float) or not self.share > 0:
            raise ConfigError(f"subgroup {self.name!r}.share = {self.share!r}: expected a number > 0")


@dataclass(frozen=True)
class Enrolment:
    """Users join in ``waves`` waves, ``every_days`` apart (user i joins in wave i mod waves)."""

    waves: int = 1
    every_days: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.waves, int) or isinstance(self.waves, bool) or self.waves < 1:
            raise ConfigError(f"enrolment.waves = {self.waves!r}: expected an integer >= 1")
        if not isinstance(self.every_days, int) or isinstance(self.every_days, bool) or self.every_days < 0:
            raise ConfigError(f"enrolment.every_days = {self.every_days!r}: expected an integer >= 0")


@dataclass(frozen=True)
class PopulationPreset:
    """A named population (see the module docstring); build with :func:`load_population`."""

    name: str
    description: str = ""
    n_users: int = 6
    seed: int = 0
    profile: dict[str, Any] = field(default_factory=dict)
    variation: Variation = field(default_factory=Variation)
    persons: PersonFilter = field(default_factory=PersonFilter)
    subgroups: tuple[Subgroup, ...] = ()
    enrolment: Enrolment = field(default_factory=Enrolment)

    def __post_init__(self) -> None:
        where = f"population {self.name!r}"
        for name in ("n_users", "seed"):
            value = getattr(self, name)
            low = 1 if name == "n_users" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{where}: {name} = {value!r}: expected an integer >= {low}")
        names = [g.name for g in self.subgroups]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: subgroup names repeat ({', '.join(names)})")
        # validate the template and every subgroup's merged profile now, naming the field
        self.template(None)
        for g in self.subgroups:
            self.template(g)

    def template(self, group: Subgroup | None) -> dict[str, Any]:
        """The profile mapping for ``group`` (template with the group's changes merged in)."""
        where = f"population {self.name!r}: profile"
        data = copy.deepcopy(self.profile)
        if group is not None:
            data = merge(data, group.profile)
            where = f"population {self.name!r}: subgroups.{group.name}.profile"
        for key in ("user_id", "person_id", "subgroup", "facial_expressivity", "vocal_expressivity"):
            if key in data:
                raise ConfigError(f"{where}: {key!r} is set by the sampler; remove it from the preset")
        Profile.from_dict({**data, **_DUMMY}, where=where)
        return data


def merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, anything else (lists too) is replaced."""
    out = dict(copy.deepcopy(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def population_names() -> list[str]:
    """Names of the shipped population presets."""
    folder = resources.files("simulators.users") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_population(
    name_or_path: str | Path, overrides: Mapping[str, Any] | None = None
) -> PopulationPreset:
    """A shipped population preset by name (``paper-pilot``, ``population`` ...) or a YAML path;
    ``overrides`` are merged into its mapping (:func:`merge`) before validation.

    Raises:
        ConfigError: unknown name, unreadable YAML, an unknown key or a bad value (naming the field).
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"population preset file {path} does not exist")
        text, where = path.read_text(), str(path)
    else:
        names = population_names()
        if str(name_or_path) not in names:
            raise ConfigError(
                f"unknown population preset {str(name_or_path)!r}: expected one of {', '.join(names)} "
                "or a path to a .yaml file"
            )
        text = (resources.files("simulators.users") / "presets" / f"{name_or_path}.yaml").read_text()
        where = f"population preset {name_or_path!r}"
    data = parse_yaml(text, where=where)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of PopulationPreset fields")
    if overrides:
        data = merge(data, overrides)
        where = f"{where} (with overrides)"
    return from_mapping(PopulationPreset, data, where=where)


# ---------------------------------------------------------------------------------------------
# Sampling


def _dirichlet(rng: np.random.Generator, probs: Mapping[str, float], kappa: float) -> dict[str, float]:
    names = [n for n, p in probs.items() if p > 0]
    if kappa <= 0 or len(names) < 2:
        return dict(probs)
    alpha = np.array([probs[n] for n in names], float) * kappa
    draw = rng.dirichlet(alpha)
    draw = np.maximum(draw, 0.0)
    draw /= draw.sum()
    out = {n: 0.0 for n in probs}
    out.update({n: float(round(v, 6)) for n, v in zip(names, draw, strict=True)})
    # fix rounding so that the mapping sums to exactly 1 within the validator's tolerance
    top = max(names, key=lambda n: out[n])
    out[top] = float(round(out[top] + 1.0 - sum(out.values()), 6))
    return out


def _beta(rng: np.random.Generator, p: float, kappa: float) -> float:
    if kappa <= 0 or p <= 0 or p >= 1:
        return float(p)
    return float(round(rng.beta(kappa * p, kappa * (1 - p)), 6))


def _vary(data: dict[str, Any], v: Variation, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one user's profile mapping around the template ``data`` (resolved to full defaults)."""
    full = Profile.from_dict({**data, **_DUMMY}).to_dict()
    contexts = full["contexts"]
    weights = _dirichlet(rng, {c["name"]: c["weight"] for c in contexts}, v.context_concentration)
    for c in contexts:
        c["weight"] = max(weights[c["name"]], 1e-6)
        c["face"] = _dirichlet(rng, c["face"], v.condition_concentration)
        c["speech"] = _dirichlet(rng, c["speech"], v.condition_concentration)
        c["p_camera_off"] = _beta(rng, c["p_camera_off"], v.rate_concentration)
        c["p_silence"] = _beta(rng, c["p_silence"], v.rate_concentration)
        if c["p_camera_off"] == 1.0 and c["p_silence"] == 1.0:
            c["p_silence"] = 0.999
    full["feedback"]["p_explicit"] = _beta(rng, full["feedback"]["p_explicit"], v.rate_concentration)
    if v.inertia is not None:
        full["emotions"]["inertia"] = float(round(rng.uniform(*v.inertia), 6))
    for key in _DUMMY:
        full.pop(key)
    return full


def _shares(groups: tuple[Subgroup, ...], n: int) -> list[int]:
    """Users per subgroup: largest-remainder rounding of the normalized shares."""
    shares = np.array([g.share for g in groups], float)
    exact = shares / shares.sum() * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def sample_population(
    preset: PopulationPreset | str | Path,
    pool: UserPool,
    *,
    n_users: int | None = None,
    seed: int | None = None,
) -> list[Profile]:
    """Draw the profiles of a population.

    Args:
        preset: a :class:`PopulationPreset`, or a shipped name / YAML path.
        pool: the user pool the persons come from (:func:`simulators.users.pool.default_pool`).
        n_users: users to draw (default: the preset's ``n_users``).
        seed: sampler seed (default: the preset's ``seed``).

    Persons are drawn without replacement while the pool allows it, then reused in fresh random
    orders, so a population larger than the pool spreads evenly over its persons.

    Raises:
        ConfigError: a bad count or seed, or a (sub)population whose person filter matches nobody.
    """
    if not isinstance(preset, PopulationPreset):
        preset = load_population(preset)
    n = preset.n_users if n_users is None else n_users
    seed = preset.seed if seed is None else seed
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"n_users = {n!r}: expected an integer >= 1")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed = {seed!r}: expected an integer >= 0")
    groups = preset.subgroups or (Subgroup("all", 1.0, preset.persons, {}),)
    counts = _shares(groups, n)
    root = np.random.SeedSequence(seed)
    persons_rng, *user_ss = root.spawn(n + 1)
    persons_rng = np.random.default_rng(persons_rng)
    profiles: list[Profile] = []
    i = 0
    for group, count in zip(groups, counts, strict=True):
        if count == 0:
            continue
        eligible = group.persons.select(pool)
        if not eligible:
            raise ConfigError(
                f"population {preset.name!r}: subgroup {group.name!r}: no person of the pool matches "
                f"persons = {dataclasses.asdict(group.persons)}; widen the expressivity ranges"
            )
        order: list[int] = []
        while len(order) < count:
            order += persons_rng.permutation(eligible).tolist()
        template = preset.template(group if preset.subgroups else None)
        for k in range(count):
            rng = np.random.default_rng(user_ss[i])
            data = _vary(template, preset.variation, rng)
            wave = i % preset.enrolment.waves
            data["schedule"]["start_day"] = int(data["schedule"].get("start_day", 0)) + wave * preset.enrolment.every_days
            person = pool.persons.iloc[order[k]]
            fe, ve = float(person["facial_expressivity"]), float(person["vocal_expressivity"])
            profile = Profile.from_dict(
                {
                    **data,
                    "user_id": f"u{i:03d}",
                    "person_id": str(person["person_id"]),
                    "subgroup": group.name,
                    "facial_expressivity": None if math.isnan(fe) else round(fe, 4),
                    "vocal_expressivity": None if math.isnan(ve) else round(ve, 4),
                },
                where=f"population {preset.name!r}: user u{i:03d}",
            )
            profiles.append(profile)
            i += 1
    return profiles
