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
import math
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
MAX_SEEDS = 10_000
"""The largest seed count ``seeds: <n>`` may ask for (each seed re-runs every job)."""
MAX_USERS = 100_000
"""The most users ``population.n_users`` may ask for."""
MAX_DAYS = 3650
"""The longest pilot ``population.days`` may ask for (ten years)."""


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
        for name, most in (("n_users", MAX_USERS), ("days", MAX_DAYS)):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most
            ):
                raise ConfigError(
                    f"population.{name} = {value!r}: expected an integer in 1..{most} (or leave it out)"
                )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"population.seed = {self.seed!r}: expected an integer >= 0")
        if not isinstance(self.overrides, Mapping):
            raise ConfigError(f"population.overrides = {self.overrides!r}: expected a mapping")
        check_names("population.overrides", self.overrides)


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

    def __post_init__(self) -> None:
        check_env_options(self.kwargs(), where=None)

    def kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ENV_KEYS}


def check_names(where: str, mapping: Any) -> None:
    """Raise ConfigError unless ``mapping`` is a mapping whose keys, and those of every mapping
    nested in it, are strings: keys are option names, and the study's JSON digest needs them
    (YAML would allow ``1: x``)."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where} = {mapping!r}: expected a mapping")
    _check_keys(where, mapping)


def _check_keys(where: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where}: key {key!r} is a {type(key).__name__}: expected a name (a string)")
            _check_keys(f"{where}.{key}", item)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_keys(f"{where}[{i}]", item)


def check_env_options(options: Mapping[str, Any], *, where: str | None) -> None:
    """Check env options with the env's own validators, so a bad value fails when the study loads
    rather than in the first job; raises ConfigError naming the option (after ``where: ``)."""
    from mer_gym.envs.fusion import check_fusion
    from mer_gym.envs.personalization import check_increments, check_weight
    from mer_gym.envs.privacy import check_epsilon
    from mer_gym.envs.reward import make_reward

    checks = {
        "fusion": check_fusion,
        "delta_w": lambda v: check_increments(v, (0,)),
        "increments": lambda v: check_increments(options.get("delta_w", EnvSpec.delta_w), v),
        "history": _check_history,
        "w_face0": lambda v: check_weight(v, "w_face0"),
        "reward": make_reward,
        "privacy_epsilon": check_epsilon,
    }
    for key in ENV_KEYS:
        if key not in options:
            continue
        try:
            if key in ("fusion", "reward") and not isinstance(options[key], str):
                raise ValueError(f"{key} = {options[key]!r}: expected a name")
            checks[key](options[key])
        except (TypeError, ValueError, ArithmeticError) as exc:  # float(10**400) overflows
            raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


def _check_history(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"history = {value!r}: expected an integer >= 1 (the paper's k)")


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
        if not isinstance(self.label, str) or not self.label:
            raise ConfigError(f"policy {self.name!r}: label = {self.label!r}: expected a non-empty name")
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"policy {self.label!r}: params = {self.params!r}: expected a mapping")
        check_names(f"policy {self.label!r}: params", self.params)


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
        if self.value is not None and not math.isfinite(self.value):
            raise ConfigError(f"condition {self.label!r}: value = {self.value!r}: expected a finite number")
        for name in ("population", "env", "params"):
            check_names(f"condition {self.label!r}: {name}", getattr(self, name))
        unknown = sorted(set(self.env) - set(ENV_KEYS), key=str)
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
        for c in self.conditions:
            check_env_options({**self.env.kwargs(), **c.env}, where=f"condition {c.label!r}: env")
        self._check_policies()

    def _check_policies(self) -> None:
        """Build every policy under every condition (cheap: no training, no env), so an unknown
        name, a bad hyperparameter or a ``delta_w`` that a weight-level policy cannot use fails
        when the study loads rather than in its first job."""
        from agents.base import make_policy, policy_names
        from mer_gym.envs.personalization import weight_levels

        def build(name: str, params: dict[str, Any], where: str) -> Any:
            try:
                return make_policy(name, **params)
            except (TypeError, ValueError, ArithmeticError) as exc:  # PolicyError, ConfigError: ValueErrors
                raise ConfigError(f"{where}: {exc}") from None

        known = policy_names()
        for i, p in enumerate(self.policies):
            if p.name not in known:
                raise ConfigError(
                    f"policies[{i}].name = {p.name!r}: unknown policy; expected one of {', '.join(known)}"
                )
            build(p.name, dict(p.params), f"policies[{i}].params ({p.label!r})")
        for j, cond in enumerate(self.condition_labels):
            in_cond = f" under condition {cond!r}" if self.conditions else ""
            for p in self.policies:
                name, params = self.policy_params(p.label, cond)  # type: ignore[arg-type]
                where = f"conditions[{j}].params ({cond!r}) for policy {p.label!r}"
                policy = build(name, params, where) if params != p.params else make_policy(name, **params)
                if getattr(policy, "actions", None) == "levels":
                    try:
                        weight_levels(self.env_kwargs(cond)["delta_w"])
                    except ValueError as exc:
                        raise ConfigError(
                            f"policy {p.label!r} sets weight levels{in_cond}, so env.{exc}"
                        ) from None

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
        if not 1 <= seeds <= MAX_SEEDS:
            raise ConfigError(
                f"{where}.seeds = {seeds!r}: expected a count in 1..{MAX_SEEDS} or a list of seeds"
            )
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
        where = f"study {path}"
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot be read as text ({exc}); a study is a UTF-8 YAML file") from None
    else:
        names = study_names()
        if str(name_or_path) not in names:
            raise ConfigError(
                f"unknown study {str(name_or_path)!r}: expected one of {', '.join(names)} or a path to a .yaml file"
            )
        text = (resources.files("studies") / f"{name_or_path}.yaml").read_text()
        where = f"study {name_or_path!r}"
    return study_from_mapping(parse_yaml(text, where=where), where=where)
