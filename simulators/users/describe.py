"""What a researcher checks before a study: the users, how well each modality captures them, and
which fixed fusion weight would have suited each in hindsight. Also the ``mer-gym users`` and
``mer-gym pool`` commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from mer_gym.labels import EMOTIONS
from simulators.users.pool import UserPool
from simulators.users.profile import Profile
from simulators.users.stream import Stream, draw_stream

WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
"""Face weights at which the hindsight curve is scored (0 = speech only, 1 = face only)."""
_LABELS = list(range(len(EMOTIONS)))


def weight_curve(stream: Stream, pool: UserPool, grid: Sequence[float] = WEIGHT_GRID) -> pd.DataFrame:
    """Accuracy and macro-F1 of the fusion head at each fixed face weight over the whole stream.

    An absent modality enters the head as a zero embedding (camera off, silence). This uses the
    true labels: it is an analysis, never something a policy may see.
    """
    w = np.repeat(np.asarray(grid, float), len(stream))
    f = np.tile(stream.face_row, len(grid))
    s = np.tile(stream.speech_row, len(grid))
    probs = pool.fused_softmax(
        f, s, w, np.tile(stream.face_present, len(grid)), np.tile(stream.speech_present, len(grid))
    )
    pred = probs.argmax(axis=1).reshape(len(grid), len(stream))
    y = stream.label
    # one scikit-learn call for every weight: label k at weight i becomes class i * 6 + k, so
    # weights never mix and the per-class F1 of class i * 6 + k is class k's F1 at weight i
    k = len(EMOTIONS)
    offset = (np.arange(len(grid)) * k)[:, None]
    _, _, f1, _ = precision_recall_fscore_support(
        (offset + y[None, :]).ravel(), (offset + pred).ravel(),
        labels=list(range(len(grid) * k)), average=None, zero_division=0,
    )
    macro = f1.reshape(len(grid), k).mean(axis=1)
    rows = [
        {
            "w_face": float(g),
            "accuracy": float((p == y).mean()) if len(y) else float("nan"),
            "macro_f1": float(m),
        }
        for g, p, m in zip(grid, pred, macro, strict=True)
    ]
    return pd.DataFrame(rows)


def best_fixed_weight(curve: pd.DataFrame, metric: str = "macro_f1") -> float:
    """The weight with the best ``metric``; among ties, the one closest to 0.5 (equal weights)."""
    best = curve[metric].max()
    top = curve.loc[np.isclose(curve[metric], best, rtol=0, atol=1e-12), "w_face"]
    return float(top.iloc[np.argmin(np.abs(top.to_numpy() - 0.5))])


def unimodal_accuracy(stream: Stream, pool: UserPool, modality: str) -> float:
    """Accuracy of the face CNN or the speech LSTM alone on the stream's captured samples."""
    present = stream.face_present if modality == "face" else stream.speech_present
    rows = stream.face_row if modality == "face" else stream.speech_row
    flat = pool.face_flat("softmax") if modality == "face" else pool.speech_flat("softmax")
    if not present.any():
        return float("nan")
    pred = np.asarray(flat[rows[present]]).argmax(axis=1)
    return float((pred == stream.label[present]).mean())


def describe_users(
    profiles: Sequence[Profile], pool: UserPool, seed: int = 0
) -> tuple[pd.DataFrame, list[Stream]]:
    """One row per user: who they are, their capture, their feedback, and their hindsight weights."""
    face_clean = pool.accuracy("face")
    speech_clean = pool.accuracy("speech")
    rows: list[dict[str, Any]] = []
    streams = []
    for prof in profiles:
        st = draw_stream(prof, pool, seed)
        streams.append(st)
        curve = weight_curve(st, pool)
        best = best_fixed_weight(curve)
        f1_at = dict(zip(curve["w_face"], curve["macro_f1"], strict=True))
        rows.append(
            {
                "user": prof.user_id,
                "person": prof.person_id,
                "subgroup": prof.subgroup,
                "face_expr": prof.facial_expressivity,
                "voice_expr": prof.vocal_expressivity,
                "start_day": prof.schedule.start_day,
                "days": prof.schedule.days,
                "interactions": len(st),
                "camera_off": float(1 - st.face_present.mean()) if len(st) else float("nan"),
                "silent": float(1 - st.speech_present.mean()) if len(st) else float("nan"),
                "p_explicit": prof.feedback.p_explicit,
                "face_acc_clean": float(face_clean.loc[prof.person_id, face_clean.columns[0]]),
                "speech_acc_clean": float(speech_clean.loc[prof.person_id, speech_clean.columns[0]]),
                "face_acc": unimodal_accuracy(st, pool, "face"),
                "speech_acc": unimodal_accuracy(st, pool, "speech"),
                "f1_equal": float(f1_at[0.5]),
                "best_w_face": best,
                "f1_best": float(curve["macro_f1"].max()),
            }
        )
    return pd.DataFrame(rows), streams


def spread_table(best: pd.Series) -> pd.DataFrame:
    """How many users have each hindsight-best face weight (share in %)."""
    counts = best.round(1).value_counts().reindex(list(WEIGHT_GRID), fill_value=0)
    return pd.DataFrame({"users": counts, "share_%": (100 * counts / counts.sum()).round(1)}).rename_axis(
        "best_w_face"
    )


def spread_text(best: pd.Series) -> str:
    """:func:`spread_table` as two text rows (weights as columns), as printed by ``mer-gym users``."""
    sp = spread_table(best)
    wide = pd.DataFrame(
        {f"{w:.1f}": [str(int(r["users"])), f"{r['share_%']:.1f}"] for w, r in sp.iterrows()},
        index=["users", "share_%"],
    ).rename_axis("best_w_face", axis=1)
    return wide.to_string()


# ---------------------------------------------------------------------------------------------
# CLI


def _load_pool(path: str | None) -> UserPool:
    from simulators.users.pool import UserPool, default_pool

    return UserPool.load(path) if path else default_pool()


def cmd_users(args: argparse.Namespace) -> int:
    from simulators.users.population import load_population, population_names, sample_population

    if args.list:
        for name in population_names():
            preset = load_population(name)
            print(f"{name:18s} {preset.n_users:4d} users  {preset.description}")
        return 0
    pool = _load_pool(args.pool)
    preset = load_population(args.preset)
    profiles = sample_population(preset, pool, n_users=args.n, seed=args.seed)
    if args.profile:
        import yaml

        print(yaml.safe_dump([p.to_dict() for p in profiles], sort_keys=False), end="")
        return 0
    print(f"population {preset.name!r}: {preset.description}")
    print(pool.summary())
    if args.describe:
        print(pool_table(pool))
    table, _ = describe_users(profiles, pool, seed=args.stream_seed)
    if args.describe:
        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_rows", 500):
            print(table.round(3).to_string(index=False))
        print()
        print("face_acc / speech_acc: each frozen model alone on the user's own stream (captured samples);")
        print("*_clean: on clean captures of the user's person; best_w_face: the fixed face weight with the")
        print("best macro-F1 over the whole stream in hindsight (f1_best), against equal weights (f1_equal).")
    print()
    print("hindsight-best fixed face weight across users:")
    print(spread_text(table["best_w_face"]))
    print(gain_line(table))
    return 0


def gain_line(table: pd.DataFrame) -> str:
    """The hindsight-best weight's macro-F1 gain over equal weights across users, in points."""
    gain = 100 * (table["f1_best"] - table["f1_equal"])
    return (
        f"macro-F1 gain of the hindsight-best weight over equal weights (points): mean {gain.mean():.1f}, "
        f"median {gain.median():.1f}, 90th percentile {gain.quantile(0.9):.1f}"
    )


def pool_table(pool: UserPool) -> str:
    """Each frozen model's accuracy per capture condition in the pool: mean and range over persons."""
    lines = []
    for modality in ("face", "speech"):
        acc = pool.accuracy(modality)
        df = pd.DataFrame({"mean": acc.mean(), "min": acc.min(), "max": acc.max()}).T.round(3)
        lines.append(f"{modality} model accuracy per condition over the pool's {pool.n_persons} persons:")
        lines.append(df.to_string())
    return "\n".join(lines)


def cmd_pool(args: argparse.Namespace) -> int:
    from simulators.users.pool import build_pool

    pool = build_pool(args.corpus, args.models_dir, dtype=args.dtype, n_jobs=args.jobs, progress=not args.quiet)
    path = pool.save(args.out)
    print(f"wrote {path}")
    print(pool.summary())
    print(pool_table(pool))
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "users",
        help="sample a population of simulated users and describe them",
        description="Sample a population preset and print each user's capture, feedback and "
        "per-modality accuracy in the user pool, and the spread of hindsight-best fusion weights.",
    )
    p.add_argument("--preset", default="paper-pilot", help="population preset name or YAML path")
    p.add_argument("--n", type=int, default=None, help="number of users (default: the preset's)")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default: the preset's)")
    p.add_argument("--stream-seed", type=int, default=0, help="seed of the users' streams")
    p.add_argument("--pool", default=None, help="user pool folder (default: the shipped pool)")
    p.add_argument("--describe", action="store_true", help="print one row per user")
    p.add_argument("--profile", action="store_true", help="print the sampled profiles as YAML")
    p.add_argument("--list", action="store_true", help="list the shipped population presets")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser(
        "pool",
        help="build a user pool from a generated corpus (frozen models under named conditions)",
    )
    p.add_argument("--corpus", required=True, help="corpus with a user_pool split (`mer-gym corpus --preset users`)")
    p.add_argument("--out", required=True, help="folder for user_pool.npz + user_pool.json")
    p.add_argument("--models-dir", default=None, help="frozen models folder (default: frozen_models/)")
    p.add_argument("--dtype", default="float16", choices=("float16", "float32"), help="storage dtype")
    p.add_argument("--jobs", type=int, default=1, help="rendering worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_pool)
