"""Run a policy through users' pilots and collect one row per interaction.

:func:`play` runs one user's whole pilot (any episode mode: day episodes are chained until the
pilot ends); :func:`play_users` runs several users. The env is built for the policy's action mode
by :func:`env_for` (same users and streams whatever the mode). Studies (issue 7) build on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import pandas as pd

from agents.base import Policy, PolicyError
from mer_gym.envs import PersonalizationEnv

COLUMNS = (
    "policy", "user_id", "stream_seed", "step", "day", "week", "context", "w_face", "action",
    "label", "prediction", "correct", "reward", "explicit", "confirmations", "corrections",
)


def env_for(policy: Policy, **env_kwargs: Any) -> PersonalizationEnv:
    """A :class:`PersonalizationEnv` in the action mode ``policy`` speaks."""
    return PersonalizationEnv(**{**env_kwargs, "actions": policy.actions})


def play(
    policy: Policy,
    env: gym.Env,
    *,
    user: int | str | None = None,
    seed: int = 0,
    learn: bool = True,
    deterministic: bool = False,
) -> pd.DataFrame:
    """One pilot of ``user`` (index or id; default the env's next user) with stream seed ``seed``.

    Returns:
        One row per interaction (:data:`COLUMNS`).

    Raises:
        PolicyError: the env's action mode is not the policy's.
    """
    base = env.unwrapped
    if getattr(base, "actions", "increments") != policy.actions:
        raise PolicyError(
            f"policy {policy.name!r} speaks actions={policy.actions!r} but the env has "
            f"actions={base.actions!r}: build the env with agents.runner.env_for(policy, ...)"
        )
    options: dict[str, Any] = {"stream_seed": seed}
    if user is not None:
        options["user"] = user
    obs, info = env.reset(options=options)
    policy.reset_user(info["user_id"], env=base)
    if policy.w_face0 is not None and policy.w_face0 != base.w_face:  # known once the user is
        base.w_face = policy.w_face0
        obs = base.observe()
    rows = []
    while True:
        action = policy.act(obs, deterministic=deterministic)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if learn:
            policy.learn(obs, action, reward, next_obs, terminated, truncated, info)
        fb = info["explicit_feedback"]
        confirmations = sum(1 for item in fb if item["confirmed"])
        rows.append(
            (policy.name, info["user_id"], info["stream_seed"], info["step"], info["day"], info["week"],
             info["context"], info["w_face"], int(action), info["label"], info["prediction"], info["correct"],
             float(reward), len(fb) > 0, confirmations, len(fb) - confirmations)
        )
        obs = next_obs
        if terminated or truncated:
            if base._t >= len(base.stream):  # the pilot is over (day episodes end earlier)
                break
            obs, _ = env.reset()
    return pd.DataFrame(rows, columns=list(COLUMNS))


def play_users(
    policy: Policy,
    env: gym.Env,
    users: Sequence[int | str] | None = None,
    *,
    seed: int = 0,
    learn: bool = True,
) -> pd.DataFrame:
    """:func:`play` for each user (default: every user of the env's population), one table."""
    base = env.unwrapped
    users = list(range(len(base.profiles))) if users is None else list(users)
    return pd.concat([play(policy, env, user=u, seed=seed, learn=learn) for u in users], ignore_index=True)
