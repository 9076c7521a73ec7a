"""Throughput of the study runner: the ``population`` study (200 users x 8 weeks x every non-deep
policy x 5 seeds) end to end, on the machine's cores.

    python benchmarks/bench_studies.py                      # the whole study (about 10 min on 2 cores)
    python benchmarks/bench_studies.py --users 20 --seeds 1 # a slice (seconds)
    python benchmarks/bench_studies.py --study pilot        # another shipped study

Runs ``mer-gym run``'s engine (:func:`studies.runner.run_study`, joblib, ``--workers`` processes)
into a temporary folder, then the analysis (:func:`studies.report.analyze`), and prints one
markdown table: jobs, interactions, wall time of the run and of the report, jobs/s and
interactions/s, and the goals: the whole population study in under 15 minutes, and its peak memory
(the resident set of this process and all its worker processes together, sampled every 0.2 s from
``/proc``, Linux only) under 4 GB.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
from _common import fmt_time, md_table

from studies.report import analyze
from studies.runner import plan, run_study
from studies.spec import load_study

GOAL_S = 15 * 60
GOAL_RSS = 4 * 1024**3


def _rss_tree(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


class PeakMemory:
    """Samples the resident memory of this process tree in a thread; ``peak`` in bytes (0 where
    /proc is missing)."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.peak, self._every, self._stop = 0, every_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_tree(os.getpid()) if Path("/proc/self/status").exists() else 0)
            self._stop.wait(self._every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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
        with PeakMemory() as memory:
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
        ("peak resident memory, driver + workers", "", "", f"{memory.peak / 1024**3:.2f} GB",
         f"< 4 GB: {'met' if memory.peak < GOAL_RSS else 'NOT met'}" if memory.peak else "n/a (no /proc)"),
    ]
    print(md_table(("what", "n", "time", "rate", "goal"), rows, (False, True, True, False, False)))


if __name__ == "__main__":
    main()
