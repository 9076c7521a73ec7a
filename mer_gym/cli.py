"""The ``mer-gym`` command line.

Subcommands:
    corpus    generate a corpus from a preset and print its summary
    summary   print the summary of a corpus already on disk
    presets   list the shipped corpus presets
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mer_gym.config import ConfigError


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileExistsError, FileNotFoundError) as exc:
        print(f"mer-gym {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
