"""Throughput of the simulated users (``simulators/users``): pool load, population sampling, stream
drawing, feedback and the hindsight weight curve.

    python benchmarks/bench_users.py [--preset population] [--repeats 3] [--seed 0]
    python benchmarks/bench_users.py --quick          # paper-pilot only, 1 repeat (a few seconds)

Pins itself to one CPU core with numpy's BLAS on one thread (set before numpy is imported), and
reports, for each measure, the median wall time over ``--repeats`` runs and the rate it implies:

* **pool load**: :meth:`UserPool.load` of the shipped pool (``frozen_models/user_pool.npz``),
  sha256 check included, in ms; the file is in the OS cache (the pool is loaded once, untimed,
  before the timed loads);
* **population sampling**: :func:`sample_population` of the ``paper-pilot`` preset and of
  ``--preset`` (default ``population``, 240 users), in profiles per second;
* **stream drawing**: :func:`draw_stream` for every profile of each preset (stream seed
  ``--seed``), as user-weeks per second (a week is ``profile.schedule.days / 7``), interactions per
  second and ms per user-pilot;
* **feedback**: :func:`respond` over every interaction of every stream, one fresh
  :class:`UserState` per user, in responses per second. The predictions (argmax of
  :meth:`UserPool.fused_softmax` at face weight 0.5 with the stream's presence masks) are
  computed beforehand, vectorized per stream, and are not timed;
* **hindsight curve**: :func:`describe.weight_curve` (11 face weights, accuracy and macro-F1) per
  user, in users per second; the row below it times only its :meth:`UserPool.fused_softmax`
  part (the same 11 x T rows, one run), to show where the rest goes (sklearn's ``f1_score``).

Prints one markdown table (``what | n | median time | rate | unit``) under a header line naming
the machine and numpy's version. At the defaults it takes under a minute on a 2-core machine, three
quarters of it in weight_curve over the 240 users of ``population``.
"""

from __future__ import annotations

import os

# one core, numpy's BLAS on one thread: set before numpy is imported, as in bench_corpus.py
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import platform

import numpy as np
from _common import fmt_time, md_table, median_time, pin_one_core

from simulators.users.describe import WEIGHT_GRID, weight_curve
from simulators.users.feedback import UserState, respond
from simulators.users.pool import UserPool, default_dir
from simulators.users.population import load_population, sample_population
from simulators.users.stream import Stream, draw_stream


def predictions(streams: list[Stream], pool: UserPool) -> list[list[int]]:
    """The fusion head's argmax at face weight 0.5 for every interaction (Python ints: ``respond``
    accepts only ``int``, not numpy integers)."""
    return [
        pool.fused_softmax(s.face_row, s.speech_row, 0.5, s.face_present, s.speech_present)
        .argmax(axis=1)
        .tolist()
        for s in streams
    ]


def respond_all(streams: list[Stream], preds: list[list[int]]) -> int:
    n = 0
    for stream, pred in zip(streams, preds, strict=True):
        state = UserState()
        for t, p in enumerate(pred):
            respond(stream, t, p, state)
        n += len(pred)
    return n


def curve_fused_only(streams: list[Stream], pool: UserPool) -> None:
    """The fused_softmax part of weight_curve alone (same rows, same weights)."""
    k = len(WEIGHT_GRID)
    for s in streams:
        w = np.repeat(np.asarray(WEIGHT_GRID, float), len(s))
        pool.fused_softmax(
            np.tile(s.face_row, k),
            np.tile(s.speech_row, k),
            w,
            np.tile(s.face_present, k),
            np.tile(s.speech_present, k),
        ).argmax(axis=1)


def bench_preset(
    name: str, pool: UserPool, repeats: int, seed: int
) -> list[tuple[str, str, str, str, str]]:
    preset = load_population(name)
    rows = []
    t, profiles = median_time(lambda: sample_population(preset, pool), repeats)
    n = len(profiles)
    rows.append(
        (f"sample_population({name})", f"{n:,} users", fmt_time(t), f"{n / t:,.0f}", "profiles/s")
    )

    t, streams = median_time(lambda: [draw_stream(p, pool, seed) for p in profiles], repeats)
    weeks = sum(p.schedule.days for p in profiles) / 7
    inter = sum(len(s) for s in streams)
    days = sorted({p.schedule.days for p in profiles})
    what = f"draw_stream({name}, {n} users x {'/'.join(map(str, days))} days)"
    rows.append(
        (what, f"{weeks:,.0f} user-weeks", fmt_time(t), f"{weeks / t:,.0f}", "user-weeks/s")
    )
    rows.append(
        (
            "  same, per interaction",
            f"{inter:,} interactions",
            fmt_time(t),
            f"{inter / t:,.0f}",
            "interactions/s",
        )
    )
    rows.append(
        (
            "  same, per user-pilot",
            f"{n:,} users",
            fmt_time(t),
            f"{t / n * 1e3:,.2f}",
            "ms/user-pilot",
        )
    )

    preds = predictions(streams, pool)
    t, _ = median_time(lambda: respond_all(streams, preds), repeats)
    rows.append(
        (
            f"respond({name}), every interaction",
            f"{inter:,} responses",
            fmt_time(t),
            f"{inter / t:,.0f}",
            "responses/s",
        )
    )

    t, _ = median_time(lambda: [weight_curve(s, pool) for s in streams], repeats)
    rows.append(
        (
            f"weight_curve({name}), {len(WEIGHT_GRID)} weights",
            f"{n:,} users",
            fmt_time(t),
            f"{n / t:,.1f}",
            "users/s",
        )
    )
    t, _ = median_time(lambda: curve_fused_only(streams, pool), 1)  # a breakdown: one run is enough
    rows.append(
        (
            "  of which fused_softmax + argmax (1 run)",
            f"{n:,} users",
            fmt_time(t),
            f"{n / t:,.1f}",
            "users/s",
        )
    )
    return rows




def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", default="population", help="population preset timed beside paper-pilot"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per measure (the median is shown)"
    )
    parser.add_argument("--seed", type=int, default=0, help="stream seed")
    parser.add_argument("--quick", action="store_true", help="paper-pilot only, 1 repeat")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    repeats = 1 if args.quick else args.repeats
    presets = ["paper-pilot"] if args.quick else list(dict.fromkeys(["paper-pilot", args.preset]))
    where = pin_one_core()

    directory = default_dir()
    pool = UserPool.load(directory)  # untimed: warms the OS file cache and the imports
    t, _ = median_time(lambda: UserPool.load(directory), repeats)
    rows = [("UserPool.load (sha256 checked)", "1 pool", fmt_time(t), f"{t * 1e3:,.1f}", "ms/load")]
    for name in presets:
        rows += bench_preset(name, pool, repeats, args.seed)

    cpu = platform.processor() or platform.machine()
    print(
        f"simulated users benchmark ({cpu}, {os.cpu_count()} CPUs, {where}; numpy {np.__version__}; "
        f"median of {repeats} run(s); stream seed {args.seed})"
    )
    print(pool.summary())
    print()
    print(
        md_table(
            ("what", "n", "median time", "rate", "unit"), rows, (False, True, True, True, False)
        )
    )


if __name__ == "__main__":
    main()
