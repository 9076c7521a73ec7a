"""What the paper's Q-learning adds to the cost of the vector env, over a population of users.

    python benchmarks/bench_agents.py [--users 1024] [--steps 200] [--repeats 3]
    python benchmarks/bench_agents.py --quick      # 64 users, 50 steps, 1 repeat

In one run, on one core (BLAS on one thread, set before numpy is imported), with the median over
``--repeats``:

* **env alone**: :class:`~mer_gym.envs.vector.PersonalizationVectorEnv` over ``--users`` users of
  the ``population`` preset (feature fusion), stepped ``--steps`` times with pre-drawn random
  actions: user-steps per second;
* **env + Q-learning**: the same, with :class:`~agents.tabular.BatchQLearning` (one (N, S, A)
  table) choosing every action (epsilon-greedy) and learning from every transition (Eq. 3):
  user-steps per second, and the agent's share of the time as a ratio to the env's.

Goal (issue 6): the agent adds less than the env costs (ratio < 1). Resets are not timed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import platform
import time

import numpy as np
from _common import pin_one_core


def run(n_users: int, steps: int) -> tuple[float, float, float]:
    """(env-alone seconds, env+agent seconds, agent-only seconds) for ``steps`` steps."""
    from agents.tabular import BatchQLearning
    from mer_gym.envs.vector import PersonalizationVectorEnv

    envs = PersonalizationVectorEnv("population", n_users=n_users)
    actions = np.random.default_rng(0).integers(0, 3, size=(steps, n_users))
    envs.reset(seed=0)
    t0 = time.perf_counter()
    for k in range(steps):
        envs.step(actions[k])
    env_s = time.perf_counter() - t0

    agent = BatchQLearning(n_users)
    obs, _ = envs.reset(seed=0)
    agent_s = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        t1 = time.perf_counter()
        a = agent.act(obs)
        agent_s += time.perf_counter() - t1
        next_obs, reward, terminated, _, info = envs.step(a)
        t1 = time.perf_counter()
        agent.learn(obs, a, reward, next_obs, terminated, info.get("_correct"))
        agent_s += time.perf_counter() - t1
        obs = next_obs
    both_s = time.perf_counter() - t0
    return env_s, both_s, agent_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="64 users, 50 steps, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.steps, args.repeats = 64, 50, 1
    pin = pin_one_core()
    runs = [run(args.users, args.steps) for _ in range(args.repeats)]
    env_s, both_s, agent_s = (float(np.median([r[i] for r in runs])) for i in range(3))
    n = args.users * args.steps
    print(
        f"Q-learning + vector env benchmark ({platform.machine()}, {os.cpu_count()} CPUs, {pin}; numpy "
        f"{np.__version__}; {args.users} users x {args.steps} steps; median of {args.repeats})"
    )
    print()
    print("| what | user-steps/s | seconds |")
    print("|---|---:|---:|")
    print(f"| vector env alone (feature fusion) | {n / env_s:,.0f} | {env_s:.3f} |")
    print(f"| vector env + BatchQLearning (act + learn) | {n / both_s:,.0f} | {both_s:.3f} |")
    print(f"| BatchQLearning alone (act + learn) | {n / agent_s:,.0f} | {agent_s:.3f} |")
    print()
    ratio = agent_s / env_s
    print(f"agent cost / env cost = {ratio:.2f} (goal: < 1) -> {'met' if ratio < 1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
