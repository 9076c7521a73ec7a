"""A study, as a YAML file: who the users are, which policies meet them, on which seeds.

A study compares personalization policies on simulated pilots. Its YAML (the shipped ones lie
beside this module: ``pilot``, ``population``, ``drift``, ``feedback-sparsity``, ``sensitivity``,
``fusion``, ``fairness``, ``waves``, ``privacy``) has these keys, each validated with an error naming the field:

.. code-block:: yaml

    name: pilot
    question: Does the paper's adaptive fusion beat equal weights on its own pilot?
    population: {preset: paper-pilot, n_users: 6, seed: 0, days: 14, overrides: {}}
    seeds: [0, 1, 2, 3, 4]          # or a count: 5 (seeds 0..4)
    env: {fusion: feature, delta_w: 0.1, increments: [-1, 0, 1], history: 5, w_face0: 0.5,
          privacy_epsilon: null}     # a number: feedback under local differential privacy
    baseline: equal-weights          # gains are paired differences against this policy
    policies:                        # a name, or {name, label, params}
      - equal-weights
      - {name: q-learning, params: {alpha: 0.05, gamma: 0.9}}
    conditions:                      # optional: arms of a sweep; each re-runs every policy
      - {label: "p_explicit=0.05", value: 0.05,
         population: {profile: {feedback: {p_explicit: 0.05}}}}
    sweep: explicit-feedback probability   # the x-axis label of the gain-per-condition figure
    warm_start: {policy: q-learning-warm, source: q-learning}   # optional (the waves study)
    log_interactions: false          # also keep one row per interaction
    paper: false                     # put the paper's numbers beside ours in the report

Jobs are (condition, policy, user, seed). Every policy meets a user on the same stream for a given
seed (common random numbers: the stream seed is the study seed), so gains are paired.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from mer_gym.config import ConfigError, from_mapping, parse_yaml, plain

__all__ = [
    "ConditionSpec",
    "EnvSpec",
    "PolicySpec",
    "PopulationSpec",
    "Study",
    "WarmStart",
    "load_study",
    "study_names",
]

#: The env keyword arguments a study may set (:class:`mer_gym.envs.PersonalizationEnv`).
ENV_KEYS = ("fusion", "delta_w", "increments", "history", "w_face0", "reward", "privacy_epsilon")


@dataclass(frozen=True)
class PopulationSpec:
    """Who the users are.

    Attributes:
        preset: a population preset of :mod:`simulators.users.population` (name or YAML path).
        n_users: users to sample (None: the preset's).
        seed: the population sampling seed (None: the preset's).
        days: pilot length in days (None: the preset's ``schedule.days``).
        overrides: merged into the preset's mapping before sampling (e.g.
            ``{profile: {feedback: {p_explicit: 0.05}}}``); mappings merge key by key.
    """

    preset: str = "paper-pilot"
    n_users: int | None = None
    seed: int | None = None
    days: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("n_users", "days"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"population.{name} = {value!r}: expected an integer >= 1 (or leave it out)")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"population.seed = {self.seed!r}: expected an integer >= 0")
        if not isinstance(self.overrides, Mapping):
            raise ConfigError(f"population.overrides = {self.overrides!r}: expected a mapping")


@dataclass(frozen=True)
class EnvSpec:
    """The env's options (see :class:`mer_gym.envs.PersonalizationEnv`); the action mode follows
    each policy."""

    fusion: str = "feature"
    delta_w: float = 0.1
    increments: tuple[int, ...] = (-1, 0, 1)
    history: int = 5
    w_face0: float = 0.5
    reward: str = "feedback"
    privacy_epsilon: float | None = None

    def kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ENV_KEYS}


@dataclass(frozen=True)
class PolicySpec:
    """A policy of the study: a registered name (:func:`agents.base.make_policy`), its label in the
    tables (default: the name) and its hyperparameters."""

    name: str
    label: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"policies: name = {self.name!r}: expected a registered policy name")
        if self.label is None:
            object.__setattr__(self, "label", self.name)
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"policy {self.label!r}: params = {self.params!r}: expected a mapping")


@dataclass(frozen=True)
class ConditionSpec:
    """One arm of a sweep: what it changes, merged over the study's own settings.

    Attributes:
        label: the arm's name in the tables (e.g. ``"p_explicit=0.05"``).
        value: the swept value, for plots (optional).
        population: merged into ``population.overrides``.
        env: env options replacing the study's.
        params: hyperparameters merged into the params of ``applies_to`` policies.
        applies_to: labels of the policies ``params`` go to (default: every policy but the baseline).
    """

    label: str
    value: float | None = None
    population: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    applies_to: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label or "/" in self.label:
            raise ConfigError(f"conditions: label = {self.label!r}: expected a non-empty name without '/'")
        unknown = sorted(set(self.env) - set(ENV_KEYS))
        if unknown:
            raise ConfigError(
                f"condition {self.label!r}: env key(s) {unknown} unknown; allowed: {', '.join(ENV_KEYS)}"
            )


@dataclass(frozen=True)
class WarmStart:
    """Users enrol in waves; ``policy`` starts each user from the mean final Q-table of ``source``
    over the users of earlier waves (same condition and seed). The first wave starts cold."""

    policy: str = "q-learning-warm"
    source: str = "q-learning"


@dataclass(frozen=True)
class Study:
    """A validated study (see the module docstring for the YAML)."""

    name: str
    question: str = ""
    population: PopulationSpec = field(default_factory=PopulationSpec)
    seeds: tuple[int, ...] = (0,)
    env: EnvSpec = field(default_factory=EnvSpec)
    baseline: str = "equal-weights"
    policies: tuple[PolicySpec, ...] = ()
    conditions: tuple[ConditionSpec, ...] = ()
    warm_start: WarmStart | None = None
    log_interactions: bool = False
    paper: bool = False
    sweep: str = "condition"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ConfigError(f"study name = {self.name!r}: expected a non-empty name without '/'")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ConfigError(f"study {self.name!r}: seeds = {list(self.seeds)!r}: expected integers >= 0")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"study {self.name!r}: seeds repeat: {list(self.seeds)!r}")
        if not self.policies:
            raise ConfigError(f"study {self.name!r}: policies is empty: list at least the baseline and one policy")
        labels = [p.label for p in self.policies]
        dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
        if dupes:
            raise ConfigError(f"study {self.name!r}: policy labels repeat: {dupes}; give each a distinct 'label'")
        if self.baseline not in labels:
            raise ConfigError(
                f"study {self.name!r}: baseline {self.baseline!r} is not among the policies "
                f"({', '.join(labels)}): add it, since gains are paired differences against it"
            )
        conds = [c.label for c in self.conditions]
        if len(set(conds)) != len(conds):
            raise ConfigError(f"study {self.name!r}: condition labels repeat: {conds}")
        for c in self.conditions:
            for lab in c.applies_to or ():
                if lab not in labels:
                    raise ConfigError(
                        f"condition {c.label!r}: applies_to names {lab!r}, not a policy of the study ({', '.join(labels)})"
                    )
        if self.warm_start is not None:
            for role in ("policy", "source"):
                lab = getattr(self.warm_start, role)
                if lab not in labels:
                    raise ConfigError(f"warm_start.{role} = {lab!r} is not a policy of the study ({', '.join(labels)})")

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.policies]  # type: ignore[misc]

    @property
    def condition_labels(self) -> list[str]:
        return [c.label for c in self.conditions] or ["default"]

    def condition(self, label: str) -> ConditionSpec:
        for c in self.conditions:
            if c.label == label:
                return c
        if label == "default" and not self.conditions:
            return ConditionSpec(label="default")
        raise KeyError(label)

    def policy_params(self, label: str, condition: str) -> tuple[str, dict[str, Any]]:
        """(registered name, hyperparameters) of policy ``label`` under ``condition``."""
        spec = next(p for p in self.policies if p.label == label)
        params = dict(spec.params)
        cond = self.condition(condition)
        targets = cond.applies_to if cond.applies_to is not None else [
            lab for lab in self.labels if lab != self.baseline
        ]
        if label in targets:
            params.update(cond.params)
        return spec.name, params

    def env_kwargs(self, condition: str) -> dict[str, Any]:
        out = self.env.kwargs()
        out.update(self.condition(condition).env)
        if "increments" in out:
            out["increments"] = tuple(out["increments"])
        return out

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self))

    def digest(self) -> str:
        """sha256 of the study's canonical JSON: a resumed run must have the same."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def scaled(self, *, n_users: int | None = None, seeds: int | None = None, days: int | None = None) -> Study:
        """The same study on fewer users, seeds or days (quick runs and tests)."""
        pop = self.population
        pop = PopulationSpec(
            preset=pop.preset,
            n_users=n_users if n_users is not None else pop.n_users,
            seed=pop.seed,
            days=days if days is not None else pop.days,
            overrides=copy.deepcopy(pop.overrides),
        )
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw["population"] = pop
        if seeds is not None:
            kw["seeds"] = tuple(range(seeds))
        return Study(**kw)


def study_names() -> list[str]:
    """Names of the shipped studies."""
    folder = resources.files("studies")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def study_from_mapping(data: Any, *, where: str) -> Study:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of study keys (name, population, seeds, policies, ...)")
    data = dict(data)
    seeds = data.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"{where}.seeds = {seeds!r}: expected a count >= 1 or a list of seeds")
        data["seeds"] = list(range(seeds))
    policies = data.get("policies")
    if isinstance(policies, list):
        data["policies"] = [{"name": p} if isinstance(p, str) else p for p in policies]
    elif policies is not None:
        raise ConfigError(f"{where}.policies: expected a list of policy names or {{name, label, params}} mappings")
    return from_mapping(Study, data, where=where)


def load_study(name_or_path: str | Path) -> Study:
    """A shipped study by name (``pilot``, ``population`` ...) or a YAML path.

    Raises:
        ConfigError: an unknown name, a missing file, unreadable YAML, an unknown key or a bad value
            (the message names the field).
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"study file {path} does not exist (shipped studies: {', '.join(study_names())})")
        text, where = path.read_text(), f"study {path}"
    else:
        names = study_names()
        if str(name_or_path) not in names:
            raise ConfigError(
                f"unknown study {str(name_or_path)!r}: expected one of {', '.join(names)} or a path to a .yaml file"
            )
        text = (resources.files("studies") / f"{name_or_path}.yaml").read_text()
        where = f"study {name_or_path!r}"
    return study_from_mapping(parse_yaml(text, where=where), where=where)
