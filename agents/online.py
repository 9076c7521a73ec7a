"""Exponential weights (Hedge) over the two modalities or over the weight levels, learned from the
user's explicit answers only.

Hedge keeps, per user, the cumulative loss ``L_k`` of each expert ``k`` and weighs the experts by
``p_k ∝ exp(-eta * L_k)``. An expert's loss on one explicit answer (an item of
``info["explicit_feedback"]``: the interaction ``step`` it concerns and the user's ``answer``) is 1 if
the expert's prediction for that interaction differs from the answer, else 0. The prediction is
computed from the softmaxes the policy observed when it acted on that interaction: the policy keeps
them by step (``info["step"]`` of each transition), because a diary user's answers arrive at the
end of the day, several interactions later. Only answers come in; the truth (``info["label"]``)
is never read.

* ``over="modalities"`` (``hedge-modalities``): two experts, the face model and the speech model,
  each predicting the argmax of its own softmax. The policy sets ``w_face = p_face`` (the Hedge
  weight of the face expert), quantized to the nearest weight level.
* ``over="levels"`` (``hedge-levels``): one expert per weight level ``l_j = j * delta_w``, predicting
  ``argmax(l_j * P_face + (1 - l_j) * P_speech)``. This late fusion of the observed softmaxes is a
  proxy: the env fuses the embeddings (``fusion="feature"``), which a policy cannot compute. The
  policy samples a level from the Hedge distribution (its most probable level when
  ``deterministic=True``; ties go to the level nearest equal weights).

An answer about an interaction at which a modality was absent is skipped: the weight did not
matter there (the policy then gives the present modality the whole weight, as
:class:`~agents.fixed.ConfidenceWeighting` does), and an absent modality's uniform softmax makes no
prediction to score.

The learning rate defaults to ``eta = sqrt(8 ln K / T)`` with ``T = horizon`` = 300 answers (the
rate that minimizes Hedge's regret bound ``sqrt(T ln K / 2)`` over T rounds with losses in [0, 1]):
0.136 over the modalities (K = 2) and 0.277 over the 11 levels of ``delta_w = 0.1``. The losses
never decay, so Hedge settles on the expert that has been best so far; it suits users whose
capture conditions stay put.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import PolicyError, check_positive, policy
from agents.fixed import LevelPolicy, n_levels
from mer_gym.config import ConfigError
from mer_gym.labels import EMOTIONS

OVER = ("modalities", "levels")


def check_seed(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"seed = {value!r}: expected an integer >= 0")


@dataclass(frozen=True)
class HedgeConfig:
    """Attributes:
    over: the experts: ``"modalities"`` (face and speech) or ``"levels"`` (the weight levels).
    eta: learning rate (None: ``sqrt(8 ln K / horizon)`` for K experts).
    horizon: number of explicit answers T the default learning rate is tuned for.
    delta_w: spacing of the env's weight levels.
    seed: seed of the generator that samples levels (``over="levels"``; reseeded per user).
    """

    over: str = "modalities"
    eta: float | None = None
    horizon: int = 300
    delta_w: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.over not in OVER:
            raise ConfigError(f"over = {self.over!r}: expected one of {', '.join(map(repr, OVER))}")
        if self.eta is not None:
            check_positive("eta", self.eta)
        if not isinstance(self.horizon, int) or isinstance(self.horizon, bool) or self.horizon < 1:
            raise ConfigError(f"horizon = {self.horizon!r}: expected an integer >= 1")
        check_positive("delta_w", self.delta_w)
        n_levels(self.delta_w)
        check_seed(self.seed)


@policy("hedge-modalities", over="modalities")
@policy("hedge-levels", over="levels")
class Hedge(LevelPolicy):
    """Exponential weights from explicit feedback (see the module docstring).

    Attributes:
        losses: per user, the cumulative loss of each expert (K,).
        counts: per user, the number of explicit answers learned from.
        memory: per user, step -> (face softmax, speech softmax, present flags) of the interactions
            acted on whose answer has not arrived yet (overwritten by the next pilot's same step).
    """

    name = "hedge"
    Config = HedgeConfig

    def __init__(self, config: HedgeConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.levels = np.round(np.linspace(0.0, 1.0, n_levels(self.config.delta_w) + 1), 12)
        self.losses: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}
        self.memory: dict[str, dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    @property
    def n_experts(self) -> int:
        return 2 if self.config.over == "modalities" else len(self.levels)

    @property
    def eta(self) -> float:
        """The learning rate in use."""
        if self.config.eta is not None:
            return float(self.config.eta)
        return math.sqrt(8.0 * math.log(self.n_experts) / self.config.horizon)

    def reset_user(self, user_id: str, env: Any = None) -> None:
        super().reset_user(user_id, env)
        if (
            env is not None
            and getattr(env, "levels", None) is not None
            and len(env.levels) != len(self.levels)
        ):
            raise PolicyError(
                f"{self.name}: delta_w = {self.config.delta_w} gives {len(self.levels)} weight levels but the env has "
                f"{len(env.levels)}: build the policy with the env's delta_w"
            )
        if user_id not in self.losses:
            self.losses[user_id] = np.zeros(self.n_experts)
            self.counts[user_id] = 0
            self.memory[user_id] = {}

    def _user(self) -> str:
        if self.user_id is None:  # SB3's evaluate_policy calls predict without reset_user
            self.reset_user("default")
        return self.user_id

    def probabilities(self, user_id: str | None = None) -> np.ndarray:
        """The Hedge distribution over the experts, ``exp(-eta L) / sum exp(-eta L)``."""
        losses = self.losses[user_id or self._user()]
        p = np.exp(-self.eta * (losses - losses.min()))
        return p / p.sum()

    def expert_losses(self, face: np.ndarray, speech: np.ndarray, answer: int) -> np.ndarray:
        """Each expert's 0/1 loss on one answer (a class index) for the given softmaxes."""
        face = np.asarray(face, np.float64)
        speech = np.asarray(speech, np.float64)
        if self.config.over == "modalities":
            predictions = np.array([face.argmax(), speech.argmax()])
        else:
            fused = (
                self.levels[:, None] * face[None, :]
                + (1.0 - self.levels[:, None]) * speech[None, :]
            )
            predictions = fused.argmax(axis=1)
        return (predictions != answer).astype(np.float64)

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        user = self._user()
        face, speech = bool(obs["present"][0]), bool(obs["present"][1])
        if face != speech:
            return self.level(1.0 if face else 0.0)
        p = self.probabilities(user)
        if self.config.over == "modalities":
            return self.level(float(p[0]))
        if not deterministic:
            return int(self.rng.choice(len(p), p=p))
        best = np.flatnonzero(p >= p.max() * (1.0 - 1e-12))
        return int(best[np.argmin(np.abs(self.levels[best] - 0.5))])

    def learn(self, obs, action, reward, next_obs, terminated, truncated, info) -> None:
        user = self._user()
        memory = self.memory[user]
        step = info.get("step")
        if step is not None:
            memory[int(step)] = (
                np.array(obs["face"], np.float32),
                np.array(obs["speech"], np.float32),
                np.array(obs["present"], bool),
            )
        for item in info.get("explicit_feedback", ()):
            entry = memory.pop(int(item["step"]), None)
            if entry is None:  # an interaction this policy did not act on (or one learned already)
                continue
            face, speech, present = entry
            if not present.all():
                continue
            try:
                answer = EMOTIONS.index(item["answer"])
            except ValueError:
                raise PolicyError(
                    f"{self.name}: explicit feedback answer {item['answer']!r} is not an emotion of {EMOTIONS}"
                ) from None
            self.losses[user] += self.expert_losses(face, speech, answer)
            self.counts[user] += 1

    # ---- persistence ----------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "over": self.config.over,
            "n_experts": self.n_experts,
            "users": list(self.losses),
            "counts": dict(self.counts),
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for i, user in enumerate(self.losses):
            memory = self.memory[user]
            steps = sorted(memory)
            arrays[f"losses_{i}"] = self.losses[user]
            arrays[f"steps_{i}"] = np.array(steps, np.int64)
            arrays[f"probs_{i}"] = np.array(
                [np.stack(memory[s][:2]) for s in steps], np.float32
            ).reshape(len(steps), 2, len(EMOTIONS))
            arrays[f"present_{i}"] = np.array([memory[s][2] for s in steps], bool).reshape(
                len(steps), 2
            )
        return arrays

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        if meta.get("over") != self.config.over or meta.get("n_experts") != self.n_experts:
            raise PolicyError(
                f"the saved Hedge state is over {meta.get('over')!r} with {meta.get('n_experts')} experts, not "
                f"{self.config.over!r} with {self.n_experts}: load it with the same 'over' and delta_w"
            )
        users = list(meta.get("users", []))
        losses, counts, memory = {}, {}, {}
        for i, user in enumerate(users):
            try:
                loss = np.array(arrays[f"losses_{i}"], np.float64)
                steps, probs, present = (arrays[f"{k}_{i}"] for k in ("steps", "probs", "present"))
            except KeyError as exc:
                raise PolicyError(
                    f"the saved Hedge state lacks array {exc.args[0]!r} (user {user!r})"
                ) from None
            if loss.shape != (self.n_experts,):
                raise PolicyError(
                    f"saved losses of user {user!r} have shape {loss.shape}, expected ({self.n_experts},)"
                )
            losses[user] = loss
            counts[user] = int(meta.get("counts", {}).get(user, 0))
            memory[user] = {
                int(s): (np.array(p[0]), np.array(p[1]), np.array(f, bool))
                for s, p, f in zip(steps, probs, present, strict=True)
            }
        self.losses, self.counts, self.memory = losses, counts, memory
