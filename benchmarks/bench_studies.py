"""Throughput of the study runner: the ``population`` study (200 users x 8 weeks x every non-deep
policy x 5 seeds) end to end, on the machine's cores.

    python benchmarks/bench_studies.py                      # the whole study (about 10 min on 2 cores)
    python benchmarks/bench_studies.py --users 20 --seeds 1 # a slice (seconds)
    python benchmarks/bench_studies.py --study pilot        # another shipped study

Runs ``mer-gym run``'s engine (:func:`studies.runner.run_study`, joblib, ``--workers`` processes)
into a temporary folder, then the analysis (:func:`studies.report.analyze`), and prints one
markdown table: jobs, interactions, wall time of the run and of the report, jobs/s and
interactions/s, and the goal (the whole population study in under 15 minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import fmt_time, md_table

from studies.report import analyze
from studies.runner import plan, run_study
from studies.spec import load_study

GOAL_S = 15 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="population")
    parser.add_argument("--users", type=int, help="users (default: the study's)")
    parser.add_argument("--seeds", type=int, help="seeds (default: the study's)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", help="keep the run here (default: a temporary folder)")
    args = parser.parse_args()

    study = load_study(args.study)
    if args.users or args.seeds:
        study = study.scaled(n_users=args.users, seeds=args.seeds)
    jobs = len(plan(study))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / study.name
        t0 = time.perf_counter()
        run_study(study, out, n_workers=args.workers, progress=False)
        run_s = time.perf_counter() - t0
        interactions = int(pd.read_parquet(out / "days.parquet", columns=["n"])["n"].sum())
        t1 = time.perf_counter()
        analyze(out)
        report_s = time.perf_counter() - t1
    total = run_s + report_s
    full = study == load_study(args.study)
    goal = (f"< {fmt_time(GOAL_S)}: {'met' if total < GOAL_S else 'NOT met'}" if args.study == "population" and full
            else "(a slice: no goal)")
    print(f"study {study.name}: {platform.machine()} with {os.cpu_count()} CPUs, {args.workers} workers, "
          f"{platform.python_version()}")
    rows = [
        ("jobs (policy x user x seed)", f"{jobs:,}", "", "", ""),
        ("interactions", f"{interactions:,}", "", "", ""),
        ("run", "", fmt_time(run_s), f"{jobs / run_s:,.1f} jobs/s, {interactions / run_s:,.0f} interactions/s", ""),
        ("report (statistics, figures)", "", fmt_time(report_s), "", ""),
        ("total", "", fmt_time(total), "", goal),
    ]
    print(md_table(("what", "n", "time", "rate", "goal"), rows, (False, True, True, False, False)))


if __name__ == "__main__":
    main()
