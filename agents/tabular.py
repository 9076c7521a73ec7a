"""The paper's tabular Q-learning personalizer (§5.5, Eq. 3), per user and batched over users.

Eq. 3: ``Q(s, a) <- Q(s, a) + alpha * (r + gamma * max_a' Q(s', a') - Q(s, a))`` with the paper's
alpha = 0.05 and gamma = 0.9, over the states of a :class:`~mer_gym.envs.wrappers.Discretizer`
(135 by default) and the env's increment actions (down, keep, up by Δw).

Exploration is epsilon-greedy with a linear schedule per user: epsilon falls from
``epsilon_start`` (0.3) to ``epsilon_end`` (0.05) over the user's first ``epsilon_decay``
interactions (300, about half of a two-week pilot at six prompts a day), then stays. Ties between
greedy actions go to "keep" (the action whose increment is 0), then to the lowest index.

Q-tables persist per user across days (``reset_user`` resumes a user's table) and are saved
together (:meth:`save`). A new user starts from zeros (``init="zeros"``, cold start) or from a
population table learned on other users (``init="population"``; :meth:`fit_population` averages
the tables of the users seen so far, or :meth:`set_population` takes one), the warm start the
``waves`` study compares with cold start.

Pilots end by truncation (a time limit, not a terminal state), so the update bootstraps on the
last transition too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.base import Policy, PolicyError, check_positive, policy
from mer_gym.config import ConfigError, check_probability
from mer_gym.envs.wrappers import DEFAULT_FEATURES, Discretizer


@dataclass(frozen=True)
class QLearningConfig:
    """Attributes:
    alpha: learning rate (the paper: 0.05).
    gamma: discount (the paper: 0.9).
    epsilon_start, epsilon_end, epsilon_decay: the per-user linear epsilon schedule.
    features, bins: the state (see :mod:`mer_gym.envs.wrappers`).
    n_actions: actions of the env (3: down, keep, up).
    keep_action: the action that keeps the weight (preferred among greedy ties).
    init: ``"zeros"`` (cold start) or ``"population"`` (warm start from a population table).
    update: ``"step"`` (update after every interaction) or ``"batch"`` (buffer ``batch_size``
        transitions, then apply them in order; the paper allows both).
    batch_size: transitions per batch update.
    seed: seed of the exploration generator (reseeded per user from (seed, user)).
    """

    alpha: float = 0.05
    gamma: float = 0.9
    epsilon_start: float = 0.3
    epsilon_end: float = 0.05
    epsilon_decay: int = 300
    features: tuple[str, ...] = DEFAULT_FEATURES
    bins: dict[str, tuple[float, ...]] = field(default_factory=dict)
    n_actions: int = 3
    keep_action: int = 1
    init: str = "zeros"
    update: str = "step"
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("alpha", self.alpha)
        check_probability("alpha", self.alpha)
        check_probability("gamma", self.gamma)
        check_probability("epsilon_start", self.epsilon_start)
        check_probability("epsilon_end", self.epsilon_end)
        for name in ("epsilon_decay", "n_actions", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} = {value!r}: expected an integer >= 1")
        if not 0 <= self.keep_action < self.n_actions:
            raise ConfigError(f"keep_action = {self.keep_action!r}: expected 0..{self.n_actions - 1}")
        if self.init not in ("zeros", "population"):
            raise ConfigError(f"init = {self.init!r}: expected 'zeros' or 'population'")
        if self.update not in ("step", "batch"):
            raise ConfigError(f"update = {self.update!r}: expected 'step' or 'batch'")
        try:
            Discretizer(self.features, self.bins)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def epsilon(self, n: int | np.ndarray) -> float | np.ndarray:
        """Epsilon after ``n`` interactions of a user."""
        frac = np.minimum(np.asarray(n, dtype=np.float64) / self.epsilon_decay, 1.0)
        eps = self.epsilon_start + frac * (self.epsilon_end - self.epsilon_start)
        return float(eps) if np.ndim(eps) == 0 else eps


def q_update(q: np.ndarray, s: int, a: int, r: float, s2: int, alpha: float, gamma: float) -> float:
    """Eq. 3 in place on ``q`` (S, A); returns the TD error."""
    td = r + gamma * float(q[s2].max()) - float(q[s, a])
    q[s, a] += alpha * td
    return td


def greedy(q_row: np.ndarray, keep: int) -> int:
    """The greedy action, preferring ``keep`` among ties, then the lowest index."""
    best = q_row.max()
    if q_row[keep] == best:
        return keep
    return int(np.flatnonzero(q_row == best)[0])


@policy("q-learning")
@policy("q-learning-warm", init="population")
class QLearning(Policy):
    """The paper's tabular Q-learning (see the module docstring)."""

    name = "q-learning"
    Config = QLearningConfig

    def __init__(self, config: QLearningConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.discretizer = Discretizer(self.config.features, self.config.bins)
        self.tables: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}
        self.population: np.ndarray | None = None
        self._buffer: list[tuple[int, int, float, int, bool]] = []

    @property
    def shape(self) -> tuple[int, int]:
        return (self.discretizer.n_states, self.config.n_actions)

    @property
    def q(self) -> np.ndarray:
        """The current user's Q-table."""
        if self.user_id is None:
            raise PolicyError("q-learning: call reset_user(user_id) first")
        return self.tables[self.user_id]

    def reset_user(self, user_id: str, env: Any = None) -> None:
        self._flush()
        super().reset_user(user_id, env)
        if env is not None and getattr(env, "action_space", None) is not None and env.action_space.n != self.config.n_actions:
            raise PolicyError(
                f"q-learning has n_actions = {self.config.n_actions} but the env has {env.action_space.n} actions"
            )
        if user_id not in self.tables:
            if self.config.init == "population":
                if self.population is None:
                    raise PolicyError("q-learning init='population': set or fit a population table first")
                self.tables[user_id] = self.population.copy()
            else:
                self.tables[user_id] = np.zeros(self.shape)
            self.counts[user_id] = 0

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        if self.user_id is None:  # SB3's evaluate_policy calls predict without reset_user
            self.reset_user("default")
        s = self.discretizer.state(obs)
        eps = self.config.epsilon(self.counts[self.user_id])
        if not deterministic and self.rng.random() < eps:
            return int(self.rng.integers(self.config.n_actions))
        return greedy(self.q[s], self.config.keep_action)

    def learn(self, obs, action, reward, next_obs, terminated, truncated, info) -> None:
        s, s2 = self.discretizer.state(obs), self.discretizer.state(next_obs)
        self.counts[self.user_id] += 1
        transition = (s, int(action), float(reward), s2, bool(terminated))
        if self.config.update == "step":
            self._apply([transition])
        else:
            self._buffer.append(transition)
            if len(self._buffer) >= self.config.batch_size:
                self._flush()

    def _apply(self, transitions: Sequence[tuple[int, int, float, int, bool]]) -> None:
        q = self.q
        a_, g = self.config.alpha, self.config.gamma
        for s, a, r, s2, term in transitions:
            q_update(q, s, a, r, s2, a_, 0.0 if term else g)

    def _flush(self) -> None:
        if self._buffer and self.user_id is not None:
            self._apply(self._buffer)
        self._buffer = []

    # ---- population prior ----------------------------------------------------------------

    def set_population(self, table: np.ndarray) -> None:
        table = np.asarray(table, dtype=np.float64)
        if table.shape != self.shape:
            raise PolicyError(f"population table has shape {table.shape}, expected {self.shape} (states, actions)")
        self.population = table.copy()

    def fit_population(self, users: Sequence[str] | None = None) -> np.ndarray:
        """The mean Q-table of ``users`` (default: every user seen), set as the population prior."""
        self._flush()
        users = list(self.tables) if users is None else list(users)
        if not users:
            raise PolicyError("fit_population: no user tables yet")
        self.set_population(np.mean([self.tables[u] for u in users], axis=0))
        return self.population

    # ---- persistence ----------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "state_space": self.discretizer.signature,
            "n_actions": self.config.n_actions,
            "users": list(self.tables),
            "counts": dict(self.counts),
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        self._flush()
        arrays = {f"q_{i}": t for i, t in enumerate(self.tables.values())}
        if self.population is not None:
            arrays["population"] = self.population
        return arrays

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        if meta.get("state_space") != self.discretizer.signature or meta.get("n_actions") != self.config.n_actions:
            raise PolicyError(
                f"the saved Q-tables are for state space {meta.get('state_space')} with {meta.get('n_actions')} "
                f"actions, not {self.discretizer.signature} with {self.config.n_actions}: load them with the "
                "same features, bins and actions"
            )
        users = list(meta.get("users", []))
        missing = [f"q_{i}" for i in range(len(users)) if f"q_{i}" not in arrays]
        if missing:
            raise PolicyError(f"the saved Q-tables lack array(s) {', '.join(missing)} for users {users}")
        self.tables = {u: np.array(arrays[f"q_{i}"], dtype=np.float64) for i, u in enumerate(users)}
        for u, t in self.tables.items():
            if t.shape != self.shape:
                raise PolicyError(f"saved Q-table of user {u!r} has shape {t.shape}, expected {self.shape}")
        self.counts = {u: int(meta.get("counts", {}).get(u, 0)) for u in users}
        self.population = np.array(arrays["population"]) if "population" in arrays else None


class BatchQLearning:
    """The same Q-learning for N users at once, on the vector env: one Q array (N, S, A).

    ``act(obs)`` takes the vector env's batched observation and returns N actions;
    ``learn(obs, actions, rewards, next_obs, terminated, learned)`` applies Eq. 3 to every user in
    one vectorized update (``learned``: a bool mask of the users whose transition is real, i.e.
    not an autoreset step of the vector env). Each user has its own epsilon schedule (by its own
    interaction count). With epsilon 0 it takes exactly the actions and reaches exactly the tables
    of N :class:`QLearning` policies run one user at a time (a test checks it).
    """

    def __init__(self, n_users: int, config: QLearningConfig | None = None, **kwargs: Any) -> None:
        from mer_gym.config import from_mapping

        if config is None:
            config = from_mapping(QLearningConfig, kwargs, where="policy 'q-learning'")
        self.config = config
        if config.update != "step":
            raise ConfigError("BatchQLearning updates every step (update='step'); batch updates are per user")
        self.discretizer = Discretizer(config.features, config.bins)
        self.q = np.zeros((n_users, self.discretizer.n_states, config.n_actions))
        self.counts = np.zeros(n_users, np.int64)
        self.rng = np.random.default_rng(config.seed)
        self._rows = np.arange(n_users)

    def set_population(self, table: np.ndarray) -> None:
        """Start every user from ``table`` (S, A) (warm start)."""
        table = np.asarray(table, dtype=np.float64)
        if table.shape != self.q.shape[1:]:
            raise PolicyError(f"population table has shape {table.shape}, expected {self.q.shape[1:]}")
        self.q[:] = table

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> np.ndarray:
        s = self.discretizer.states(obs)
        q = self.q[self._rows, s]  # (N, A)
        best = q.max(axis=1, keepdims=True)
        ties = q == best
        keep = self.config.keep_action
        actions = np.where(ties[:, keep], keep, ties.argmax(axis=1))
        if not deterministic:
            eps = self.config.epsilon(self.counts)
            explore = self.rng.random(len(s)) < eps
            if explore.any():
                actions = np.where(explore, self.rng.integers(self.config.n_actions, size=len(s)), actions)
        return actions

    def learn(
        self,
        obs: Mapping[str, np.ndarray],
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: Mapping[str, np.ndarray],
        terminated: np.ndarray,
        learned: np.ndarray | None = None,
    ) -> None:
        rows = self._rows if learned is None else np.flatnonzero(learned)
        s = self.discretizer.states(obs)[rows]
        s2 = self.discretizer.states(next_obs)[rows]
        a = np.asarray(actions)[rows]
        gamma = np.where(np.asarray(terminated)[rows], 0.0, self.config.gamma)
        target = np.asarray(rewards, np.float64)[rows] + gamma * self.q[rows, s2].max(axis=1)
        self.q[rows, s, a] += self.config.alpha * (target - self.q[rows, s, a])
        self.counts[rows] += 1
