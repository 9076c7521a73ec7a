"""Tests of studies.stats on data whose answer is known in advance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studies.stats import (
    SUMMARY_COLUMNS,
    StatsError,
    bootstrap_ci,
    holm,
    iqm,
    paired_gains,
    paired_tests,
    performance_profile,
    stratified_iqm_ci,
    summarize,
    user_gains,
    worst_quarter,
)

BASE = "equal-weights"
CI_COLUMNS = ["ci_low", "ci_high", "iqm_ci_low", "iqm_ci_high"]


def make_table(
    gains: dict[str, np.ndarray],
    *,
    baseline: np.ndarray,
    condition: str = "pilot",
) -> pd.DataFrame:
    """A per-user table: the baseline's macro-F1 and each policy's = baseline + gain / 100.

    Args:
        gains: Policy name -> gains in points, shape (users, seeds).
        baseline: The baseline's macro-F1, shape (users, seeds).
        condition: The condition label of every row.
    """
    n_users, n_seeds = baseline.shape
    rows = []
    for policy, gain in {BASE: np.zeros_like(baseline), **gains}.items():
        for u in range(n_users):
            for s in range(n_seeds):
                rows.append(
                    {
                        "condition": condition,
                        "policy": policy,
                        "user_id": f"u{u:03d}",
                        "subgroup": "young" if u % 2 else "old",
                        "seed": s,
                        "macro_f1": baseline[u, s] + gain[u, s] / 100.0,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def normal_study() -> pd.DataFrame:
    """200 users, 1 seed: "better" gains ~ N(2, 1), "same" gains ~ N(0, 1) points.

    Generator seed 4 was chosen so that the zero-mean policy's t-test gives p ≈ 0.55 (> 0.01);
    about one seed in a hundred would not (seed 7 gives p ≈ 0.004), which is what p means.
    """
    rng = np.random.default_rng(4)
    shape = (200, 1)
    baseline = rng.uniform(0.4, 0.6, size=shape)
    return make_table(
        {"better": rng.normal(2.0, 1.0, size=shape), "same": rng.normal(0.0, 1.0, size=shape)},
        baseline=baseline,
    )


def summarize_fast(per_user: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    return summarize(per_user, seed=seed, n_resamples=1999, iqm_resamples=500)


# ---------------------------------------------------------------------------------------------
# Gains
# ---------------------------------------------------------------------------------------------


def test_paired_gains_matches_on_condition_user_seed() -> None:
    baseline = np.array([[0.5, 0.6], [0.7, 0.4]])
    table = make_table({"q": np.array([[1.0, 2.0], [3.0, 4.0]])}, baseline=baseline)
    # Shuffle rows: pairing must not depend on row order.
    gains = paired_gains(table.sample(frac=1.0, random_state=0))
    assert list(gains.columns) == [
        "condition",
        "policy",
        "user_id",
        "subgroup",
        "seed",
        "value",
        "baseline_value",
        "gain",
    ]
    got = gains.set_index(["user_id", "seed"])["gain"].sort_index()
    np.testing.assert_allclose(got.to_numpy(), [1.0, 2.0, 3.0, 4.0])
    users = user_gains(gains).set_index("user_id")
    np.testing.assert_allclose(users.loc[["u000", "u001"], "gain"], [1.5, 3.5])
    assert users["n_seeds"].tolist() == [2, 2]


def test_constant_gain_of_five_points() -> None:
    baseline = np.full((12, 3), 0.5)
    table = make_table({"plus5": np.full((12, 3), 5.0)}, baseline=baseline)
    row = summarize_fast(table).iloc[0]
    assert row["mean_gain"] == pytest.approx(5.0)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((5.0, 5.0))
    assert (row["iqm_gain"], row["iqm_ci_low"], row["iqm_ci_high"]) == pytest.approx((5, 5, 5))
    assert row["share_hurt"] == 0.0
    assert row["worst_quarter_gain"] == pytest.approx(5.0)
    assert row["value"] == pytest.approx(0.55)
    assert row["baseline_value"] == pytest.approx(0.5)
    assert (row["n_users"], row["n_seeds"]) == (12, 3)


# ---------------------------------------------------------------------------------------------
# Known-mean normal gains
# ---------------------------------------------------------------------------------------------


def test_normal_gains_ci_covers_mean_with_expected_width(normal_study: pd.DataFrame) -> None:
    out = summarize_fast(normal_study).set_index("policy")
    better = out.loc["better"]
    assert better["ci_low"] < 2.0 < better["ci_high"]
    expected_width = 2 * 1.96 * 1.0 / math.sqrt(200)
    assert better["ci_high"] - better["ci_low"] == pytest.approx(expected_width, rel=0.3)
    assert better["t_p"] < 1e-6
    assert better["wilcoxon_p"] < 1e-6
    # One seed per user: the stratified bootstrap has nothing to resample (rliable's semantics).
    assert better["iqm_ci_low"] == better["iqm_gain"] == better["iqm_ci_high"]
    assert out.loc["same", "t_p"] > 0.01
    assert out.loc["same", "ci_low"] < 0.0 < out.loc["same", "ci_high"]


def test_tests_equal_scipy_on_the_pairs(normal_study: pd.DataFrame) -> None:
    out = summarize_fast(normal_study).set_index("policy")
    wide = normal_study.pivot_table(index="user_id", columns="policy", values="macro_f1")
    for policy in ("better", "same"):
        t_ref = stats.ttest_rel(wide[policy], wide[BASE])
        w_ref = stats.wilcoxon((wide[policy] - wide[BASE]) * 100.0)
        assert out.loc[policy, "t_stat"] == pytest.approx(t_ref.statistic, rel=1e-9)
        assert out.loc[policy, "t_p"] == pytest.approx(t_ref.pvalue, rel=1e-9, abs=1e-300)
        assert out.loc[policy, "wilcoxon_stat"] == pytest.approx(w_ref.statistic)
        assert out.loc[policy, "wilcoxon_p"] == pytest.approx(w_ref.pvalue, rel=1e-9, abs=1e-300)
    # Holm across the two policies of the condition: the smaller p doubles, the larger stays.
    np.testing.assert_allclose(out["t_p_holm"], holm(out["t_p"]))
    assert out.loc["better", "t_p_holm"] == pytest.approx(2 * out.loc["better", "t_p"])
    assert out.loc["same", "t_p_holm"] == pytest.approx(out.loc["same", "t_p"])


def test_summary_columns_and_order() -> None:
    rng = np.random.default_rng(1)
    baseline = rng.uniform(0.4, 0.6, size=(8, 2))
    frames = [
        make_table(
            {"b": rng.normal(1, 1, (8, 2)), "a": rng.normal(0, 1, (8, 2))},
            baseline=baseline,
            condition=c,
        )
        for c in ("second", "first")
    ]
    out = summarize_fast(pd.concat(frames, ignore_index=True))
    assert list(out.columns) == SUMMARY_COLUMNS
    assert list(zip(out["condition"], out["policy"], strict=True)) == [
        ("second", "b"),
        ("second", "a"),
        ("first", "b"),
        ("first", "a"),
    ]


# ---------------------------------------------------------------------------------------------
# Tests, Holm, worst quarter
# ---------------------------------------------------------------------------------------------


def test_holm_by_hand() -> None:
    # sorted: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> max(0.09, 0.08) = 0.09; 0.5*1 = 0.5
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04])
    assert np.isnan(holm([np.nan])).all()
    with pytest.raises(StatsError, match="p-values"):
        holm([0.2, 1.5])


def test_paired_tests_edge_cases() -> None:
    assert all(np.isnan(v) for v in paired_tests([0.3]).values())
    assert paired_tests([0.0, 0.0, 0.0]) == {
        "t_stat": 0.0,
        "t_p": 1.0,
        "wilcoxon_stat": 0.0,
        "wilcoxon_p": 1.0,
    }
    constant = paired_tests([2.0, 2.0, 2.0, 2.0])
    assert np.isnan(constant["t_stat"]) and np.isnan(constant["t_p"])
    assert constant["wilcoxon_p"] == pytest.approx(stats.wilcoxon([2.0] * 4).pvalue)
    d = np.array([0.5, -0.2, 1.3, 0.9, 0.0, 2.1])
    got = paired_tests(d)
    assert got["t_p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert got["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)


def test_paired_tests_raise_no_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for diffs in ([0.0, 0.0], [1.0, 1.0], [1.0, 1.0 + 1e-15], [0.0, 0.0, 3.0], [1.0]):
            paired_tests(diffs)


def test_worst_quarter() -> None:
    q25, worst, hurt = worst_quarter([8, -4, 2, 1, 3, 5, 6, -2])
    assert q25 == pytest.approx(np.percentile([-4, -2, 1, 2, 3, 5, 6, 8], 25))
    assert worst == pytest.approx(-3.0)
    assert hurt == pytest.approx(0.25)
    # ceil(5 / 4) = 2 lowest; one user is its own worst quarter.
    assert worst_quarter([1, 2, 3, 4, 5])[1] == pytest.approx(1.5)
    assert worst_quarter([-1.0]) == (-1.0, -1.0, 1.0)
    # A zero gain hurts nobody.
    assert worst_quarter([0.0, 1.0, -1.0, 2.0])[2] == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------
# IQM and bootstraps
# ---------------------------------------------------------------------------------------------


def test_iqm_of_one_to_eight() -> None:
    assert iqm(np.arange(1, 9)) == pytest.approx(np.mean([3, 4, 5, 6])) == pytest.approx(4.5)
    # Unlike the mean (16), the IQM ignores the outlier.
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)


def test_bootstrap_ci_degenerate_and_fallback() -> None:
    assert bootstrap_ci([3.0, 3.0, 3.0], seed=0) == (3.0, 3.0)
    assert bootstrap_ci([7.0], seed=0) == (7.0, 7.0)
    x = np.random.default_rng(0).normal(size=40)
    # np.min makes BCa degenerate; the percentile fallback must return finite bounds silently.
    low, high = bootstrap_ci(x, seed=0, n_resamples=999, statistic=np.min)
    assert np.isfinite([low, high]).all() and low <= high
    assert bootstrap_ci(x, seed=1, n_resamples=999) == bootstrap_ci(x, seed=1, n_resamples=999)
    with pytest.raises(StatsError, match="NaN"):
        bootstrap_ci([1.0, np.nan, 2.0], seed=0)


def test_stratified_ci_collapses_for_one_user_with_equal_seeds() -> None:
    assert stratified_iqm_ci([np.full(6, 2.5)], seed=0) == pytest.approx((2.5, 2.5, 2.5))
    # Users with a single seed are constants: no variation, no width (3 runs: nothing trimmed).
    assert stratified_iqm_ci(np.array([[1.0], [4.0], [9.0]]), seed=0) == pytest.approx(
        (14 / 3, 14 / 3, 14 / 3)
    )


def test_stratified_bootstrap_resamples_within_users() -> None:
    rng = np.random.default_rng(3)
    matrix = np.vstack([rng.normal(0.0, 0.1, 5), rng.normal(10.0, 0.1, 5)])
    point, low, high = stratified_iqm_ci(matrix, seed=0, n_resamples=1000)
    # Every stratified resample keeps five runs per user, so the IQM stays near 5.
    assert point == pytest.approx(5.0, abs=0.2)
    assert 4.5 < low <= point <= high < 5.5
    # Pooling the ten runs and resampling across users swings the IQM between ~0 and ~10.
    u_low, u_high = bootstrap_ci(matrix.ravel(), seed=0, n_resamples=1000, statistic=iqm)
    assert u_high - u_low > 5 * (high - low)
    assert u_high - u_low > 5.0
    # Ragged input (users with different seed counts) is accepted and seeded.
    ragged = [matrix[0], matrix[1, :3], np.array([5.0])]
    assert stratified_iqm_ci(ragged, seed=4, n_resamples=200) == stratified_iqm_ci(
        ragged, seed=4, n_resamples=200
    )


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_summarize_is_deterministic(normal_study: pd.DataFrame) -> None:
    first = summarize_fast(normal_study, seed=0)
    pd.testing.assert_frame_equal(first, summarize_fast(normal_study, seed=0))
    other = summarize_fast(normal_study, seed=1)
    rest = [c for c in SUMMARY_COLUMNS if c not in CI_COLUMNS]
    pd.testing.assert_frame_equal(first[rest], other[rest])
    assert not first[CI_COLUMNS].equals(other[CI_COLUMNS])


def test_policy_seed_does_not_depend_on_other_policies(normal_study: pd.DataFrame) -> None:
    alone = summarize_fast(normal_study[normal_study["policy"] != "same"])
    both = summarize_fast(normal_study)
    cols = ["ci_low", "ci_high", "iqm_ci_low", "iqm_ci_high"]
    pd.testing.assert_frame_equal(alone[cols], both.loc[both["policy"] == "better", cols])


def test_each_policy_has_its_own_seed() -> None:
    rng = np.random.default_rng(2)
    gains = rng.normal(1, 1, (30, 3))
    table = make_table({"a": gains, "b": gains}, baseline=np.full((30, 3), 0.5))
    out = summarize_fast(table).set_index("policy")
    assert out.loc["a", "mean_gain"] == pytest.approx(out.loc["b", "mean_gain"])
    assert out.loc["a", "ci_low"] != out.loc["b", "ci_low"]
    assert out.loc["a", "iqm_ci_low"] != out.loc["b", "iqm_ci_low"]


# ---------------------------------------------------------------------------------------------
# Performance profile
# ---------------------------------------------------------------------------------------------


def test_performance_profile_known_fractions() -> None:
    baseline = np.full((4, 3), 0.5)
    gains = np.full((4, 3), 20.0)  # every run of "up" scores 0.7
    table = make_table({"up": gains}, baseline=baseline)
    profile = performance_profile(table, n_resamples=200)
    assert list(profile.columns) == ["condition", "policy", "tau", "fraction", "ci_low", "ci_high"]
    up = profile[profile["policy"] == "up"]
    assert len(up) == 101
    assert up["tau"].iloc[0] == pytest.approx(0.5) and up["tau"].iloc[-1] == pytest.approx(0.7)
    expected = (up["tau"] < 0.7 - 1e-12).astype(float).to_numpy()
    np.testing.assert_allclose(up["fraction"], expected)
    np.testing.assert_allclose(up["ci_low"], expected)
    np.testing.assert_allclose(up["ci_high"], expected)


def test_performance_profile_bands_and_determinism() -> None:
    rng = np.random.default_rng(5)
    baseline = rng.uniform(0.3, 0.7, size=(10, 4))
    table = make_table({"q": rng.normal(3, 2, (10, 4))}, baseline=baseline)
    taus = [0.3, 0.5, 0.7]
    profile = performance_profile(table, taus=taus, seed=2, n_resamples=300)
    base = profile[profile["policy"] == BASE]
    np.testing.assert_allclose(base["fraction"], [np.mean(baseline > t) for t in taus])
    assert (profile["ci_low"] <= profile["fraction"] + 1e-12).all()
    assert (profile["fraction"] <= profile["ci_high"] + 1e-12).all()
    pd.testing.assert_frame_equal(
        profile, performance_profile(table, taus=taus, seed=2, n_resamples=300)
    )


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_missing_baseline_is_named() -> None:
    table = make_table({"q": np.ones((3, 1))}, baseline=np.full((3, 1), 0.5))
    table = table[table["policy"] != BASE]
    with pytest.raises(StatsError, match="equal-weights") as info:
        summarize(table)
    assert "'q'" in str(info.value) and "add" in str(info.value)


def test_missing_pair_is_named() -> None:
    table = make_table({"q": np.ones((3, 2))}, baseline=np.full((3, 2), 0.5))
    drop = (table["policy"] == BASE) & (table["user_id"] == "u001") & (table["seed"] == 1)
    with pytest.raises(StatsError, match=r"user 'u001'.*seed 1"):
        paired_gains(table[~drop])


def test_nan_metric_is_named() -> None:
    table = make_table({"q": np.ones((3, 1))}, baseline=np.full((3, 1), 0.5))
    table.loc[(table["policy"] == "q") & (table["user_id"] == "u002"), "macro_f1"] = np.nan
    with pytest.raises(StatsError, match=r"'macro_f1'.*NaN.*policy 'q', user 'u002'"):
        summarize(table)


def test_duplicate_rows_and_missing_metric() -> None:
    table = make_table({"q": np.ones((2, 1))}, baseline=np.full((2, 1), 0.5))
    with pytest.raises(StatsError, match="duplicate"):
        paired_gains(pd.concat([table, table.iloc[[0]]]))
    with pytest.raises(StatsError, match="accuracy"):
        paired_gains(table, metric="accuracy")
