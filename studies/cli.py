"""``mer-gym run``, ``mer-gym report`` and ``mer-gym studies``: the study commands."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["add_commands"]


def _cmd_run(args: argparse.Namespace) -> int:
    from studies.report import analyze
    from studies.runner import run_study
    from studies.spec import load_study

    t0 = time.perf_counter()
    study = load_study(args.study)
    if args.users or args.seeds or args.days:
        study = study.scaled(n_users=args.users, seeds=args.seeds, days=args.days)
    out = args.out or f"results/{study.name}"
    run_study(
        study, out, backend=args.backend, n_workers=args.workers, address=args.address,
        resume=args.resume, progress=not args.quiet,
    )
    t_run = time.perf_counter() - t0
    report = analyze(out) if not args.no_report else None
    total = time.perf_counter() - t0
    if report is not None:
        print(f"report: {report}")
        print(f"headline figure: {report.parent / 'figures' / 'gain_per_user.png'}")
    print(f"study {study.name}: ran in {t_run:.1f} s, {total:.1f} s with the report")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from studies.report import analyze

    t0 = time.perf_counter()
    report = analyze(args.out, seed=args.seed)
    print(f"report: {report} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    from studies.spec import load_study, study_names

    for name in study_names():
        study = load_study(name)
        print(f"{name:18s} {study.question.strip()}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a study (YAML): policies on simulated pilots, then its report")
    p.add_argument("study", help="a shipped study name (see `mer-gym studies`) or a YAML path, e.g. studies/pilot.yaml")
    p.add_argument("--out", help="output folder (default: results/<study name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (finished jobs are kept)")
    p.add_argument("--backend", choices=("joblib", "ray"), default="joblib", help="local processes or Ray")
    p.add_argument("--address", help="Ray cluster address (with --backend ray; default: a local Ray)")
    p.add_argument("--workers", type=int, help="parallel workers (default: all CPUs)")
    p.add_argument("--users", type=int, help="run on this many users instead of the study's (quick runs)")
    p.add_argument("--seeds", type=int, help="run seeds 0..N-1 instead of the study's")
    p.add_argument("--days", type=int, help="pilot length in days instead of the study's")
    p.add_argument("--no-report", action="store_true", help="write the tables only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="(re)write the tables, figures and report of a study run")
    p.add_argument("out", help="a folder written by `mer-gym run`")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("studies", help="list the shipped studies and their questions")
    p.set_defaults(func=_cmd_studies)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
