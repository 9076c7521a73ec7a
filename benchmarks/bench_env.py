"""Throughput of the environments: the single env through the Gymnasium API against CartPole-v1,
and the vector env at population scale.

    python benchmarks/bench_env.py [--steps 50000] [--users 1 64 1024] [--repeats 3] [--seed 0]
    python benchmarks/bench_env.py --quick            # fewer steps, users 1 and 64 (seconds)

Pins itself to one CPU core with numpy's BLAS on one thread (set before numpy is imported) and
reports, for each measure, the median over ``--repeats`` runs:

* **single env**: ``gymnasium.make("mer_gym/Personalization-v0")`` (the paper's pilot population,
  feature fusion; the wrappers ``make`` adds included) stepped ``--steps`` times with random valid
  actions drawn beforehand, resetting whenever an episode ends: steps per second with the resets'
  time included, and with only the time spent in ``step`` (between resets);
* **CartPole-v1**: ``gymnasium.make("CartPole-v1")``, measured the same two ways, and the ratio
  ours / CartPole (goal: at least 0.5);
* **vector env**: :class:`~mer_gym.envs.vector.PersonalizationVectorEnv` with feature fusion on
  the ``population`` preset sampled at ``n_users`` = each of ``--users``, in user-steps per
  second (users x steps). Each run resets with a new seed (timed apart: the reset draws every
  user's pilot) and then steps as many times as the shortest pilot lasts, so that no pilot ends
  and restarts inside the timed steps; runs repeat until ``--user-steps`` user-steps (at most
  5,000 steps) are timed.
  Goal: at least 1,000,000 user-steps/s at 1,024 users.

Prints one markdown table (``what | n | time | rate | unit | goal``) under a header line naming
the machine and numpy's and Gymnasium's versions. At the defaults it takes about a minute on a
2-core machine, a third of it sampling and drawing the 1,024 users.
"""

from __future__ import annotations

import os

# one core, numpy's BLAS on one thread: set before numpy is imported, as in bench_users.py
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import platform
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
from _common import fmt_time, md_table, pin_one_core

import mer_gym  # noqa: F401  (registers mer_gym/Personalization-v0)
from mer_gym.envs.vector import PersonalizationVectorEnv
from simulators.users.pool import default_pool
from simulators.users.population import sample_population

SINGLE_GOAL = 0.5
VECTOR_GOAL = 1_000_000
VECTOR_GOAL_USERS = 1024




def run_single(env_id: str, steps: int, seed: int) -> tuple[float, float]:
    """Step ``env_id`` ``steps`` times (random valid actions drawn beforehand), resetting at
    every episode end. Returns (seconds including resets, seconds in steps only)."""
    env = gym.make(env_id)
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, steps).tolist()
    env.reset(seed=seed)
    in_steps = 0.0
    start = time.perf_counter()
    segment = start
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            now = time.perf_counter()
            in_steps += now - segment
            env.reset()
            segment = time.perf_counter()
    end = time.perf_counter()
    in_steps += end - segment
    env.close()
    return end - start, in_steps


def run_vector(envs: PersonalizationVectorEnv, user_steps: int, seed: int) -> dict[str, Any]:
    """Reset (timed apart) and step ``envs`` as long as its shortest pilot lasts, repeatedly,
    until ``user_steps`` user-steps are timed."""
    n = envs.num_envs
    rng = np.random.default_rng(seed)
    reset_times, step_time, timed = [], 0.0, 0
    run = 0
    while timed < user_steps:
        t0 = time.perf_counter()
        envs.reset(seed=seed + run)
        reset_times.append(time.perf_counter() - t0)
        steps = int(envs.pilot_lengths.min())  # no pilot ends and restarts inside the timed steps
        actions = rng.integers(0, envs.single_action_space.n, (steps, n))
        t0 = time.perf_counter()
        for a in actions:
            envs.step(a)
        step_time += time.perf_counter() - t0
        timed += steps * n
        run += 1
    return {"step_time": step_time, "user_steps": timed, "reset": statistics.median(reset_times)}


def users(n: int) -> str:
    return f"{n:,} user{'' if n == 1 else 's'}"






def goal_mark(value: float, goal: float, unit: str) -> str:
    return f">= {goal:,.{1 if goal < 10 else 0}f}{unit}: {'met' if value >= goal else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=50_000, help="single-env steps per run")
    parser.add_argument(
        "--users", type=int, nargs="+", default=[1, 64, 1024], help="vector env sizes"
    )
    parser.add_argument(
        "--user-steps", type=int, default=150_000, help="vector env user-steps timed per run"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per measure (the median is shown)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the actions and streams")
    parser.add_argument("--quick", action="store_true", help="5,000 steps, users 1 and 64, 1 run")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.users, args.user_steps, args.repeats = 5_000, [1, 64], 20_000, 1
    if min(args.repeats, args.steps, args.user_steps, *args.users) < 1:
        parser.error("--repeats, --steps, --user-steps and --users must be >= 1")
    where = pin_one_core()

    rows: list[tuple[str, ...]] = []
    single: dict[str, tuple[float, float]] = {}
    for name, env_id in (("ours", "mer_gym/Personalization-v0"), ("CartPole", "CartPole-v1")):
        run_single(env_id, min(args.steps, 2_000), args.seed)  # warm-up: imports, pool, caches
        runs = [run_single(env_id, args.steps, args.seed + r) for r in range(args.repeats)]
        total = statistics.median(r[0] for r in runs)
        steps_only = statistics.median(r[1] for r in runs)
        single[name] = (args.steps / total, args.steps / steps_only)
        rows.append(
            (
                f'gym.make("{env_id}"), resets included',
                f"{args.steps:,} steps",
                fmt_time(total),
                f"{args.steps / total:,.0f}",
                "steps/s",
                "",
            )
        )
        rows.append(
            (
                "  same, steps only (resets excluded)",
                f"{args.steps:,} steps",
                fmt_time(steps_only),
                f"{args.steps / steps_only:,.0f}",
                "steps/s",
                "",
            )
        )
    for j, label in enumerate(("resets included", "steps only")):
        ratio = single["ours"][j] / single["CartPole"][j]
        rows.append(
            (
                f"ours / CartPole, {label}",
                "",
                "",
                f"{ratio:.2f}x",
                "ratio",
                goal_mark(ratio, SINGLE_GOAL, "x"),
            )
        )

    pool = default_pool()
    vector_rates = {}
    for n in args.users:
        profiles = sample_population("population", pool, n_users=n)
        envs = PersonalizationVectorEnv(profiles=profiles, pool=pool, fusion="feature")
        # a few thousand steps are enough for the small envs (each step costs about the same)
        user_steps = min(args.user_steps, 5_000 * n)
        run_vector(envs, min(user_steps, 10 * n), args.seed)  # warm-up
        runs = [run_vector(envs, user_steps, args.seed + 1000 * r) for r in range(args.repeats)]
        rate = statistics.median(r["user_steps"] / r["step_time"] for r in runs)
        step_time = statistics.median(r["step_time"] for r in runs)
        timed = runs[0]["user_steps"]  # the same in every run
        reset = statistics.median(r["reset"] for r in runs)
        vector_rates[n] = rate
        goal = goal_mark(rate, VECTOR_GOAL, "") if n == VECTOR_GOAL_USERS else ""
        rows.append(
            (
                f"vector env, {users(n)} (feature), steps only",
                f"{timed:,} user-steps",
                fmt_time(step_time),
                f"{rate:,.0f}",
                "user-steps/s",
                goal,
            )
        )
        rows.append(
            (
                f"  reset() of the {users(n)} (draws every pilot)",
                users(n),
                fmt_time(reset),
                f"{reset / n * 1e3:,.2f}",
                "ms/user",
                "",
            )
        )
    for n, rate in vector_rates.items():
        rows.append(
            (
                f"vector env ({users(n)}) / single env steps only",
                "",
                "",
                f"{rate / single['ours'][1]:,.1f}x",
                "ratio",
                "",
            )
        )

    cpu = platform.processor() or platform.machine()
    print(
        f"environment benchmark ({cpu}, {os.cpu_count()} CPUs, {where}; numpy {np.__version__}, "
        f"gymnasium {gym.__version__}; median of {args.repeats} run(s); seed {args.seed})"
    )
    print()
    print(
        md_table(
            ("what", "n", "time", "rate", "unit", "goal"),
            rows,
            (False, True, True, True, False, False),
        )
    )


if __name__ == "__main__":
    main()
