"""Rewards: functions of what the user fed back, injected into the environment.

The environment turns the user's response into a :class:`RewardSignal` and calls the reward
function on it. Ground truth enters only through ``RewardSignal.correct``, which the env fills in
only for ``reward="oracle"``; every other reward sees what a deployed system would see.

A reward function is any callable ``f(signal) -> float``; for the vector env it is called with a
:class:`RewardSignal` whose fields are arrays (one entry per user), so write it with numpy
operations (as the two below are).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class RewardSignal(NamedTuple):
    """What the user fed back on this step (scalars in the single env, arrays in the vector env).

    Attributes:
        confirmations: explicit confirmations arriving on this step (diary feedback may bring
            several at once).
        corrections: explicit corrections arriving on this step.
        response_time_z: the response time to this step's prediction, standardized against the
            user's own earlier response times (log scale; 0 until three are known).
        engagement_z: the engagement cue, standardized likewise.
        correct: whether this step's prediction was right: filled in only for ``reward="oracle"``
            (None otherwise).
    """

    confirmations: Any
    corrections: Any
    response_time_z: Any
    engagement_z: Any
    correct: Any = None


@dataclass(frozen=True)
class FeedbackReward:
    """The default: ``explicit · (confirmations − corrections)`` plus, from the implicit cues,
    ``implicit · clip((engagement_z − response_time_z) / 2, −1, 1)`` (a fast, engaged answer is
    good news; a slow, disengaged one bad news)."""

    explicit: float = 1.0
    implicit: float = 0.1

    def __post_init__(self) -> None:
        for name in ("explicit", "implicit"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"FeedbackReward.{name} = {value!r}: expected a finite number >= 0")

    def __call__(self, s: RewardSignal) -> Any:
        cue = (s.engagement_z - s.response_time_z) / 2.0
        if isinstance(cue, float):  # the single env: plain floats are faster than numpy scalars
            cue = min(1.0, max(-1.0, cue))
        else:
            cue = np.clip(cue, -1.0, 1.0)
        return self.explicit * (s.confirmations - s.corrections) + self.implicit * cue


@dataclass(frozen=True)
class OracleReward:
    """+1 for a right prediction, −1 for a wrong one (uses ground truth: for upper bounds only)."""

    def __call__(self, s: RewardSignal) -> Any:
        return np.where(s.correct, 1.0, -1.0) if np.ndim(s.correct) else (1.0 if s.correct else -1.0)


REWARDS: dict[str, Callable[[], Callable[[RewardSignal], Any]]] = {
    "feedback": FeedbackReward,
    "oracle": OracleReward,
}


def make_reward(reward: str | Callable[[RewardSignal], Any]) -> tuple[Callable[[RewardSignal], Any], bool]:
    """(reward function, whether it needs ground truth) for a name or a callable."""
    if callable(reward):
        return reward, bool(getattr(reward, "needs_truth", False))
    if reward not in REWARDS:
        raise ValueError(
            f"reward = {reward!r}: expected one of {', '.join(REWARDS)} or a callable f(RewardSignal) -> float"
        )
    return REWARDS[reward](), reward == "oracle"


class RunningZ:
    """Standardize a cue against the user's own earlier values (Welford; 0 until 3 are known)."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def __call__(self, x: float) -> float:
        z = 0.0
        if self.n >= 3:
            sd = math.sqrt(self.m2 / (self.n - 1))
            z = (x - self.mean) / sd if sd > 0 else 0.0
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)
        return z
