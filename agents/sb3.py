"""Deep RL baselines: stable-baselines3's DQN, PPO and A2C behind the policy protocol.

The networks see the env's ``Dict`` observation flattened into one vector
(``gymnasium.spaces.flatten``, as :func:`mer_gym.envs.wrappers.flatten_for_sb3` does: one-hot for
the discrete parts; 62 numbers with the default history of 5). SB3 algorithms learn from their own
interaction with an env, not from the runner's :meth:`learn` calls (a no-op here), so training
happens before the evaluated pilot, in one of two modes:

* ``mode="population"``: :meth:`SB3Policy.fit` trains one model on a population of *training*
  users (give users distinct from the ones you evaluate on); every user is then played with it.
  Training episode ``i`` plays ``users[i % n]`` with stream seed ``past_offset + i // n``.
* ``mode="per-user"``: :meth:`SB3Policy.reset_user` trains a fresh model for ``train_steps``
  interactions on the user's *past*: the same user, with stream seeds
  ``stream_seed + past_offset + j`` for the ``j``-th past pilot, where ``stream_seed`` is the seed
  of the pilot about to be evaluated (default ``past_offset`` 1000, so pilot 0's past is streams
  1000, 1001, ...). A user met again keeps their model (no retraining).

Training runs on a copy of the evaluation env's settings (users, pool, fusion, actions, history,
reward) with one pilot per episode. Acting: ``deterministic=True`` is SB3's greedy ``predict``;
otherwise PPO and A2C sample their action distribution and DQN explores with its final epsilon,
both from the policy's own generator (``self.rng``). SB3 seeds its training itself (``seed``, or
per user from (``seed``, user id)).

Saving does not use SB3's zip (it pickles objects into its data): the arrays are the torch
``state_dict`` of each policy network (``m<i>.<parameter>``) in the ``.npz``, and the JSON meta
names the algorithm, the observation size, the action count, the SB3 keyword arguments and the
users. Loading builds fresh models and loads the arrays (the optimizer state is not saved: the
loaded policy acts, it does not resume SB3 training).
"""

from __future__ import annotations

import inspect
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.base import Policy, PolicyError, policy
from mer_gym.config import ConfigError
from mer_gym.envs.personalization import ACTION_MODES, PersonalizationEnv, observation_space

ALGOS = ("dqn", "ppo", "a2c")
MODES = ("population", "per-user")
POPULATION = "*"
"""The key of the one model of ``mode="population"``."""

DEFAULT_KWARGS: dict[str, dict[str, Any]] = {
    "dqn": {
        "learning_starts": 100,
        "buffer_size": 10_000,
        "batch_size": 32,
        "train_freq": 4,
        "target_update_interval": 250,
        "exploration_fraction": 0.3,
        "gamma": 0.9,
    },
    "ppo": {"n_steps": 256, "batch_size": 64, "n_epochs": 10, "gamma": 0.9},
    "a2c": {"n_steps": 16, "gamma": 0.9},
}
"""SB3 keyword arguments for small envs (pilots of ~60 interactions); ``gamma`` is the paper's 0.9.
The config's ``kwargs`` override them key by key."""

_RESERVED = {"policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model"}


def _algo_class(algo: str) -> type:
    import stable_baselines3 as sb3

    return {"dqn": sb3.DQN, "ppo": sb3.PPO, "a2c": sb3.A2C}[algo]


@dataclass(frozen=True)
class SB3Config:
    """Attributes:
    algo: ``"dqn"``, ``"ppo"`` or ``"a2c"``.
    mode: ``"population"`` (one model trained by :meth:`SB3Policy.fit` on training users) or
        ``"per-user"`` (a model per user, trained on the user's past in ``reset_user``).
    train_steps: environment steps of SB3 training: per user in ``"per-user"`` mode; the default
        ``total_timesteps`` of :meth:`SB3Policy.fit`.
    past_offset: stream-seed offset of the training pilots (see the module docstring).
    actions: the env's action mode the policy speaks: ``"increments"`` (the paper's) or ``"levels"``.
    history: the env's history length k (fixes the observation size).
    kwargs: SB3 constructor arguments overriding :data:`DEFAULT_KWARGS` (JSON values only, e.g.
        ``{"learning_rate": 1e-3, "policy_kwargs": {"net_arch": [32, 32]}}``).
    seed: seed of SB3's training and of the policy's generator.
    device: torch device (``"cpu"``; small MLPs gain nothing from a GPU).
    """

    algo: str = "ppo"
    mode: str = "population"
    train_steps: int = 2048
    past_offset: int = 1000
    actions: str = "increments"
    history: int = 5
    kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ConfigError(f"algo = {self.algo!r}: expected one of {', '.join(ALGOS)}")
        if self.mode not in MODES:
            raise ConfigError(f"mode = {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.actions not in ACTION_MODES:
            raise ConfigError(
                f"actions = {self.actions!r}: expected one of {', '.join(ACTION_MODES)}"
            )
        for name, low in (("train_steps", 1), ("history", 1), ("seed", 0), ("past_offset", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name} = {value!r}: expected an integer >= {low}")
        if not isinstance(self.device, str) or not (
            self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")
        ):
            raise ConfigError(
                f"device = {self.device!r}: expected 'cpu', 'cuda', 'cuda:<n>' or 'auto'"
            )
        if not isinstance(self.kwargs, Mapping):
            raise ConfigError(
                f"kwargs = {self.kwargs!r}: expected a mapping of SB3 keyword arguments"
            )
        reserved = sorted(set(self.kwargs) & _RESERVED)
        if reserved:
            raise ConfigError(
                f"kwargs: {', '.join(map(repr, reserved))} cannot be set here (use the config's fields)"
            )
        try:
            json.dumps(self.kwargs)
        except (TypeError, ValueError):
            raise ConfigError(
                f"kwargs = {self.kwargs!r}: values must be JSON (numbers, strings, lists, mappings) so the "
                "policy can be saved without pickles"
            ) from None
        try:
            accepted = set(inspect.signature(_algo_class(self.algo)).parameters)
        except ImportError:  # stable-baselines3 missing: checked when the policy trains
            return
        unknown = sorted(set(self.kwargs) - accepted)
        if unknown:
            raise ConfigError(
                f"kwargs: {', '.join(map(repr, unknown))} are not arguments of SB3's {self.algo.upper()}"
            )

    @property
    def sb3_kwargs(self) -> dict[str, Any]:
        """The SB3 constructor arguments: :data:`DEFAULT_KWARGS` overridden by ``kwargs``."""
        return {**DEFAULT_KWARGS[self.algo], **self.kwargs}

    @property
    def observation_size(self) -> int:
        return int(spaces.flatdim(observation_space(self.history)))


def _json(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists)."""
    return json.loads(json.dumps(value))


class _Reward:
    """The env's reward function, keeping whether it needs the truth."""

    def __init__(self, fn: Any, needs_truth: bool) -> None:
        self.fn, self.needs_truth = fn, needs_truth

    def __call__(self, signal: Any) -> Any:
        return self.fn(signal)


def training_env(env: Any) -> PersonalizationEnv:
    """A fresh :class:`PersonalizationEnv` with ``env``'s settings and pilot episodes."""
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, PersonalizationEnv):
        raise PolicyError(
            f"expected a PersonalizationEnv (or a wrapper of one), got {type(base).__name__}"
        )
    increments = np.rint(np.asarray(base.increments) / base.delta_w).astype(int).tolist()
    return PersonalizationEnv(
        profiles=base.profiles,
        pool=base.pool,
        fusion=base.fusion,
        delta_w=base.delta_w,
        increments=increments,
        actions=base.actions,
        history=base.k,
        w_face0=base.w_face0,
        reward=_Reward(base.reward_fn, base.needs_truth),
        episode="pilot",
        max_response_time_s=base.max_rt,
    )


class _Schedule(gym.Wrapper):
    """Each reset starts the next (user, stream seed) of a fixed schedule, whatever SB3 asks."""

    def __init__(self, env: PersonalizationEnv, schedule: Any) -> None:
        super().__init__(env)
        self.schedule = schedule
        self.episode = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        user, stream_seed = self.schedule(self.episode)
        self.episode += 1
        return self.env.reset(options={"user": user, "stream_seed": int(stream_seed)})


class _Spaces(gym.Env):
    """An env that only has the spaces (to build a model for loading a saved state)."""

    def __init__(self, observation: spaces.Space, n_actions: int) -> None:
        self.observation_space = observation
        self.action_space = spaces.Discrete(n_actions)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        return self.observation_space.sample(), {}

    def step(self, action: int) -> Any:
        return self.observation_space.sample(), 0.0, False, True, {}


@policy("dqn", algo="dqn")
@policy("ppo", algo="ppo")
@policy("a2c", algo="a2c")
class SB3Policy(Policy):
    """A stable-baselines3 DQN, PPO or A2C model (see the module docstring)."""

    name = "sb3"
    Config = SB3Config

    def __init__(self, config: SB3Config | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.name = self.config.algo  # type: ignore[misc]  # rows and saved cards name the algorithm
        self.actions = self.config.actions  # type: ignore[misc]
        self.dict_space = observation_space(self.config.history)
        self.flat_space = spaces.flatten_space(self.dict_space)
        self.models: dict[str, Any] = {}
        self.n_actions: int | None = None
        self.model: Any = None

    # ---- training ---------------------------------------------------------------------------

    def _check_env(self, base: PersonalizationEnv) -> int:
        if base.actions != self.config.actions:
            raise PolicyError(
                f"policy {self.name!r} has actions = {self.config.actions!r} but the env has "
                f"actions = {base.actions!r}: build the env with agents.runner.env_for(policy, ...)"
            )
        if base.k != self.config.history:
            raise PolicyError(
                f"policy {self.name!r} has history = {self.config.history} but the env has history = "
                f"{base.k}: the observation sizes differ"
            )
        n = int(base.action_space.n)
        if self.n_actions is not None and n != self.n_actions:
            raise PolicyError(
                f"policy {self.name!r} has {self.n_actions} actions but the env has {n}"
            )
        return n

    def _new_model(self, env: gym.Env, seed: int) -> Any:
        return _algo_class(self.config.algo)(
            "MlpPolicy",
            env,
            seed=seed,
            device=self.config.device,
            verbose=0,
            **self.config.sb3_kwargs,
        )

    def _train(self, env: Any, schedule: Any, steps: int, seed: int) -> Any:
        from gymnasium.wrappers import FlattenObservation

        base = getattr(env, "unwrapped", env)
        n = self._check_env(base)
        model = self._new_model(FlattenObservation(_Schedule(training_env(base), schedule)), seed)
        model.learn(total_timesteps=steps)
        self.n_actions = n
        return model

    def fit(
        self,
        env: Any,
        users: Sequence[int | str] | None = None,
        total_timesteps: int | None = None,
    ) -> SB3Policy:
        """Train the population model on ``users`` (default every user of ``env``).

        Args:
            env: a :class:`PersonalizationEnv` (or a wrapper of one, or a mapping of its keyword
                arguments; ``actions`` is the policy's): its users, pool and settings are copied.
            users: training users (indices or ids), distinct from the users you will evaluate.
            total_timesteps: training steps (default ``train_steps``).
        """
        if self.config.mode != "population":
            raise PolicyError(
                f"policy {self.name!r}: fit is for mode='population' (per-user trains in reset_user)"
            )
        if isinstance(env, Mapping):
            env = PersonalizationEnv(**{**env, "actions": self.config.actions})
        base = getattr(env, "unwrapped", env)
        if not isinstance(base, PersonalizationEnv):
            raise PolicyError(
                f"fit: expected a PersonalizationEnv or its keyword arguments, got {type(env).__name__}"
            )
        users = list(range(len(base.profiles))) if users is None else list(users)
        if not users:
            raise PolicyError("fit: users is empty")
        steps = self.config.train_steps if total_timesteps is None else total_timesteps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise PolicyError(f"fit: total_timesteps = {steps!r}: expected an integer >= 1")
        offset = self.config.past_offset

        def schedule(i: int) -> tuple[int | str, int]:
            return users[i % len(users)], offset + i // len(users)

        self.models = {POPULATION: self._train(env, schedule, steps, self.config.seed)}
        self.model = self.models[POPULATION]
        return self

    def reset_user(self, user_id: str, env: Any = None) -> None:
        super().reset_user(user_id, env)
        base = getattr(env, "unwrapped", env) if env is not None else None
        if base is not None:
            self._check_env(base)
        if self.config.mode == "population":
            if POPULATION not in self.models:
                raise PolicyError(
                    f"policy {self.name!r} (mode='population'): call fit(env, users) first"
                )
            self.model = self.models[POPULATION]
            return
        if user_id not in self.models:
            if base is None:
                raise PolicyError(
                    f"policy {self.name!r} (mode='per-user') has no model for user {user_id!r}: call "
                    "reset_user(user_id, env) after env.reset to train one on the user's past"
                )
            stream = base.stream  # the pilot about to be played
            if stream.user_id != user_id:
                raise PolicyError(
                    f"policy {self.name!r}: reset_user({user_id!r}) but the env plays user {stream.user_id!r}"
                )
            first = int(stream.seed) + self.config.past_offset

            def schedule(j: int) -> tuple[str, int]:
                return user_id, first + j

            seed = int(
                np.random.SeedSequence(
                    [self.config.seed, zlib.crc32(user_id.encode())]
                ).generate_state(1)[0]
            )
            self.models[user_id] = self._train(
                base, schedule, self.config.train_steps, seed % 2**31
            )
        self.model = self.models[user_id]

    # ---- acting -----------------------------------------------------------------------------

    def _flat(self, obs: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(spaces.flatten(self.dict_space, obs), dtype=np.float32)

    def _require_model(self) -> Any:
        if self.model is None:
            if self.config.mode == "population" and POPULATION in self.models:
                self.model = self.models[POPULATION]
            else:
                hint = (
                    "fit(env, users)"
                    if self.config.mode == "population"
                    else "reset_user(user_id, env)"
                )
                raise PolicyError(f"policy {self.name!r} has no trained model: call {hint} first")
        return self.model

    def _act_flat(self, flat: np.ndarray, deterministic: bool) -> int:
        import torch

        model = self._require_model()
        if deterministic:
            action, _ = model.predict(flat, deterministic=True)
            return int(action)
        if self.config.algo == "dqn":
            if self.rng.random() < model.exploration_final_eps:
                return int(self.rng.integers(self.n_actions))
            action, _ = model.predict(flat, deterministic=True)
            return int(action)
        obs_t, _ = model.policy.obs_to_tensor(flat)
        with torch.no_grad():
            probs = model.policy.get_distribution(obs_t).distribution.probs[0].cpu().numpy()
        probs = np.asarray(probs, dtype=np.float64)
        return int(self.rng.choice(len(probs), p=probs / probs.sum()))

    def act(self, obs: Mapping[str, np.ndarray], *, deterministic: bool = False) -> int:
        return self._act_flat(self._flat(obs), deterministic)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict`` for Dict observations (single or batched) and for already flattened
        ones (a ``FlattenObservation`` env)."""
        if isinstance(observation, Mapping):
            return super().predict(observation, state, episode_start, deterministic)
        flat = np.asarray(observation, dtype=np.float32)
        size = self.config.observation_size
        if flat.shape[-1] != size or flat.ndim > 2:
            raise PolicyError(
                f"predict: observation of shape {flat.shape}, expected ({size},) or (n, {size})"
            )
        if flat.ndim == 1:
            return np.asarray(self._act_flat(flat, deterministic)), state
        return np.array([self._act_flat(row, deterministic) for row in flat]), state

    # ---- persistence --------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "algo": self.config.algo,
            "mode": self.config.mode,
            "observation_size": self.config.observation_size,
            "n_actions": self.n_actions,
            "kwargs": self.config.sb3_kwargs,
            "users": list(self.models),
            "timesteps": {u: int(m.num_timesteps) for u, m in self.models.items()},
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        arrays = {}
        for i, model in enumerate(self.models.values()):
            for key, value in model.policy.state_dict().items():
                arrays[f"m{i}.{key}"] = value.detach().cpu().numpy()
        return arrays

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        import torch

        if meta.get("algo") != self.config.algo:
            raise PolicyError(
                f"the saved state is of an SB3 {str(meta.get('algo')).upper()} model, not {self.config.algo.upper()}: "
                f"load it with algo = {meta.get('algo')!r}"
            )
        size = self.config.observation_size
        if meta.get("observation_size") != size:
            raise PolicyError(
                f"the saved {self.config.algo.upper()} model takes observations of size "
                f"{meta.get('observation_size')}, this policy's (history = {self.config.history}) have size {size}"
            )
        if meta.get("mode") != self.config.mode:
            raise PolicyError(
                f"the saved state is of mode {meta.get('mode')!r}, this policy has mode {self.config.mode!r}"
            )
        if _json(meta.get("kwargs", {})) != _json(self.config.sb3_kwargs):
            raise PolicyError(
                f"the saved model was built with kwargs {meta.get('kwargs')}, this policy with "
                f"{self.config.sb3_kwargs}: load it with the same kwargs"
            )
        users = list(meta.get("users", []))
        n = meta.get("n_actions")
        if users and (not isinstance(n, int) or n < 1):
            raise PolicyError(f"the saved state has n_actions = {n!r}: expected an integer >= 1")
        if users and self.n_actions is not None and n != self.n_actions:
            raise PolicyError(f"the saved model has {n} actions, this policy {self.n_actions}")
        models = {}
        for i, user in enumerate(users):
            model = self._new_model(_Spaces(self.flat_space, n), self.config.seed)
            expected = model.policy.state_dict()
            prefix = f"m{i}."
            saved = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            if set(saved) != set(expected):
                raise PolicyError(
                    f"saved model of {user!r}: parameters {sorted(set(saved) ^ set(expected))} differ from a "
                    f"fresh {self.config.algo.upper()}'s"
                )
            for key, value in saved.items():
                if tuple(value.shape) != tuple(expected[key].shape):
                    raise PolicyError(
                        f"saved model of {user!r}: {key} has shape {tuple(value.shape)}, expected "
                        f"{tuple(expected[key].shape)}"
                    )
            model.policy.load_state_dict(
                {k: torch.from_numpy(np.array(v)) for k, v in saved.items()}
            )
            model.num_timesteps = int(meta.get("timesteps", {}).get(user, 0))
            models[user] = model
        self.models = models
        self.n_actions = n if users else self.n_actions
        self.model = models.get(POPULATION) if self.config.mode == "population" else None
