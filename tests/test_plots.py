"""Tests of the study figures (studies/plots.py) on small synthetic tidy tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mer_gym.labels import EMOTIONS
from studies import plots

POLICIES = ("equal-weights", "q-learning", "bandit")


# --------------------------------------------------------------------------------------------------
# Synthetic tables (seeded; also used to render the preview figures by hand)
# --------------------------------------------------------------------------------------------------


def make_gains(
    n_users: int = 6, n_seeds: int = 2, conditions: tuple[str, ...] = ("base",), rng_seed: int = 0
) -> pd.DataFrame:
    """One row per condition x policy x user x seed, gains against equal weights."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for c, condition in enumerate(conditions):
        for p, policy in enumerate(POLICIES[1:]):
            effect = rng.normal(2.0 * (p + 1) - c, 2.0, size=n_users)
            for u in range(n_users):
                for seed in range(n_seeds):
                    base = float(rng.uniform(0.4, 0.7))
                    gain = float(effect[u] + rng.normal(0.0, 1.5))
                    rows.append(
                        {
                            "condition": condition,
                            "policy": policy,
                            "user_id": f"u{u:02d}",
                            "subgroup": "A" if u % 2 else "B",
                            "seed": seed,
                            "value": base + gain / 100,
                            "baseline_value": base,
                            "gain": gain,
                        }
                    )
    return pd.DataFrame(rows)


def make_days(
    n_users: int = 6, n_seeds: int = 2, n_days: int = 14, conditions: tuple[str, ...] = ("base",)
) -> pd.DataFrame:
    """One row per condition x policy x user x seed x day."""
    rng = np.random.default_rng(1)
    rows = []
    for condition in conditions:
        for p, policy in enumerate(POLICIES):
            for u in range(n_users):
                target = rng.uniform(0.15, 0.85)
                for seed in range(n_seeds):
                    w = 0.5
                    for day in range(n_days):
                        if policy != "equal-weights":
                            w = float(np.clip(w + 0.3 * (target - w) + rng.normal(0, 0.04), 0, 1))
                        f1 = 0.5 + 0.01 * p * day + rng.normal(0, 0.04)
                        n = int(rng.integers(10, 30))
                        rows.append(
                            {
                                "condition": condition,
                                "policy": policy,
                                "user_id": u,
                                "subgroup": "A",
                                "seed": seed,
                                "day": day,
                                "week": day // 7,
                                "n": n,
                                "accuracy": float(np.clip(f1 + 0.05, 0, 1)),
                                "macro_f1": float(np.clip(f1, 0, 1)),
                                "w_face_mean": w,
                                "w_face_end": w,
                                "explicit": int(rng.binomial(n, 0.1)),
                            }
                        )
    return pd.DataFrame(rows)


def make_rates(n_users: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = []
    for p, policy in enumerate(POLICIES[1:]):
        for u in range(n_users):
            rate = float(rng.uniform(0.02, 0.3))
            gain = float(10 * (p + 1) * rate + rng.normal(0, 1))
            rows.append(
                {
                    "condition": "base",
                    "policy": policy,
                    "user_id": u,
                    "gain": gain,
                    "explicit_rate": rate,
                }
            )
    return pd.DataFrame(rows)


def make_profile() -> pd.DataFrame:
    taus = np.linspace(0.3, 0.9, 25)
    rows = []
    for p, policy in enumerate(POLICIES):
        centre = 0.55 + 0.04 * p
        for tau in taus:
            fraction = float(1 / (1 + np.exp((tau - centre) / 0.05)))
            rows.append(
                {
                    "condition": "base",
                    "policy": policy,
                    "tau": float(tau),
                    "fraction": fraction,
                    "ci_low": max(0.0, fraction - 0.08),
                    "ci_high": min(1.0, fraction + 0.08),
                }
            )
    return pd.DataFrame(rows)


def make_summary() -> pd.DataFrame:
    conditions = ("p_explicit=0.01", "p_explicit=0.05", "p_explicit=0.1", "p_explicit=0.3")
    rows = []
    for c, condition in enumerate(conditions):
        for p, policy in enumerate(POLICIES[1:]):
            mean = 1.0 + c * (p + 1)
            rows.append(
                {
                    "condition": condition,
                    "policy": policy,
                    "mean_gain": mean,
                    "ci_low": mean - 1.2,
                    "ci_high": mean + 1.4,
                }
            )
    return pd.DataFrame(rows)


def make_confusions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    out = {}
    for p, policy in enumerate(POLICIES):
        counts = rng.integers(0, 15, size=(6, 6)) + np.diag(rng.integers(30 + 10 * p, 60, size=6))
        out[policy] = counts
    return out


# Each case: (function, input builder, keyword options, texts the SVG must show).
CASES: dict[str, tuple[Callable[..., list[Path]], Callable[[], Any], dict[str, Any], list[str]]] = {
    "gain_per_user": (
        plots.gain_per_user,
        # five seeds: with two, a bootstrap CI is [min, max] whatever the resampling seed
        lambda: make_gains(n_seeds=5),
        {"seed": 0},
        ["macro-F1 gain over equal weights (points)", "user", "q-learning", "u05"],
    ),
    "learning_curves": (
        plots.learning_curves,
        make_days,
        {"seed": 0},
        ["day of pilot", "macro-F1 (daily)", "bandit"],
    ),
    "weight_trajectories": (
        plots.weight_trajectories,
        make_days,
        {"max_users": 4},
        ["face weight w_face (0–1)", "day of pilot", "user 3"],
    ),
    "confusion_matrices": (
        plots.confusion_matrices,
        make_confusions,
        {},
        ["true emotion", "predicted emotion", *EMOTIONS],
    ),
    "gain_vs_feedback": (
        plots.gain_vs_feedback,
        make_rates,
        {},
        ["explicit feedback rate (answers per interaction)", "macro-F1 gain"],
    ),
    "performance_profiles": (
        plots.performance_profiles,
        make_profile,
        {},
        ["macro-F1 threshold τ", "fraction of runs &gt; τ"],
    ),
    "gain_vs_condition": (
        plots.gain_vs_condition,
        make_summary,
        {"xlabel": "explicit feedback probability"},
        ["explicit feedback probability", "p_explicit=0.05", "macro-F1 gain"],
    ),
}


# --------------------------------------------------------------------------------------------------
# Every figure
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Each case drawn once (drawing is the slow part), with pyplot's figures checked after."""
    folder = tmp_path_factory.mktemp("figures")
    open_before = plt.get_fignums()
    paths = {}
    for name, (function, build, kwargs, _) in CASES.items():
        data = build()
        paths[name] = function(data, folder / "a" / name, **kwargs)
        if isinstance(data, pd.DataFrame):  # the caller's frame is left untouched
            pd.testing.assert_frame_equal(data, build())
    assert plt.get_fignums() == open_before, "a figure was left open in pyplot"
    return paths


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_files_aspect_and_labels(name: str, rendered: dict[str, list[Path]]) -> None:
    png, svg_path = rendered[name]
    assert png.name == f"{name}.png" and svg_path.name == f"{name}.svg"
    assert png.parent == svg_path.parent
    for path in (png, svg_path):
        assert path.is_file() and path.stat().st_size > 1000

    height, width = mpimg.imread(png).shape[:2]
    assert 200 < height < 3000 and 200 < width < 3000
    svg = svg_path.read_text(encoding="utf-8")
    assert svg.count("<svg") == 1
    width_pt = float(svg.split('width="', 1)[1].split("pt", 1)[0])
    height_pt = float(svg.split('height="', 1)[1].split("pt", 1)[0])
    # the PNG and the SVG are the same figure: same aspect, at DPI pixels per inch
    assert width / height == pytest.approx(width_pt / height_pt, rel=0.01)
    assert width == pytest.approx(width_pt / 72 * plots.DPI, abs=1)
    for text in CASES[name][3]:
        assert text in svg, f"{text!r} missing from the SVG of {name}"
    assert "<dc:date>" not in svg and b"Software" not in png.read_bytes()


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_is_byte_identical_when_drawn_again(
    name: str, rendered: dict[str, list[Path]], tmp_path: Path
) -> None:
    function, build, kwargs, _ = CASES[name]
    again = function(build(), tmp_path / "deeper" / name, **kwargs)
    for a, b in zip(rendered[name], again, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two runs"


@pytest.mark.parametrize(
    "name, column",
    [
        ("gain_per_user", "gain"),
        ("gain_per_user", "user_id"),
        ("learning_curves", "macro_f1"),
        ("weight_trajectories", "w_face_end"),
        ("gain_vs_feedback", "explicit_rate"),
        ("performance_profiles", "tau"),
        ("gain_vs_condition", "ci_high"),
    ],
)
def test_missing_column_is_named(name: str, column: str, tmp_path: Path) -> None:
    function, build, kwargs, _ = CASES[name]
    data = build().drop(columns=[column])
    with pytest.raises(ValueError, match=f"lacks required column.*'{column}'"):
        function(data, tmp_path / name, **kwargs)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", sorted(set(CASES) - {"confusion_matrices"}))
def test_empty_frame_is_refused(name: str, tmp_path: Path) -> None:
    function, build, kwargs, _ = CASES[name]
    empty = build().iloc[0:0]
    with pytest.raises(ValueError, match="no rows to plot"):
        function(empty, tmp_path / name, **kwargs)


def test_all_missing_values_is_refused(tmp_path: Path) -> None:
    gains = make_gains().assign(gain=np.nan)
    with pytest.raises(ValueError, match="no rows to plot"):
        plots.gain_per_user(gains, tmp_path / "g")


def test_not_a_frame_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        plots.learning_curves(make_days().to_dict("records"), tmp_path / "x")  # type: ignore[arg-type]


def test_extra_columns_are_ignored(rendered: dict[str, list[Path]], tmp_path: Path) -> None:
    gains = make_gains(n_seeds=5).assign(junk="x", other=1.0)
    paths = plots.gain_per_user(gains, tmp_path / "gain_per_user")
    assert paths[0].read_bytes() == rendered["gain_per_user"][0].read_bytes()


# --------------------------------------------------------------------------------------------------
# Specific layouts
# --------------------------------------------------------------------------------------------------


def test_gain_per_user_many_users_switches_to_sorted_dots(
    rendered: dict[str, list[Path]], tmp_path: Path
) -> None:
    few_svg = rendered["gain_per_user"][1].read_text()
    gains = make_gains(n_users=32, n_seeds=4)
    many = plots.gain_per_user(gains, tmp_path / "many", title="Population")
    again = plots.gain_per_user(gains, tmp_path / "again", title="Population")
    assert many[1].read_bytes() == again[1].read_bytes()  # the per-user CIs are seeded too
    many_svg = many[1].read_text()
    assert "users, sorted by gain" in many_svg and "users, sorted by gain" not in few_svg
    assert ">user<" in few_svg and ">user<" not in many_svg
    assert "Population" in many_svg
    assert ">u33<" not in many_svg
    assert "gain &gt; 0 for" in many_svg and "of 32 users" in many_svg
    assert "base · q-learning" in many_svg and "base · bandit" in many_svg  # a panel per policy


def test_gain_per_user_facets_conditions(rendered: dict[str, list[Path]], tmp_path: Path) -> None:
    gains = make_gains(conditions=("p_explicit=0.05", "p_explicit=0.3"))
    png, svg = plots.gain_per_user(gains, tmp_path / "g")
    text = svg.read_text()
    assert "p_explicit=0.05" in text and "p_explicit=0.3" in text
    # two stacked panels make a taller figure than one
    one = mpimg.imread(rendered["gain_per_user"][0])
    assert mpimg.imread(png).shape[0] > 1.6 * one.shape[0]


def test_gain_per_user_seed_changes_error_bars(tmp_path: Path) -> None:
    gains = make_gains(n_users=2, n_seeds=5)
    a = plots.gain_per_user(gains, tmp_path / "a", seed=0)
    b = plots.gain_per_user(gains, tmp_path / "b", seed=1)
    assert a[1].read_bytes() != b[1].read_bytes()


def test_weight_trajectories_uses_smallest_seed_and_max_users(
    rendered: dict[str, list[Path]], tmp_path: Path
) -> None:
    svg = rendered["weight_trajectories"][1].read_text()  # 6 users, max_users=4
    assert "user 3" in svg and "user 4" not in svg
    assert "seed 0" in svg and "first 4 of 6 users" in svg
    days = make_days(n_users=2)
    days = days.assign(seed=days["seed"] + 5, w_face_end=days["w_face_end"] * 0.1 + 0.45)
    svg = plots.weight_trajectories(days, tmp_path / "w")[1].read_text()
    assert "seed 5" in svg and "2 users" in svg
    # the y axis spans [0, 1] although the data sit in a narrow band
    assert ">0.0<" in svg and ">1.0<" in svg
    with pytest.raises(ValueError, match="max_users"):
        plots.weight_trajectories(days, tmp_path / "x", max_users=0)


def test_confusion_matrices_rows_are_normalized(tmp_path: Path) -> None:
    counts = np.zeros((6, 6), dtype=int)
    counts[0, 0], counts[0, 1] = 3, 1  # anger: 75 % / 25 %
    counts[1, 1] = 7  # disgust: 100 %
    svg = plots.confusion_matrices({"q-learning": counts}, tmp_path / "c")[1].read_text()
    assert ">75<" in svg and ">25<" in svg and ">100<" in svg
    assert ">7<" not in svg  # counts are not shown, percentages are
    assert "accuracy 91%, n = 11" in svg


@pytest.mark.parametrize(
    "bad, message",
    [
        ({}, "no rows to plot"),
        ({"q": np.zeros((5, 6))}, "shape"),
        ({"q": -np.ones((6, 6))}, "negative"),
    ],
)
def test_confusion_matrices_refuse_bad_input(bad: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        plots.confusion_matrices(bad, tmp_path / "c")


def test_gain_vs_condition_keeps_given_order_and_tolerates_missing_ci(tmp_path: Path) -> None:
    summary = make_summary().iloc[::-1].reset_index(drop=True)  # conditions in reverse
    summary.loc[0, ["ci_low", "ci_high"]] = np.nan
    svg = plots.gain_vs_condition(summary, tmp_path / "s")[1].read_text()
    positions = [svg.index(f">{c}<") for c in pd.unique(summary["condition"])]
    assert positions == sorted(positions)
    assert ">condition<" in svg  # the default x label


# --------------------------------------------------------------------------------------------------
# Palette and writer
# --------------------------------------------------------------------------------------------------


def test_policy_palette_is_stable_and_baseline_grey() -> None:
    with_baseline = plots.policy_palette(["equal-weights", "q-learning", "bandit", "q-learning"])
    without = plots.policy_palette(["q-learning", "bandit"])
    assert list(with_baseline) == ["equal-weights", "q-learning", "bandit"]
    assert with_baseline["equal-weights"] == "#949494"
    assert with_baseline["q-learning"] == without["q-learning"]
    assert with_baseline["bandit"] == without["bandit"]
    many = plots.policy_palette([f"p{i}" for i in range(9)])
    assert len(set(many.values())) == 9 and "#949494" not in many.values()


def test_save_writes_png_and_svg_in_a_new_folder(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    paths = plots.save(fig, tmp_path / "deep" / "er" / "fig")
    assert paths == [tmp_path / "deep/er/fig.png", tmp_path / "deep/er/fig.svg"]
    assert mpimg.imread(paths[0]).shape[:2] == (2 * plots.DPI, 4 * plots.DPI)
    assert b"Software" not in paths[0].read_bytes()
    assert "<dc:date>" not in paths[1].read_text()
