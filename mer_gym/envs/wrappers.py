"""Wrappers: a discretized observation for tabular agents (the paper's Q-table), and what SB3 needs.

:class:`DiscretizeObservation` maps the env's ``Dict`` observation to one integer state, the
product of a few binned features (the paper's §5.5 state: fused confidences, the last detected
emotions and the user-interaction features, made small enough for a Q-table to fill in a
two-week pilot). SB3's algorithms take the ``Dict`` observation flattened by Gymnasium's own
``FlattenObservation`` (:func:`flatten_for_sb3`).

Default state (5 x 3 = 15 states): the face weight and the last explicit feedback.

| feature | values | bins |
|---|---|---|
| ``w_face`` | the current face weight | [0, .2), [.2, .4), [.4, .6), [.6, .8), [.8, 1] |
| ``explicit`` | last explicit feedback | none, confirmation, correction |

A Q-table has to fill in a two-week pilot of a few dozen interactions, so the default state is
small; on users whose best weight is far from equal weights it learns faster than the richer
135-state variant (``features=("confidence_gap", "w_face", "explicit", "present")``), which
the tests of ``agents`` compare.

Optional features: ``confidence_gap`` (max face prob − max speech prob; bins −0.2, 0.2),
``present`` (both, face only, speech only), ``fused_confidence`` (max fused prob; bins 0.4, 0.7),
``last_emotion`` (the newest detected emotion, 7 values), ``engagement`` (bins 0.5, 0.8),
``response_time`` (bins 0.2, 0.5).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation

from mer_gym.labels import EMOTIONS

DEFAULT_FEATURES = ("w_face", "explicit")
RICH_FEATURES = ("confidence_gap", "w_face", "explicit", "present")
DEFAULT_BINS: dict[str, tuple[float, ...]] = {
    "confidence_gap": (-0.2, 0.2),
    "w_face": (0.2, 0.4, 0.6, 0.8),
    "fused_confidence": (0.4, 0.7),
    "engagement": (0.5, 0.8),
    "response_time": (0.2, 0.5),
}
_CATEGORICAL = {"explicit": 3, "present": 3, "last_emotion": len(EMOTIONS) + 1}


def _value(name: str, obs: Mapping[str, np.ndarray]) -> float:
    if name == "confidence_gap":
        return float(obs["face"].max() - obs["speech"].max())
    if name == "w_face":
        return float(obs["weights"][0])
    if name == "fused_confidence":
        return float(obs["fused"].max())
    if name in ("engagement", "response_time"):
        return float(obs[name][0])
    raise KeyError(name)


def _category(name: str, obs: Mapping[str, np.ndarray]) -> int:
    if name == "explicit":
        return int(obs["explicit"])
    if name == "present":
        face, speech = int(obs["present"][0]), int(obs["present"][1])
        return 0 if face and speech else 1 if face else 2
    if name == "last_emotion":
        return int(obs["history"][0])
    raise KeyError(name)


class Discretizer:
    """Maps a Dict observation to one integer: the mixed-radix product of binned features.

    Args:
        features: feature names, in the order of the state's digits (see the module docstring).
        bins: bin edges per continuous feature, overriding :data:`DEFAULT_BINS` (increasing).

    ``decode(state)`` gives each feature's bin back (for reading a Q-table); ``signature`` is a
    JSON-able description of the state space (saved with Q-tables, checked on load).
    """

    def __init__(
        self, features: Sequence[str] = DEFAULT_FEATURES, bins: Mapping[str, Sequence[float]] | None = None
    ) -> None:
        edges = dict(DEFAULT_BINS)
        for name, value in (bins or {}).items():
            if name not in DEFAULT_BINS:
                raise ValueError(
                    f"bins: {name!r} is not a binned feature; binned features: {', '.join(DEFAULT_BINS)}"
                )
            value = tuple(float(v) for v in value)
            if not value or any(b <= a for a, b in itertools.pairwise(value)):
                raise ValueError(f"bins[{name!r}] = {list(value)}: expected increasing bin edges")
            edges[name] = value
        known = set(DEFAULT_BINS) | set(_CATEGORICAL)
        features = tuple(features)
        if not features or any(f not in known for f in features) or len(set(features)) != len(features):
            raise ValueError(
                f"features = {list(features)}: expected distinct names from {', '.join(sorted(known))}"
            )
        self.features = features
        self.edges = {f: np.asarray(edges[f]) for f in features if f in DEFAULT_BINS}
        self.sizes = tuple(
            _CATEGORICAL[f] if f in _CATEGORICAL else len(self.edges[f]) + 1 for f in features
        )
        self.n_states = int(np.prod(self.sizes))

    @property
    def signature(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "bins": {f: self.edges[f].tolist() for f in self.features if f in self.edges},
            "n_states": self.n_states,
        }

    def digits(self, obs: Mapping[str, np.ndarray]) -> tuple[int, ...]:
        """Each feature's bin for a Dict observation."""
        out = []
        for f in self.features:
            if f in _CATEGORICAL:
                out.append(_category(f, obs))
            else:
                out.append(int(np.searchsorted(self.edges[f], _value(f, obs), side="right")))
        return tuple(out)

    def state(self, obs: Mapping[str, np.ndarray]) -> int:
        state = 0
        for digit, size in zip(self.digits(obs), self.sizes, strict=True):
            state = state * size + digit
        return state

    def states(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """:meth:`state` for a batched observation (leading user axis, as the vector env gives)."""
        state = np.zeros(len(obs["weights"]), np.int64)
        for f, size in zip(self.features, self.sizes, strict=True):
            if f == "explicit":
                digit = np.asarray(obs["explicit"], np.int64)
            elif f == "present":
                p = np.asarray(obs["present"])
                digit = np.where(p[:, 0] & p[:, 1], 0, np.where(p[:, 0], 1, 2))
            elif f == "last_emotion":
                digit = np.asarray(obs["history"])[:, 0].astype(np.int64)
            else:
                if f == "confidence_gap":
                    v = obs["face"].max(axis=1) - obs["speech"].max(axis=1)
                elif f == "w_face":
                    v = obs["weights"][:, 0]
                elif f == "fused_confidence":
                    v = obs["fused"].max(axis=1)
                else:
                    v = obs[f][:, 0]
                digit = np.searchsorted(self.edges[f], v.astype(np.float64), side="right")
            state = state * size + digit
        return state

    def decode(self, state: int) -> dict[str, int]:
        """Feature name → bin index of a state (the inverse of :meth:`state`)."""
        if not 0 <= state < self.n_states:
            raise ValueError(f"state = {state!r}: expected 0..{self.n_states - 1}")
        out: dict[str, int] = {}
        for f, size in zip(reversed(self.features), reversed(self.sizes), strict=True):
            state, out[f] = divmod(state, size)
        return {f: out[f] for f in self.features}


class DiscretizeObservation(gym.ObservationWrapper):
    """The observation as one integer state of a :class:`Discretizer` (same arguments)."""

    def __init__(
        self,
        env: gym.Env,
        features: Sequence[str] = DEFAULT_FEATURES,
        bins: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        super().__init__(env)
        self.discretizer = Discretizer(features, bins)
        self.features = self.discretizer.features
        self.sizes = self.discretizer.sizes
        self.observation_space = spaces.Discrete(self.discretizer.n_states)

    def observation(self, observation: Mapping[str, np.ndarray]) -> int:
        return self.discretizer.state(observation)

    def decode(self, state: int) -> dict[str, int]:
        return self.discretizer.decode(state)


def flatten_for_sb3(env: gym.Env) -> gym.Env:
    """The Dict observation flattened into one Box (one-hot for the discrete parts), as SB3's
    MLP policies take it: Gymnasium's ``FlattenObservation``."""
    return FlattenObservation(env)


def make_env(env_id: str = "mer_gym/Personalization-v0", *, wrapper: str | None = None, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with ``wrapper`` ``"discrete"`` (tabular), ``"flat"``
    (SB3) or None."""
    env = gym.make(env_id, **kwargs)
    if wrapper is None:
        return env
    if wrapper == "discrete":
        return DiscretizeObservation(env)
    if wrapper == "flat":
        return flatten_for_sb3(env)
    raise ValueError(f"wrapper = {wrapper!r}: expected None, 'discrete' or 'flat'")
