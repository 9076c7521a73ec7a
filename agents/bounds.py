"""Bounds that read the ground truth (``uses_truth = True``): what no feedback-driven policy can beat.

* :class:`HindsightBest` (``hindsight-best``): the best *fixed* face weight for the user in
  hindsight. When a user starts, it fuses the user's whole stream at every weight level and keeps
  the level whose predictions have the highest macro-F1 against the true labels of the stream
  about to be played (scikit-learn's ``f1_score(..., labels=<all 6 emotions>, average="macro",
  zero_division=0)``: an emotion never felt nor predicted counts as F1 0, as in
  :func:`simulators.users.describe.weight_curve`, so both pick the same weight); ties go to the
  level closest to 0.5 (then to the lower weight). It then plays that level at every step. Since
  0.5 is a level, its macro-F1 is never below equal weights' on the same stream.
* :class:`PerSampleOracle` (``oracle``): at every step, a level whose fused prediction is right,
  if one exists: the current weight if it is right, else the right level closest to the current
  weight (ties: the lower weight); if no level is right, it keeps the current weight (the level
  nearest to it). Its accuracy is the ceiling of any choice of weights.

The ``random`` lower bound is :class:`agents.fixed.RandomWeight`.

Both speak ``actions="levels"`` and need the env in :meth:`reset_user`, called by
:func:`agents.runner.play` *after* ``env.reset``, so that ``env.stream`` is the stream to be
played; they check it at every step (a policy reset before the env raises :class:`PolicyError`).
Both read the env's fused softmax tables (``env.fused_table(w)``), one (T, 6) table per
weight level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agents.base import PolicyError, check_positive, policy
from agents.fixed import LevelPolicy, n_levels
from mer_gym.envs.personalization import weight_levels
from mer_gym.labels import EMOTIONS
from simulators.users.describe import best_fixed_weight

_CLASSES = list(range(len(EMOTIONS)))


@dataclass(frozen=True)
class BoundConfig:
    """Attributes:
    delta_w: spacing of the env's weight levels (must match the env's ``delta_w``).
    """

    delta_w: float = 0.1

    def __post_init__(self) -> None:
        check_positive("delta_w", self.delta_w)
        n_levels(self.delta_w)


class _TruthBound(LevelPolicy):
    """Shared part: the env, its levels, and every level's predictions over the stream."""

    uses_truth = True
    Config = BoundConfig

    def __init__(self, config: BoundConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._env: Any = None
        self._stream: Any = None
        self.levels: np.ndarray = weight_levels(self.config.delta_w)
        self.predictions: np.ndarray | None = None  # (levels, T) fused argmax per level

    def reset_user(self, user_id: str, env: Any = None) -> None:
        super().reset_user(user_id, env)
        if env is None:
            raise PolicyError(
                f"policy {self.name!r} reads the user's stream: call reset_user(user_id, env)"
            )
        env = getattr(env, "unwrapped", env)
        stream = env.stream  # raises ResetNeeded before the env's first reset
        if stream.user_id != user_id:
            raise PolicyError(
                f"policy {self.name!r}: reset_user({user_id!r}) but the env plays user {stream.user_id!r}; "
                "call env.reset(...) for that user first, then reset_user (as agents.runner.play does)"
            )
        if env.levels is not None:
            if len(env.levels) != len(self.levels) or not np.allclose(env.levels, self.levels):
                raise PolicyError(
                    f"policy {self.name!r} has delta_w = {self.config.delta_w} but the env's levels are "
                    f"{env.levels.tolist()}: build both with the same delta_w"
                )
        self._env, self._stream = env, stream
        self.predictions = np.stack([self._table(w).argmax(axis=1) for w in self.levels.tolist()])

    def _table(self, w: float) -> np.ndarray:
        """The env's fused softmax table (T, 6) of the current stream at face weight ``w``."""
        return self._env.fused_table(w)  # the env fuses (and caches) the whole stream at w

    def _check_stream(self) -> Any:
        if self._env is None:
            raise PolicyError(
                f"policy {self.name!r}: call reset_user(user_id, env) after env.reset first"
            )
        if self._env.stream is not self._stream:
            raise PolicyError(
                f"policy {self.name!r}: the env was reset to another stream after reset_user; call "
                "reset_user(user_id, env) after env.reset (as agents.runner.play does)"
            )
        return self._env


@policy("hindsight-best")
class HindsightBest(_TruthBound):
    """The best fixed weight for the user in hindsight (macro-F1 over the whole stream)."""

    name = "hindsight-best"

    def __init__(self, config: BoundConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.best_w: float | None = None
        self.scores: np.ndarray | None = None  # macro-F1 of each level on the current stream

    @property
    def w_face0(self) -> float | None:
        """The weight chosen for the user started last (None before any); the runner starts the
        pilot at it once ``reset_user`` has chosen it."""
        return self.best_w

    def reset_user(self, user_id: str, env: Any = None) -> None:
        from sklearn.metrics import f1_score

        super().reset_user(user_id, env)
        labels = np.asarray(self._stream.label)
        self.scores = np.array(
            [
                f1_score(labels, pred, labels=_CLASSES, average="macro", zero_division=0)
                for pred in self.predictions
            ]
        )
        # the tie rule of `mer-gym users`: closest to 0.5, then the lower weight
        self.best_w = best_fixed_weight(pd.DataFrame({"w_face": self.levels, "macro_f1": self.scores}))
        self._best_action = self.level(self.best_w)

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        self._check_stream()
        return self._best_action


@policy("oracle")
class PerSampleOracle(_TruthBound):
    """Per step, a weight level whose prediction is right (the ceiling; see the module docstring)."""

    name = "oracle"

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        env = self._check_stream()
        t = env.t
        if t >= len(self._stream):
            raise PolicyError(f"policy {self.name!r}: the pilot is over (step {t}); reset the env")
        current = int(np.argmin(np.abs(self.levels - env.w_face)))  # the level nearest the weight
        right = np.flatnonzero(self.predictions[:, t] == int(self._stream.label[t]))
        if right.size == 0 or current in right:
            return self.level(float(self.levels[current]))
        best = min(right, key=lambda j: (abs(self.levels[j] - env.w_face), self.levels[j]))
        return self.level(float(self.levels[best]))
