"""Contextual bandits over the weight levels: LinUCB and linear Thompson sampling.

Each arm is a weight level ``w_face = a * delta_w`` (``actions="levels"``); the reward is the env's
reward (by default +1 for a confirmation, -1 for a correction, plus at most ±0.1 from the implicit
cues). Both policies model each arm's expected reward as linear in a context vector ``x`` of
:data:`FEATURES` (d = 13) read from the observation:

========================  ===========================================================
``bias``                  1
``face_max``              the face model's top probability
``speech_max``            the speech model's top probability
``max_gap``               ``face_max - speech_max``
``face_entropy``          entropy of the face softmax / log 6 (1: uniform)
``speech_entropy``        entropy of the speech softmax / log 6
``face_present``          1 if the face was captured
``speech_present``        1 if the speech was captured
``explicit_none``         one-hot of the explicit feedback that arrived on the last step:
``explicit_confirmation``   none, a confirmation, a correction
``explicit_correction``
``engagement``            the last engagement cue (in [0, 1])
``response_time``         the last response time / the env's maximum (in [0, 1])
========================  ===========================================================

Arms are disjoint (one ridge regression per arm): ``A_a = ridge * I + sum x x^T`` and
``b_a = sum r x`` over the interactions at which arm ``a`` was played; the policy keeps ``A_a^-1``,
updated by Sherman-Morrison (``A^-1 - A^-1 x x^T A^-1 / (1 + x^T A^-1 x)``), so an update costs
O(d^2) and never inverts a matrix.

* :class:`LinUCB` (``linucb``, Li et al. 2010) plays
  ``argmax_a theta_a^T x + alpha * sqrt(x^T A_a^-1 x)`` with ``theta_a = A_a^-1 b_a``.
* :class:`LinearThompson` (``thompson``, Agrawal & Goyal 2013) samples
  ``theta_a ~ N(theta_a, v^2 A_a^-1)`` (the posterior of a Bayesian linear regression with prior
  ``N(0, v^2 I / ridge)``) and plays ``argmax_a theta_a^T x``. Only ``theta_a^T x`` matters, and
  for a fixed x it is normal with mean ``theta_a^T x`` and variance ``v^2 x^T A_a^-1 x``, so the
  policy draws that scalar (one normal per arm) rather than the d-vector: the same distribution of
  actions at O(d^2) per arm instead of a Cholesky factorization.

``deterministic=True`` plays the greedy arm ``argmax theta_a^T x`` (no exploration). Ties go to the
level nearest equal weights, so a new user starts at ``w_face = 0.5``.

The models are per user: :meth:`reset_user` starts a fresh model (``A^-1 = I / ridge``, ``b = 0``)
for a new user and resumes a seen user's. :meth:`save` writes ``A^-1`` and ``b`` of every user;
loading refuses a state made with other features, another number of arms or another ridge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.base import PolicyError, check_positive, policy
from agents.fixed import LevelPolicy, n_levels
from agents.online import check_seed
from mer_gym.envs.personalization import FEEDBACK_CONFIRMATION, FEEDBACK_CORRECTION, FEEDBACK_NONE

FEATURES: tuple[str, ...] = (
    "bias",
    "face_max",
    "speech_max",
    "max_gap",
    "face_entropy",
    "speech_entropy",
    "face_present",
    "speech_present",
    "explicit_none",
    "explicit_confirmation",
    "explicit_correction",
    "engagement",
    "response_time",
)
"""The context features, in the order of :func:`features`."""


def _entropy(probs: np.ndarray) -> float:
    p = np.clip(probs, 1e-12, 1.0)
    return float(-(p * np.log(p)).sum() / math.log(len(p)))


def features(obs: Mapping[str, Any]) -> np.ndarray:
    """The context vector x (:data:`FEATURES`, float64) of one observation."""
    face = np.asarray(obs["face"], np.float64)
    speech = np.asarray(obs["speech"], np.float64)
    present = np.asarray(obs["present"]).reshape(-1)
    explicit = int(np.asarray(obs["explicit"]).reshape(-1)[0])
    face_max, speech_max = float(face.max()), float(speech.max())
    return np.array(
        [
            1.0,
            face_max,
            speech_max,
            face_max - speech_max,
            _entropy(face),
            _entropy(speech),
            float(present[0]),
            float(present[1]),
            float(explicit == FEEDBACK_NONE),
            float(explicit == FEEDBACK_CONFIRMATION),
            float(explicit == FEEDBACK_CORRECTION),
            float(np.asarray(obs["engagement"]).reshape(-1)[0]),
            float(np.asarray(obs["response_time"]).reshape(-1)[0]),
        ]
    )


def sherman_morrison(a_inv: np.ndarray, x: np.ndarray) -> None:
    """``(A + x x^T)^-1`` from ``A^-1`` in place (``A`` symmetric positive definite)."""
    ax = a_inv @ x
    a_inv -= np.outer(ax, ax) / (1.0 + x @ ax)
    a_inv += a_inv.T  # keep it exactly symmetric despite round-off
    a_inv *= 0.5


@dataclass(frozen=True)
class LinUCBConfig:
    """Attributes:
    alpha: width of the confidence bonus (exploration; 0 plays greedily).
    ridge: the ridge lambda: each arm starts from ``A = ridge * I``.
    delta_w: spacing of the env's weight levels (the arms).
    seed: seed of the policy's generator (LinUCB itself draws nothing; kept for the protocol).
    """

    alpha: float = 1.0
    ridge: float = 1.0
    delta_w: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("alpha", self.alpha, allow_zero=True)
        check_positive("ridge", self.ridge)
        check_positive("delta_w", self.delta_w)
        n_levels(self.delta_w)
        check_seed(self.seed)


@dataclass(frozen=True)
class ThompsonConfig:
    """Attributes:
    v: scale of the posterior (prior ``N(0, v^2 I / ridge)``); larger explores more.
    ridge: the ridge lambda: each arm starts from ``A = ridge * I``.
    delta_w: spacing of the env's weight levels (the arms).
    seed: seed of the sampling generator (reseeded per user from (seed, user)).
    """

    v: float = 0.5
    ridge: float = 1.0
    delta_w: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("v", self.v)
        check_positive("ridge", self.ridge)
        check_positive("delta_w", self.delta_w)
        n_levels(self.delta_w)
        check_seed(self.seed)


class LinearBandit(LevelPolicy):
    """Per-user disjoint linear models over the weight levels (see the module docstring); a
    subclass scores the arms in :meth:`scores`.

    Attributes:
        a_inv: per user, ``A_a^-1`` of every arm (n_arms, d, d).
        b: per user, ``b_a`` of every arm (n_arms, d).
        counts: per user, how often each arm was played and learned from (n_arms,).
    """

    name: ClassVar[str] = "linear-bandit"

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.n_arms = n_levels(self.config.delta_w) + 1
        self.d = len(FEATURES)
        self._middle = np.abs(np.linspace(0.0, 1.0, self.n_arms) - 0.5)
        self.a_inv: dict[str, np.ndarray] = {}
        self.b: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}

    def reset_user(self, user_id: str, env: Any = None) -> None:
        super().reset_user(user_id, env)
        if env is not None and getattr(env, "action_space", None) is not None:
            if getattr(env, "actions", "levels") != "levels":
                raise PolicyError(
                    f"{self.name} sets weight levels: build the env with actions='levels' (env_for)"
                )
            if env.action_space.n != self.n_arms:
                raise PolicyError(
                    f"{self.name}: delta_w = {self.config.delta_w} gives {self.n_arms} arms but the env has "
                    f"{env.action_space.n} actions: build the policy with the env's delta_w"
                )
        if user_id not in self.a_inv:
            self.a_inv[user_id] = np.repeat(
                np.eye(self.d)[None] / self.config.ridge, self.n_arms, axis=0
            )
            self.b[user_id] = np.zeros((self.n_arms, self.d))
            self.counts[user_id] = np.zeros(self.n_arms, np.int64)

    def _user(self) -> str:
        if self.user_id is None:  # SB3's evaluate_policy calls predict without reset_user
            self.reset_user("default")
        return self.user_id

    def theta(self, user_id: str | None = None) -> np.ndarray:
        """The ridge estimate ``A_a^-1 b_a`` of every arm (n_arms, d)."""
        user = user_id or self._user()
        return np.einsum("kij,kj->ki", self.a_inv[user], self.b[user])

    def variances(self, x: np.ndarray, user_id: str | None = None) -> np.ndarray:
        """``x^T A_a^-1 x`` for every arm."""
        user = user_id or self._user()
        return np.maximum(np.einsum("i,kij,j->k", x, self.a_inv[user], x), 0.0)

    def scores(self, x: np.ndarray, deterministic: bool) -> np.ndarray:
        raise NotImplementedError

    def choose(self, scores: np.ndarray) -> int:
        """The best arm; ties go to the level nearest equal weights (then the lower one)."""
        best = np.flatnonzero(scores >= scores.max() - 1e-12 * max(1.0, abs(scores.max())))
        return int(best[np.argmin(self._middle[best])])

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        self._user()
        return self.choose(self.scores(features(obs), deterministic))

    def learn(self, obs, action, reward, next_obs, terminated, truncated, info) -> None:
        user = self._user()
        a = int(action)
        if not 0 <= a < self.n_arms:
            raise PolicyError(
                f"{self.name}: action {action!r} is not an arm (expected 0..{self.n_arms - 1})"
            )
        x = features(obs)
        sherman_morrison(self.a_inv[user][a], x)
        self.b[user][a] += float(reward) * x
        self.counts[user][a] += 1

    # ---- persistence ----------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "n_features": self.d,
            "n_arms": self.n_arms,
            "ridge": self.config.ridge,
            "users": list(self.a_inv),
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for i, user in enumerate(self.a_inv):
            arrays[f"A_inv_{i}"] = self.a_inv[user]
            arrays[f"b_{i}"] = self.b[user]
            arrays[f"counts_{i}"] = self.counts[user]
        return arrays

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        saved = (
            meta.get("features"),
            meta.get("n_features"),
            meta.get("n_arms"),
            meta.get("ridge"),
        )
        mine = (list(FEATURES), self.d, self.n_arms, self.config.ridge)
        if saved != mine:
            raise PolicyError(
                f"the saved {self.name} state has {saved[1]} features and {saved[2]} arms with ridge {saved[3]} "
                f"(features {saved[0]}), but this policy has {self.d} features ({', '.join(FEATURES)}) and "
                f"{self.n_arms} arms (delta_w = {self.config.delta_w}) with ridge {self.config.ridge}: load it with "
                "the configuration it was saved with"
            )
        a_inv, b, counts = {}, {}, {}
        for i, user in enumerate(meta.get("users", [])):
            try:
                a_inv[user] = np.array(arrays[f"A_inv_{i}"], np.float64)
                b[user] = np.array(arrays[f"b_{i}"], np.float64)
                counts[user] = np.array(arrays[f"counts_{i}"], np.int64)
            except KeyError as exc:
                raise PolicyError(
                    f"the saved {self.name} state lacks array {exc.args[0]!r} (user {user!r})"
                ) from None
            if a_inv[user].shape != (self.n_arms, self.d, self.d) or b[user].shape != (
                self.n_arms,
                self.d,
            ):
                raise PolicyError(
                    f"saved arrays of user {user!r} have shapes {a_inv[user].shape} and {b[user].shape}, expected "
                    f"{(self.n_arms, self.d, self.d)} and {(self.n_arms, self.d)}"
                )
        self.a_inv, self.b, self.counts = a_inv, b, counts


@policy("linucb")
class LinUCB(LinearBandit):
    """Disjoint LinUCB: ``argmax theta_a^T x + alpha * sqrt(x^T A_a^-1 x)``."""

    name = "linucb"
    Config = LinUCBConfig

    def scores(self, x: np.ndarray, deterministic: bool) -> np.ndarray:
        mean = self.theta() @ x
        if deterministic or self.config.alpha == 0:
            return mean
        return mean + self.config.alpha * np.sqrt(self.variances(x))


@policy("thompson")
class LinearThompson(LinearBandit):
    """Linear Thompson sampling: ``argmax theta~_a^T x`` with ``theta~_a ~ N(theta_a, v^2 A_a^-1)``."""

    name = "thompson"
    Config = ThompsonConfig

    def scores(self, x: np.ndarray, deterministic: bool) -> np.ndarray:
        mean = self.theta() @ x
        if deterministic:
            return mean
        return mean + self.config.v * np.sqrt(self.variances(x)) * self.rng.standard_normal(
            self.n_arms
        )
