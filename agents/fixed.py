"""Policies that do not learn: fixed fusion weights, per-sample confidence weighting, random.

All of them speak ``actions="levels"`` (they set the face weight directly), with levels every
``delta_w`` (0.1 by default, as the env's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from agents.base import Policy, check_positive, policy
from mer_gym.config import ConfigError, check_probability
from mer_gym.envs.personalization import weight_levels


def n_levels(delta_w: float) -> int:
    """The index of the top level, ``1 / delta_w`` (levels are ``0 .. n_levels``, as the env's)."""
    try:
        return len(weight_levels(delta_w)) - 1
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class LevelPolicy(Policy):
    """A policy over the weight levels ``0, delta_w, ..., 1`` (``actions="levels"``)."""

    actions = "levels"

    def level(self, w_face: float) -> int:
        """The action that sets the weight nearest to ``w_face``."""
        n = n_levels(self.config.delta_w)
        return int(min(n, max(0, math.floor(w_face * n + 0.5))))  # halves round up, not to even


@dataclass(frozen=True)
class FixedConfig:
    """Attributes:
    w_face: the fixed face weight (0.5: equal weights, the reference every gain is measured
        against; 1: face only; 0: speech only).
    delta_w: spacing of the env's weight levels.
    """

    w_face: float = 0.5
    delta_w: float = 0.1

    def __post_init__(self) -> None:
        check_probability("w_face", self.w_face)
        check_positive("delta_w", self.delta_w)
        n_levels(self.delta_w)


@policy("fixed")
@policy("equal-weights", w_face=0.5)
@policy("face-only", w_face=1.0)
@policy("speech-only", w_face=0.0)
class FixedWeight(LevelPolicy):
    """Always the same face weight."""

    name = "fixed"
    Config = FixedConfig

    @property
    def w_face0(self) -> float:
        return self.config.w_face

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        return self.level(self.config.w_face)


@dataclass(frozen=True)
class ConfidenceConfig:
    """Attributes:
    measure: ``"max"`` (each model's top probability) or ``"entropy"`` (1 minus its normalized
        entropy).
    delta_w: spacing of the env's weight levels.
    """

    measure: str = "max"
    delta_w: float = 0.1

    def __post_init__(self) -> None:
        if self.measure not in ("max", "entropy"):
            raise ConfigError(f"measure = {self.measure!r}: expected 'max' or 'entropy'")
        check_positive("delta_w", self.delta_w)
        n_levels(self.delta_w)


def confidence(probs: np.ndarray, measure: str) -> float:
    """How sure one model is: its top probability, or 1 - entropy / log(6)."""
    p = np.asarray(probs, dtype=np.float64)
    if measure == "max":
        return float(p.max())
    p = np.clip(p, 1e-12, 1.0)
    return float(1.0 + (p * np.log(p)).sum() / math.log(len(p)))


@policy("confidence")
@policy("confidence-entropy", measure="entropy")
class ConfidenceWeighting(LevelPolicy):
    """Weight each modality by its own confidence on the current sample (no learning):
    ``w_face = c_face / (c_face + c_speech)``; an absent modality gets weight 0."""

    name = "confidence"
    Config = ConfidenceConfig

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        face, speech = bool(obs["present"][0]), bool(obs["present"][1])
        if not speech:
            return self.level(1.0)
        if not face:
            return self.level(0.0)
        cf = confidence(obs["face"], self.config.measure)
        cs = confidence(obs["speech"], self.config.measure)
        return self.level(cf / (cf + cs) if cf + cs > 0 else 0.5)


@dataclass(frozen=True)
class RandomConfig:
    """Attributes:
    seed: seed of the policy's generator.
    delta_w: spacing of the env's weight levels.
    """

    seed: int = 0
    delta_w: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed = {self.seed!r}: expected an integer >= 0")
        check_positive("delta_w", self.delta_w)
        n_levels(self.delta_w)


@policy("random")
class RandomWeight(LevelPolicy):
    """A uniformly random weight level at every interaction (the lower bound)."""

    name = "random"
    Config = RandomConfig

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        return int(self.rng.integers(n_levels(self.config.delta_w) + 1))
