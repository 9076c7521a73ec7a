"""One policy protocol for every personalization policy: learned, hand-made, bounds and SB3 models.

A policy:

* ``act(obs, deterministic=False) -> int``: an action for one Dict observation of
  :class:`~mer_gym.envs.PersonalizationEnv`;
* ``learn(obs, action, reward, next_obs, terminated, truncated, info)``: learn from one
  transition (a no-op for fixed policies). Learning policies may read only the feedback in
  ``info["explicit_feedback"]``; ground truth (``info["label"]``) is for the bounds alone, which
  say so with ``uses_truth = True``;
* ``reset_user(user_id, env=None)``: start (or resume) a user; per-user state such as a Q-table
  persists across days and users. Bounds that need the user's stream get the env;
* ``predict(observation, state=None, episode_start=None, deterministic=False)``: SB3's signature,
  so that ``stable_baselines3.common.evaluation.evaluate_policy`` scores our policies, batched
  observations (a ``VecEnv``) included;
* ``save(path)`` / ``load(path)``: state as ``.npz`` (no pickles) plus ``.json`` that records
  the npz's sha256; loading refuses a changed npz, an object (pickled) array or another
  policy's state.

``actions`` says which action mode of the env the policy speaks (``"increments"``, the paper's,
or ``"levels"``, setting the weight directly); ``w_face0`` optionally asks the runner to start a
pilot at a given weight.

Hyperparameters are validated dataclasses; :func:`register` adds a policy to the registry that
studies name policies by (see docs/agents.md for a policy in one short file).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mer_gym.config import ConfigError, from_mapping, plain

FORMAT = 1


class PolicyError(ValueError):
    """A policy name, hyperparameter or saved state is invalid; the message names it."""


def check_positive(where: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok or not np.isfinite(value):
        raise ConfigError(f"{where} = {value!r}: expected a finite number {'>=' if allow_zero else '>'} 0")


def unbatch(observation: Mapping[str, Any]) -> list[dict[str, np.ndarray]] | None:
    """A batched Dict observation (leading env axis, as from a VecEnv) split into single ones;
    None if ``observation`` is a single observation."""
    weights = np.asarray(observation["weights"])
    if weights.ndim == 1:
        return None
    n = weights.shape[0]
    return [{k: np.asarray(v)[i] for k, v in observation.items()} for i in range(n)]


class Policy:
    """Base class: subclasses set ``name``, ``Config`` and implement :meth:`act` (and, if they
    learn, :meth:`learn`; if they keep state, :meth:`state_dict` / :meth:`load_state_dict`)."""

    name: ClassVar[str] = "policy"
    actions: ClassVar[str] = "increments"
    uses_truth: ClassVar[bool] = False
    Config: ClassVar[type] = type(None)

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        if config is None:
            config = from_mapping(self.Config, kwargs, where=f"policy {self.name!r}")
        elif kwargs:
            raise PolicyError(f"policy {self.name!r}: give either a config or keyword hyperparameters, not both")
        elif not isinstance(config, self.Config):
            raise PolicyError(f"policy {self.name!r}: config must be a {self.Config.__name__}")
        self.config = config
        self.user_id: str | None = None
        self.rng = np.random.default_rng(getattr(config, "seed", 0))

    @property
    def w_face0(self) -> float | None:
        """The face weight a pilot should start at (None: the env's default, 0.5)."""
        return None

    # ---- the protocol ---------------------------------------------------------------------

    def reset_user(self, user_id: str, env: Any = None) -> None:
        """Start or resume ``user_id``. The base reseeds the policy's generator from (seed, user), so
        a user's exploration does not depend on which users came before."""
        self.user_id = user_id
        self.rng = np.random.default_rng([getattr(self.config, "seed", 0), zlib.crc32(user_id.encode())])

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        raise NotImplementedError

    def learn(
        self,
        obs: Mapping[str, np.ndarray],
        action: int,
        reward: float,
        next_obs: Mapping[str, np.ndarray],
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
    ) -> None:
        """Learn from one transition (default: nothing)."""

    def predict(
        self,
        observation: Mapping[str, Any],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: actions for a single or a batched Dict observation."""
        singles = unbatch(observation)
        if singles is None:
            return np.asarray(self.act(observation, deterministic=deterministic)), state
        return np.array([self.act(o, deterministic=deterministic) for o in singles]), state

    # ---- persistence ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that make up the learned state (default: none)."""
        return {}

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (``meta`` is the saved JSON). The default, for policies
        without learned state, refuses arrays: they belong to another policy."""
        if arrays:
            raise PolicyError(
                f"policy {self.name!r} keeps no learned state, but the saved state holds arrays "
                f"{', '.join(sorted(arrays)[:5])}: it was saved by another policy"
            )

    def meta(self) -> dict[str, Any]:
        """JSON-able description saved beside the arrays (checked on load)."""
        return {}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>.npz`` (no pickles) and ``<path>.json`` (name, config, meta) atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        npz, card = path.with_suffix(".npz"), path.with_suffix(".json")
        tmp = npz.with_name(npz.name + ".partial")
        with open(tmp, "wb") as f:
            np.savez(f, **self.state_dict())
        tmp_card = card.with_name(card.name + ".partial")
        tmp_card.write_text(
            json.dumps(
                {"format": FORMAT, "policy": self.name, "config": plain(dataclasses.asdict(self.config)),
                 "meta": self.meta(), "npz_sha256": _file_sha256(tmp)},
                indent=1,
            )
            + "\n"
        )
        os.replace(tmp, npz)
        os.replace(tmp_card, card)
        return npz

    @classmethod
    def load(cls, path: str | os.PathLike) -> Policy:
        """A policy saved by :meth:`save` (the class is looked up by name in the registry)."""
        path = Path(path)
        npz, card = path.with_suffix(".npz"), path.with_suffix(".json")
        if not npz.is_file() or not card.is_file():
            raise PolicyError(f"no saved policy at {path}: expected {npz.name} and {card.name}")
        try:
            data = json.loads(card.read_text())
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{card} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise PolicyError(f"{card}: expected a JSON object written by Policy.save")
        if data.get("format") != FORMAT:
            raise PolicyError(f"{card}: format {data.get('format')!r}, expected {FORMAT}")
        config, meta = data.get("config", {}), data.get("meta", {})
        if not isinstance(config, dict) or not isinstance(meta, dict):
            raise PolicyError(f"{card}: 'config' and 'meta' must be JSON objects")
        klass = registry_class(data.get("policy", ""))
        if cls is not Policy and not issubclass(klass, cls):
            raise PolicyError(f"{card} holds a {data['policy']!r} policy, not a {cls.name!r} one")
        recorded = data.get("npz_sha256")
        if not isinstance(recorded, str):
            raise PolicyError(
                f"{card} records no 'npz_sha256', so {npz.name} cannot be checked: save the policy "
                "again with Policy.save"
            )
        if (actual := _file_sha256(npz)) != recorded:
            raise PolicyError(
                f"{npz} has sha256 {actual[:16]}… but {card.name} records {recorded[:16]}…: the file "
                "was modified or damaged after Policy.save wrote it; save the policy again"
            )
        policy = klass(**config)
        try:
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # zip, npz and "Object arrays cannot be loaded" errors come in many types
            raise PolicyError(
                f"{npz} cannot be read without unpickling ({type(exc).__name__}: {exc}); "
                "a saved policy holds plain numeric arrays only: save the policy again"
            ) from None
        policy.load_state_dict(arrays, meta)
        return policy


def _file_sha256(path: Path) -> str:
    from mer_gym.hashing import file_sha256  # the one sha256 helper (no cv2/TF import)

    return file_sha256(path)


# ---------------------------------------------------------------------------------------------
# Registry

_REGISTRY: dict[str, tuple[type[Policy], dict[str, Any]]] = {}


def register(name: str, cls: type[Policy], **defaults: Any) -> None:
    """Make ``name`` build ``cls(**defaults, **hyperparameters)`` in :func:`make_policy`."""
    if name in _REGISTRY and _REGISTRY[name][0] is not cls:
        raise PolicyError(f"policy name {name!r} is already registered for {_REGISTRY[name][0].__name__}")
    _REGISTRY[name] = (cls, defaults)


def policy(name: str, **defaults: Any) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator: ``@policy("my-policy")`` registers the class under that name."""

    def wrap(cls: type[Policy]) -> type[Policy]:
        register(name, cls, **defaults)
        return cls

    return wrap


def policy_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def registry_class(name: str) -> type[Policy]:
    _load_builtins()
    for cls, _ in _REGISTRY.values():
        if cls.name == name:
            return cls
    if name in _REGISTRY:
        return _REGISTRY[name][0]
    raise PolicyError(f"unknown policy {name!r}: expected one of {', '.join(sorted(_REGISTRY))}")


def make_policy(name: str, **hyperparameters: Any) -> Policy:
    """Build a registered policy by name, e.g. ``make_policy("q-learning", alpha=0.05)``.

    Raises:
        PolicyError: an unknown name (the message lists the known ones).
        ConfigError: an unknown or out-of-range hyperparameter (the message names it).
    """
    _load_builtins()
    if name not in _REGISTRY:
        raise PolicyError(f"unknown policy {name!r}: expected one of {', '.join(sorted(_REGISTRY))}")
    cls, defaults = _REGISTRY[name]
    return cls(**{**defaults, **hyperparameters})


def _load_builtins() -> None:
    import agents  # noqa: F401 - importing the package registers the built-in policies
