"""The statistics of a study: paired gains over the baseline, with honest CIs and tests.

Pairing
    Every policy meets a user on the same stream for a given seed (common random numbers), so a
    policy's result is compared with the baseline's result on the *same* (condition, user, seed):
    ``gain = (value - baseline_value) * scale`` (``scale=100`` turns macro-F1 into points).

Units
    Users are the independent units. Seeds are repeated runs *within* a user: they are averaged
    within each user before the mean gain, its bootstrap CI, the paired t-test, the Wilcoxon
    signed-rank test and the worst-quarter summaries are computed, so many seeds never pass for many
    users. The interquartile mean (IQM) follows rliable instead and is taken over all users × seeds
    runs, with a *stratified* bootstrap: runs are resampled with replacement within each user (the
    task), never across users. The same stratified bootstrap gives the performance profile's bands.

Multiple comparisons
    p-values are Holm-Bonferroni adjusted across the policies within each condition (Holm 1979).

References
    R. Agarwal, M. Schwarzer, P. S. Castro, A. Courville, M. G. Bellemare. "Deep Reinforcement
    Learning at the Edge of the Statistical Precipice." NeurIPS 2021 (the ``rliable`` library): IQM,
    stratified bootstrap CIs and performance profiles.
    S. Holm. "A Simple Sequentially Rejective Multiple Test Procedure." Scandinavian Journal of
    Statistics 6(2), 65-70, 1979.

Every function that resamples takes a ``seed`` and builds its own ``numpy.random.Generator``; nothing
touches the global random state, so the same inputs and seed give the same numbers.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = [
    "StatsError",
    "bootstrap_ci",
    "holm",
    "iqm",
    "paired_gains",
    "paired_tests",
    "performance_profile",
    "stratified_iqm_ci",
    "summarize",
    "user_gains",
    "worst_quarter",
]

#: A seed for :func:`numpy.random.default_rng`.
SeedLike = int | np.random.SeedSequence | np.random.Generator

#: The columns that identify one row of a per-user table (besides the metric columns).
KEYS = ("condition", "policy", "user_id", "subgroup", "seed")
#: The columns a baseline row is matched on.
PAIR_KEYS = ["condition", "user_id", "seed"]
#: The columns of :func:`summarize`, in order.
SUMMARY_COLUMNS = [
    "condition",
    "policy",
    "n_users",
    "n_seeds",
    "baseline_value",
    "value",
    "mean_gain",
    "ci_low",
    "ci_high",
    "iqm_gain",
    "iqm_ci_low",
    "iqm_ci_high",
    "t_stat",
    "t_p",
    "t_p_holm",
    "wilcoxon_stat",
    "wilcoxon_p",
    "wilcoxon_p_holm",
    "q25_gain",
    "worst_quarter_gain",
    "share_hurt",
]
#: How many offending rows an error message lists before it says "and N more".
_MAX_LISTED = 5


class StatsError(ValueError):
    """A study table or sample that the statistics cannot use, with what is wrong and where."""


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _listing(items: Sequence[str]) -> str:
    """``a; b; c`` for at most :data:`_MAX_LISTED` items, then ``and N more``."""
    shown = "; ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f"; and {len(items) - _MAX_LISTED} more"
    return shown


def _row_label(row: pd.Series) -> str:
    return (
        f"policy {row['policy']!r}, user {row['user_id']!r} "
        f"(condition {row['condition']!r}, seed {row['seed']})"
    )


def _check_table(per_user: pd.DataFrame, metric: str) -> None:
    """Raise :class:`StatsError` unless ``per_user`` has the key columns and a NaN-free metric.

    Args:
        per_user: The per-user table.
        metric: The metric column to check.

    Raises:
        StatsError: A column is missing, the table is empty, the metric has NaN, or a
            (condition, policy, user_id, seed) appears twice.
    """
    if not isinstance(per_user, pd.DataFrame):
        raise StatsError(f"per_user must be a pandas DataFrame, got {type(per_user).__name__}")
    missing = [c for c in (*KEYS, metric) if c not in per_user.columns]
    if missing:
        raise StatsError(
            f"per_user table lacks column(s) {missing}; it has {list(per_user.columns)}"
        )
    if per_user.empty:
        raise StatsError("per_user table is empty")
    values = pd.to_numeric(per_user[metric], errors="coerce")
    bad = per_user[values.isna()]
    if not bad.empty:
        rows = [_row_label(row) for _, row in bad.iterrows()]
        raise StatsError(
            f"column {metric!r} has NaN (or non-numeric) values in {len(rows)} row(s): "
            f"{_listing(rows)}"
        )
    dup = per_user[per_user.duplicated(["condition", "policy", "user_id", "seed"], keep=False)]
    if not dup.empty:
        rows = sorted({_row_label(row) for _, row in dup.iterrows()})
        raise StatsError(
            f"per_user table has duplicate (condition, policy, user_id, seed) rows: {_listing(rows)}"
        )


def _as_sample(x: object, name: str = "x") -> np.ndarray:
    """A finite-checked 1-D float array.

    Raises:
        StatsError: ``x`` is empty or holds NaN.
    """
    arr = np.asarray(x, dtype=float).ravel()
    if arr.size == 0:
        raise StatsError(f"{name} is empty")
    if np.isnan(arr).any():
        raise StatsError(f"{name} holds {int(np.isnan(arr).sum())} NaN value(s); drop or fill them")
    return arr


def _first_seen(values: pd.Series) -> list[str]:
    """The distinct values in order of first appearance."""
    return list(dict.fromkeys(values.tolist()))


def _child_seed(seed: int, *names: str) -> np.random.SeedSequence:
    """A seed sequence for one (condition, policy), stable across runs and Python processes.

    The names are hashed with SHA-256 (not Python's salted ``hash()``), so adding or reordering
    policies never changes another policy's resamples.
    """
    digest = hashlib.sha256("\x1f".join(names).encode("utf-8")).digest()
    words = np.frombuffer(digest, dtype=np.uint32).tolist()
    return np.random.SeedSequence([int(seed), *words])


# --------------------------------------------------------------------------------------------
# Gains
# --------------------------------------------------------------------------------------------


def paired_gains(
    per_user: pd.DataFrame,
    *,
    metric: str = "macro_f1",
    baseline: str = "equal-weights",
    scale: float = 100.0,
) -> pd.DataFrame:
    """Each policy's paired difference to the baseline on the same (condition, user, seed).

    Args:
        per_user: One row per (condition, policy, user_id, seed) with columns ``condition``,
            ``policy``, ``user_id``, ``subgroup``, ``seed`` and the metric.
        metric: The metric column.
        baseline: The policy every other policy is compared with.
        scale: Multiplies the difference (100 gives points of a [0, 1] metric).

    Returns:
        One row per non-baseline row of ``per_user``, in its order, with columns ``condition``,
        ``policy``, ``user_id``, ``subgroup``, ``seed``, ``value``, ``baseline_value`` and
        ``gain = (value - baseline_value) * scale``.

    Raises:
        StatsError: A column is missing, the metric has NaN, rows are duplicated, the baseline
            policy is absent, or a policy row has no baseline row on its (condition, user, seed).
    """
    _check_table(per_user, metric)
    table = per_user.loc[:, [*KEYS, metric]].rename(columns={metric: "value"})
    table["value"] = table["value"].astype(float)
    is_base = table["policy"] == baseline
    if not is_base.any():
        present = _first_seen(table["policy"])
        raise StatsError(
            f"baseline policy {baseline!r} is absent from the table (policies present: "
            f"{present}); add {baseline!r} to the study's policies, or pass baseline= one of these"
        )
    base = table.loc[is_base, [*PAIR_KEYS, "value"]].rename(columns={"value": "baseline_value"})
    merged = table.loc[~is_base].merge(base, on=PAIR_KEYS, how="left", validate="many_to_one")
    unpaired = merged[merged["baseline_value"].isna()]
    if not unpaired.empty:
        rows = [_row_label(row) for _, row in unpaired.iterrows()]
        raise StatsError(
            f"{len(rows)} row(s) have no {baseline!r} row on the same (condition, user_id, seed), "
            f"so no paired gain: {_listing(rows)}"
        )
    merged["gain"] = (merged["value"] - merged["baseline_value"]) * float(scale)
    return merged.reset_index(drop=True)


def user_gains(gains: pd.DataFrame) -> pd.DataFrame:
    """Average the seeds within each user: users are the independent units for tests and CIs.

    Args:
        gains: The output of :func:`paired_gains`.

    Returns:
        One row per (condition, policy, user_id, subgroup), in order of first appearance, with the
        mean ``gain``, ``value`` and ``baseline_value`` over the user's seeds and ``n_seeds``.

    Raises:
        StatsError: A column of :func:`paired_gains`' output is missing.
    """
    needed = ["condition", "policy", "user_id", "subgroup", "seed", "value", "baseline_value"]
    missing = [c for c in [*needed, "gain"] if c not in gains.columns]
    if missing:
        raise StatsError(f"gains table lacks column(s) {missing}; pass paired_gains()'s output")
    grouped = gains.groupby(["condition", "policy", "user_id", "subgroup"], sort=False)
    out = grouped.agg(
        gain=("gain", "mean"),
        value=("value", "mean"),
        baseline_value=("baseline_value", "mean"),
        n_seeds=("seed", "nunique"),
    )
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# Bootstrap CIs and the IQM
# --------------------------------------------------------------------------------------------


def bootstrap_ci(
    x: object,
    *,
    seed: SeedLike,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    statistic: Callable[..., float] = np.mean,
) -> tuple[float, float]:
    """A bootstrap confidence interval of ``statistic(x)`` (BCa, else percentile).

    Uses :func:`scipy.stats.bootstrap` with the bias-corrected and accelerated (BCa) method; when
    BCa is degenerate (it warns or gives NaN, e.g. for heavily tied data or ``np.min``) the
    percentile interval, drawn with the same seed, is returned instead.

    Args:
        x: The sample (1-D, NaN-free).
        seed: Seeds the ``numpy.random.Generator`` that draws the resamples.
        confidence: The confidence level, in (0, 1).
        n_resamples: How many bootstrap resamples.
        statistic: Maps a sample to a number; vectorized if it takes ``axis``.

    Returns:
        ``(low, high)``; ``(v, v)`` with ``v = statistic(x)`` when ``x`` has fewer than two distinct
        values.

    Raises:
        StatsError: ``x`` is empty or holds NaN, or ``confidence`` is outside (0, 1).
    """
    arr = _as_sample(x)
    _check_confidence(confidence)
    if np.unique(arr).size < 2:
        value = float(statistic(arr))
        return value, value
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = stats.bootstrap(
                (arr,),
                statistic,
                n_resamples=n_resamples,
                confidence_level=confidence,
                method=method,
                rng=np.random.default_rng(seed),
            )
        low, high = (float(v) for v in result.confidence_interval)
        if not caught and np.isfinite(low) and np.isfinite(high):
            break
    return low, high


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must lie in (0, 1), got {confidence}")


def iqm(x: object) -> float:
    """The interquartile mean: the mean of the middle 50 % (rliable's ``aggregate_iqm``).

    Args:
        x: The values (flattened; NaN-free).

    Returns:
        ``scipy.stats.trim_mean(x, 0.25)``.

    Raises:
        StatsError: ``x`` is empty or holds NaN.
    """
    return float(stats.trim_mean(_as_sample(x), 0.25))


def _iqm_last_axis(x: np.ndarray) -> np.ndarray:
    """The IQM along the last axis, kept as a length-1 last axis: ``(..., N) -> (..., 1)``."""
    return stats.trim_mean(x, 0.25, axis=-1)[..., None]


def _as_groups(matrix_or_groups: object) -> list[np.ndarray]:
    """One NaN-free 1-D array per user from a users × seeds matrix or a sequence of arrays."""
    if isinstance(matrix_or_groups, np.ndarray) and matrix_or_groups.ndim == 2:
        rows = list(matrix_or_groups)
    elif isinstance(matrix_or_groups, np.ndarray) and matrix_or_groups.ndim == 1:
        rows = [matrix_or_groups]
    else:
        rows = list(matrix_or_groups)  # type: ignore[call-overload]
    if not rows:
        raise StatsError("no groups (users) given")
    return [_as_sample(row, name=f"group {i}") for i, row in enumerate(rows)]


def _stratified_bootstrap(
    groups: list[np.ndarray],
    pooled_statistic: Callable[[np.ndarray], np.ndarray],
    *,
    seed: SeedLike,
    confidence: float,
    n_resamples: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rliable's stratified bootstrap: resample runs within each group, pool them, apply a statistic.

    Args:
        groups: One 1-D array of runs per group (user).
        pooled_statistic: Maps pooled runs of shape ``(..., N)`` to ``k`` statistics of shape
            ``(..., k)``.
        seed: Seeds the resampling generator.
        confidence: The confidence level.
        n_resamples: How many resamples.

    Returns:
        ``(point, low, high)``, each of shape ``(k,)`` (percentile interval). Groups with one run
        enter every resample unchanged; if all have one run the interval collapses to the point.
    """
    _check_confidence(confidence)
    point = np.asarray(pooled_statistic(np.concatenate(groups)), dtype=float)
    varying = [g for g in groups if g.size > 1]
    constant = np.concatenate([g for g in groups if g.size == 1] or [np.empty(0)])
    if not varying or n_resamples == 0:
        return point, point.copy(), point.copy()

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        # samples: one (batch, n_i) array per varying group; scipy wants the statistics first.
        fixed = np.broadcast_to(constant, (*samples[0].shape[:-1], constant.size))
        return np.moveaxis(pooled_statistic(np.concatenate([*samples, fixed], axis=-1)), -1, 0)

    n_runs = sum(g.size for g in groups)
    batch = max(1, min(n_resamples, 2**22 // max(1, n_runs * point.size)))
    result = stats.bootstrap(
        tuple(varying),
        statistic,
        n_resamples=n_resamples,
        batch=batch,
        vectorized=True,
        paired=False,
        axis=-1,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = (
        np.asarray(v, dtype=float).reshape(point.shape) for v in result.confidence_interval
    )
    return point, low, high


def stratified_iqm_ci(
    matrix_or_groups: object,
    *,
    seed: SeedLike,
    confidence: float = 0.95,
    n_resamples: int = 2000,
) -> tuple[float, float, float]:
    """The IQM over all runs and its stratified-bootstrap percentile CI (rliable's recipe).

    Runs (seeds) are resampled with replacement *within* each user (rliable's task) and the IQM is
    taken over all resampled runs together; users are never resampled, so between-user spread does
    not widen the interval. A user with one run contributes that run to every resample.

    This reimplements rliable's ``get_interval_estimates`` on :func:`scipy.stats.bootstrap`
    because rliable's ``StratifiedBootstrap`` ignores the ``random_state`` it is given (results are
    not reproducible) and its ``arch`` dependency breaks with pandas 3.

    Args:
        matrix_or_groups: A users × seeds array, or a sequence of 1-D arrays (one per user; lengths
            may differ).
        seed: Seeds the resampling generator.
        confidence: The confidence level, in (0, 1).
        n_resamples: How many bootstrap resamples.

    Returns:
        ``(iqm, low, high)``.

    Raises:
        StatsError: No users, an empty user, NaN, or ``confidence`` outside (0, 1).
    """
    groups = _as_groups(matrix_or_groups)
    point, low, high = _stratified_bootstrap(
        groups, _iqm_last_axis, seed=seed, confidence=confidence, n_resamples=n_resamples
    )
    return float(point[0]), float(low[0]), float(high[0])


# --------------------------------------------------------------------------------------------
# Tests and per-user summaries
# --------------------------------------------------------------------------------------------


def paired_tests(diffs: object) -> dict[str, float]:
    """The paired t-test and the Wilcoxon signed-rank test of paired differences against zero.

    ``ttest_1samp(diffs, 0)`` equals ``ttest_rel`` on the pairs; the Wilcoxon test drops zero
    differences (``zero_method="wilcox"``). No warning escapes.

    Args:
        diffs: One paired difference per independent unit (user), NaN-free.

    Returns:
        ``{"t_stat", "t_p", "wilcoxon_stat", "wilcoxon_p"}``. Fewer than 2 differences: all NaN.
        All differences zero: statistics 0 and p-values 1 (no evidence of a difference). Constant
        nonzero differences: the t-test is undefined (NaN) and the Wilcoxon test is scipy's.

    Raises:
        StatsError: ``diffs`` holds NaN.
    """
    d = _as_sample(diffs, name="diffs") if np.size(diffs) else np.empty(0)
    nan = float("nan")
    if d.size < 2:
        return {"t_stat": nan, "t_p": nan, "wilcoxon_stat": nan, "wilcoxon_p": nan}
    if not np.any(d):
        return {"t_stat": 0.0, "t_p": 1.0, "wilcoxon_stat": 0.0, "wilcoxon_p": 1.0}
    constant = np.ptp(d) <= 1e-12 * np.max(np.abs(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if constant:
            t_stat, t_p = nan, nan
        else:
            t_res = stats.ttest_1samp(d, 0.0)
            t_stat, t_p = float(t_res.statistic), float(t_res.pvalue)
        w_res = stats.wilcoxon(d)
    return {
        "t_stat": t_stat,
        "t_p": t_p,
        "wilcoxon_stat": float(w_res.statistic),
        "wilcoxon_p": float(w_res.pvalue),
    }


def holm(pvalues: object) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979); NaN entries pass through untouched.

    Args:
        pvalues: The family's p-values, in [0, 1] or NaN.

    Returns:
        The adjusted p-values, same order and length, NaN where the input was NaN.

    Raises:
        StatsError: A p-value lies outside [0, 1].
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise StatsError(f"p-values must lie in [0, 1], got {p[ok][(p[ok] < 0) | (p[ok] > 1)]}")
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def worst_quarter(user_level_gains: object) -> tuple[float, float, float]:
    """How the worst-off users fare.

    Args:
        user_level_gains: One gain per user (seeds already averaged), NaN-free.

    Returns:
        ``(q25, mean_of_lowest_quarter, share_hurt)``: the 25th percentile (linear interpolation),
        the mean of the ``ceil(n / 4)`` lowest gains (at least one), and the share of users with a
        negative gain.

    Raises:
        StatsError: The input is empty or holds NaN.
    """
    g = np.sort(_as_sample(user_level_gains, name="user_level_gains"))
    k = max(1, math.ceil(g.size / 4))
    return float(np.percentile(g, 25)), float(g[:k].mean()), float(np.mean(g < 0))


# --------------------------------------------------------------------------------------------
# The study summary and performance profiles
# --------------------------------------------------------------------------------------------


def _summary_row(
    runs: pd.DataFrame,
    users: pd.DataFrame,
    *,
    seed: np.random.SeedSequence,
    confidence: float,
    n_resamples: int,
    iqm_resamples: int,
) -> dict[str, object]:
    """The summary statistics of one (condition, policy) from its run- and user-level gains."""
    mean_seed, iqm_seed = seed.spawn(2)
    g = users["gain"].to_numpy(dtype=float)
    ci_low, ci_high = bootstrap_ci(
        g, seed=mean_seed, confidence=confidence, n_resamples=n_resamples
    )
    groups = [grp["gain"].to_numpy(dtype=float) for _, grp in runs.groupby("user_id", sort=False)]
    iqm_gain, iqm_low, iqm_high = stratified_iqm_ci(
        groups, seed=iqm_seed, confidence=confidence, n_resamples=iqm_resamples
    )
    q25, worst, hurt = worst_quarter(g)
    return {
        "n_users": len(users),
        "n_seeds": int(runs["seed"].nunique()),
        "baseline_value": float(users["baseline_value"].mean()),
        "value": float(users["value"].mean()),
        "mean_gain": float(g.mean()),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "iqm_gain": iqm_gain,
        "iqm_ci_low": iqm_low,
        "iqm_ci_high": iqm_high,
        **paired_tests(g),
        "q25_gain": q25,
        "worst_quarter_gain": worst,
        "share_hurt": hurt,
    }


def summarize(
    per_user: pd.DataFrame,
    *,
    metric: str = "macro_f1",
    baseline: str = "equal-weights",
    seed: int = 0,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    iqm_resamples: int = 2000,
) -> pd.DataFrame:
    """One row of gain statistics per (condition, policy other than the baseline).

    The mean gain, its bootstrap CI, the paired tests and the worst-quarter columns are over
    user-level gains (seeds averaged within users); ``baseline_value`` and ``value`` are the
    unscaled metric means over the same users, so ``mean_gain == (value - baseline_value) * 100``.
    The IQM and its CI are over users × seeds gains with the stratified bootstrap. Holm's
    correction runs across the policies within each condition. Each (condition, policy) resamples
    with its own seed, derived from ``seed`` and a stable hash of the two names.

    Args:
        per_user: The per-user table (see :func:`paired_gains`).
        metric: The metric column.
        baseline: The policy that gains are measured against.
        seed: The root seed of all resampling.
        confidence: The confidence level of every interval.
        n_resamples: Bootstrap resamples for the mean gain's CI.
        iqm_resamples: Stratified-bootstrap resamples for the IQM's CI.

    Returns:
        A frame with columns :data:`SUMMARY_COLUMNS`, conditions and policies in order of first
        appearance in ``per_user``.

    Raises:
        StatsError: As :func:`paired_gains`, or ``confidence`` outside (0, 1).
    """
    runs = paired_gains(per_user, metric=metric, baseline=baseline)
    users = user_gains(runs)
    policies = [p for p in _first_seen(per_user["policy"]) if p != baseline]
    rows: list[dict[str, object]] = []
    for condition in _first_seen(per_user["condition"]):
        block: list[dict[str, object]] = []
        for policy in policies:
            run_mask = (runs["condition"] == condition) & (runs["policy"] == policy)
            if not run_mask.any():
                continue
            user_mask = (users["condition"] == condition) & (users["policy"] == policy)
            stats_row = _summary_row(
                runs[run_mask],
                users[user_mask],
                seed=_child_seed(seed, "summary", str(condition), str(policy)),
                confidence=confidence,
                n_resamples=n_resamples,
                iqm_resamples=iqm_resamples,
            )
            block.append({"condition": condition, "policy": policy, **stats_row})
        for column in ("t_p", "wilcoxon_p"):
            adjusted = holm([row[column] for row in block])
            for row, p in zip(block, adjusted, strict=True):
                row[f"{column}_holm"] = float(p)
        rows.extend(block)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def performance_profile(
    per_user: pd.DataFrame,
    *,
    metric: str = "macro_f1",
    taus: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """rliable's performance profile: the fraction of runs scoring above each threshold ``tau``.

    A run is one (user, seed) row. The fraction is over all runs of a (condition, policy) (with
    the same number of seeds per user this equals rliable's average over tasks of the per-task
    fraction). Its percentile CI comes from the stratified bootstrap over seeds within users, all
    thresholds sharing the same resamples so each band is one coherent curve.

    Args:
        per_user: The per-user table (see :func:`paired_gains`); every policy is profiled,
            the baseline included.
        metric: The metric column.
        taus: The thresholds; default 101 points from the metric's observed minimum to maximum
            over the whole table.
        seed: The root seed; each (condition, policy) derives its own from a stable hash.
        n_resamples: Stratified-bootstrap resamples.
        confidence: The confidence level of the bands.

    Returns:
        Columns ``condition``, ``policy``, ``tau``, ``fraction``, ``ci_low``, ``ci_high``; one row
        per (condition, policy, tau), in order of first appearance.

    Raises:
        StatsError: A column is missing, the metric has NaN, rows are duplicated, or ``taus`` is
            empty or holds NaN.
    """
    _check_table(per_user, metric)
    values = per_user[metric].astype(float)
    if taus is None:
        grid = np.linspace(values.min(), values.max(), 101)
    else:
        grid = _as_sample(taus, name="taus")

    def above(x: np.ndarray) -> np.ndarray:
        return np.mean(x[..., None, :] > grid[:, None], axis=-1)

    frames = []
    for (condition, policy), block in per_user.groupby(["condition", "policy"], sort=False):
        groups = [
            grp[metric].to_numpy(dtype=float) for _, grp in block.groupby("user_id", sort=False)
        ]
        fraction, low, high = _stratified_bootstrap(
            groups,
            above,
            seed=_child_seed(seed, "profile", str(condition), str(policy)),
            confidence=confidence,
            n_resamples=n_resamples,
        )
        frames.append(
            pd.DataFrame(
                {
                    "condition": condition,
                    "policy": policy,
                    "tau": grid,
                    "fraction": fraction,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
