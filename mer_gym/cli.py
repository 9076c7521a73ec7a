"""The ``mer-gym`` command line.

Subcommands:
    corpus    generate a corpus from a preset and print its summary
    summary   print the summary of a corpus already on disk
    presets   list the shipped corpus presets
    embed     run the frozen models over a corpus and write its embedding bank
    models    train / evaluate the face CNN, speech LSTM and fusion head; print the card table
    users     sample a population of simulated users and describe them (``--describe``)
    pool      build the user pool (frozen models' outputs per person, emotion and condition)
    run       run a study (policies on simulated pilots) and write its report
    report    (re)write a study run's tables, figures and report
    studies   list the shipped studies
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mer_gym.config import ConfigError
from mer_gym.models.frozen import FrozenModelError
from simulators.users.pool import PoolError
from studies.runner import StudyError


def _cmd_corpus(args: argparse.Namespace) -> int:
    from simulators.corpus.writer import load_preset, summarize, write_corpus

    preset = load_preset(args.preset)
    manifest = write_corpus(
        preset, args.out, n_jobs=args.jobs, overwrite=args.overwrite, progress=not args.quiet
    )
    print(f"wrote {args.out}")
    print(summarize(manifest))
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from simulators.corpus.writer import read_manifest, summarize

    print(summarize(read_manifest(args.corpus)))
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from simulators.corpus.writer import preset_names

    print("\n".join(preset_names()))
    return 0


def _cmd_models_train(args: argparse.Namespace) -> int:
    from mer_gym.models.pipeline import train_all
    from mer_gym.models.train import load_train_config

    cfg = load_train_config(args.config, seed=args.seed)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    log = train_all(
        args.corpus,
        args.out,
        cfg,
        steps=steps,
        n_jobs=args.jobs,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    epochs = ", ".join(f"{s} {log[s]['epochs_run']} epochs" for s in steps)
    print(f"trained {epochs} into {args.out}; config in {args.out}/train_config.json")
    if not args.no_evaluate and "fusion" in steps:
        args.models_dir = args.out
        return _cmd_models_evaluate(args)
    return 0


def _cmd_models_evaluate(args: argparse.Namespace) -> int:
    from mer_gym.models.pipeline import evaluate_dir

    evaluate_dir(args.corpus, args.models_dir, n_jobs=args.jobs, progress=not args.quiet)
    return _cmd_models_table(args)


def _cmd_models_export(args: argparse.Namespace) -> int:
    from mer_gym.models.cards import edge_table
    from mer_gym.models.pipeline import export_dir

    export_dir(args.corpus, args.models_dir, progress=not args.quiet)
    print(edge_table(args.models_dir))
    return 0


def _cmd_models_table(args: argparse.Namespace) -> int:
    from mer_gym.models.cards import edge_table, headline_table

    print(headline_table(args.models_dir))
    try:
        print()
        print(edge_table(args.models_dir))
    except KeyError:
        print("(no edge exports yet: run `mer-gym models export`)")
    return 0


def _models_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="train, evaluate and tabulate the perception models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    p = msub.add_parser("train", help="train the three models on a generated corpus, then card them")
    p.add_argument("--corpus", required=True, help="folder written by `mer-gym corpus`")
    p.add_argument("--out", required=True, help="folder for the models, config and cards")
    p.add_argument("--config", help="YAML/JSON training config (TrainConfig fields); defaults otherwise")
    p.add_argument("--seed", type=int, help="overrides the config's seed")
    p.add_argument(
        "--steps",
        default="face,speech,fusion",
        help="comma-separated subset of face,speech,fusion (e.g. face and speech in two processes, "
        "then fusion); default: all three",
    )
    p.add_argument("--jobs", type=int, default=1, help="preprocessing worker processes")
    p.add_argument("--overwrite", action="store_true", help="replace models already in --out")
    p.add_argument("--no-evaluate", action="store_true", help="skip the held-out evaluation and cards")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_models_train)

    p = msub.add_parser("evaluate", help="score trained models on held-out identities; write cards")
    p.add_argument("--corpus", required=True, help="the corpus the models were trained on")
    p.add_argument("--models-dir", default=None, help="folder of the models (default: frozen_models/)")
    p.add_argument("--jobs", type=int, default=1, help="rendering worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_models_evaluate)

    p = msub.add_parser("export", help="TFLite float32 + int8 exports, scored and timed, into the cards")
    p.add_argument("--corpus", required=True, help="the corpus the models were trained on")
    p.add_argument("--models-dir", default=None, help="folder of the carded models (default: frozen_models/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_models_export)

    p = msub.add_parser("table", help="print the headline accuracy table from the model cards")
    p.add_argument("--models-dir", default=None, help="folder of the cards (default: frozen_models/)")
    p.set_defaults(func=_cmd_models_table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mer-gym",
        description="Testbed for RL personalization of multimodal emotion recognition.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("corpus", help="generate the face + speech corpus of a preset")
    p.add_argument("--preset", default="default", help="shipped preset name or YAML path (default: default)")
    p.add_argument("--out", required=True, help="output folder (refused if it exists, unless --overwrite)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (the corpus is the same for any)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_corpus)

    p = sub.add_parser("summary", help="summarize a generated corpus")
    p.add_argument("corpus", help="folder written by `mer-gym corpus`")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("presets", help="list the shipped corpus presets")
    p.set_defaults(func=_cmd_presets)

    from mer_gym.bank import add_embed_command

    add_embed_command(sub)
    _models_parser(sub)
    from simulators.users.describe import add_commands

    add_commands(sub)
    from studies.cli import add_commands as add_study_commands

    add_study_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileExistsError, FileNotFoundError, FrozenModelError, PoolError, StudyError) as exc:
        print(f"mer-gym {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
