"""The study figures, drawn with seaborn from a study's tidy tables and saved as PNG and SVG.

Every figure function takes a tidy pandas frame (or, for the confusion matrices, a mapping) and an
output *stem* ``out``; it writes ``out.with_suffix(".png")`` and ``out.with_suffix(".svg")``
(creating the folder) and returns those two paths. Extra columns are ignored; a missing column or
an empty frame raises a ``ValueError`` that says which.

==========================  ======================================================================
function                    input (required columns; ``condition`` is optional and facets)
==========================  ======================================================================
:func:`gain_per_user`        ``gains``: policy, user_id, seed, gain
:func:`learning_curves`      ``days``: policy, day, macro_f1
:func:`weight_trajectories`  ``days``: policy, user_id, seed, day, w_face_end
:func:`confusion_matrices`   mapping policy -> 6x6 count array (rows true, columns predicted)
:func:`gain_vs_feedback`     ``rates``: policy, gain, explicit_rate
:func:`performance_profiles` ``profile``: policy, tau, fraction (ci_low, ci_high draw a band)
:func:`gain_vs_condition`    ``summary``: condition, policy, mean_gain, ci_low, ci_high
==========================  ======================================================================

The figures are plain :class:`matplotlib.figure.Figure` objects, never registered with pyplot, so
nothing stays open and no global backend or style is touched: the seaborn theme and the save
settings are applied inside :func:`matplotlib.rc_context`. Outputs are byte-reproducible: fixed
dpi, a fixed SVG hash salt, no date or software stamp, and bootstrap confidence intervals drawn
with a seeded generator (``seed=``).

Each policy keeps one colour in every figure (:func:`policy_palette`): colours go to policies in
order of first appearance, and the baseline ``equal-weights`` is always grey and takes no colour
from the others, so a table with or without the baseline colours its policies alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from mer_gym.labels import EMOTIONS, NUM_EMOTIONS

__all__ = [
    "BASELINE",
    "DPI",
    "MANY_USERS",
    "confusion_matrices",
    "gain_per_user",
    "gain_vs_condition",
    "gain_vs_feedback",
    "learning_curves",
    "performance_profiles",
    "policy_palette",
    "save",
    "weight_trajectories",
]

DPI: Final[int] = 150
"""Resolution of the PNG files."""

BASELINE: Final[str] = "equal-weights"
"""The policy that gains are measured against; always drawn in grey."""

MANY_USERS: Final[int] = 30
"""Above this many users, :func:`gain_per_user` switches from bars to sorted per-user dots."""

N_BOOT: Final[int] = 1000
"""Bootstrap resamples for the 95 % confidence intervals."""

GAIN_LABEL: Final[str] = "macro-F1 gain over equal weights (points)"
DAY_LABEL: Final[str] = "day of pilot"
W_FACE_LABEL: Final[str] = "face weight w_face (0–1)"
RATE_LABEL: Final[str] = "explicit feedback rate (answers per interaction)"

_GREY: Final[str] = "#949494"
# seaborn's "colorblind" palette without its grey (index 7, kept for the baseline), with the two
# palest colours (pink, yellow) last.
_COLOUR_ORDER: Final[tuple[int, ...]] = (0, 1, 2, 3, 4, 5, 9, 6, 8)

# Line styles of conditions in :func:`weight_trajectories` ("" is solid).
_DASHES: Final[tuple[Any, ...]] = ("", (4, 1.5), (1, 1), (3, 1.25, 1.5, 1.25), (5, 1, 1, 1))

_RC: Final[dict[str, Any]] = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper", font_scale=1.2),
    "svg.hashsalt": "mer-gym",
    "svg.fonttype": "none",  # keep text as <text>: searchable, editable and smaller
    "axes.titleweight": "bold",
    "figure.titlesize": "large",
    "figure.labelsize": sns.plotting_context("paper", font_scale=1.2)["axes.labelsize"],
    "legend.title_fontsize": "medium",
}


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def policy_palette(policies: Iterable[str]) -> dict[str, str]:
    """One colour (a hex string) per policy, in order of first appearance.

    Colours come from seaborn's colorblind palette in a fixed order, repeating after nine
    policies; ``equal-weights`` is always grey and does not use up a colour.

    >>> policy_palette(["equal-weights", "q-learning", "bandit", "q-learning"])
    {'equal-weights': '#949494', 'q-learning': '#0173b2', 'bandit': '#de8f05'}
    """
    base = sns.color_palette("colorblind", 10).as_hex()
    colours = [base[i] for i in _COLOUR_ORDER]
    palette: dict[str, str] = {}
    for policy in policies:
        if policy in palette:
            continue
        if policy == BASELINE:
            palette[policy] = _GREY
        else:
            palette[policy] = colours[sum(p != BASELINE for p in palette) % len(colours)]
    return palette


def save(fig: Figure, out: Path | str) -> list[Path]:
    """Write ``fig`` to ``out.with_suffix(".png")`` and ``.svg``; return the two paths.

    The parent folder is created. The files are byte-reproducible: fixed dpi, fixed SVG ids (hash
    salt), and no date or software stamp in the metadata.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png, svg = out.with_suffix(".png"), out.with_suffix(".svg")
    engine = fig.get_layout_engine()
    with mpl.rc_context(_RC):
        fig.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
        # The PNG's draw solved the layout: keep it for the SVG, which then has exactly the same
        # geometry, and spare a second solve (the slowest step of a save).
        if engine is not None:
            fig.set_layout_engine("none")
        try:
            fig.savefig(svg, format="svg", metadata={"Date": None})
        finally:
            if engine is not None:
                fig.set_layout_engine(engine)
    return [png, svg]


@contextmanager
def _theme() -> Iterator[None]:
    """The seaborn theme and save settings, for building a figure (restored afterwards)."""
    with mpl.rc_context(_RC):
        yield


def _frame(frame: object, required: Sequence[str], what: str) -> pd.DataFrame:
    """Validate a tidy input: a DataFrame with ``required`` columns and at least one complete row.

    Returns the rows with no missing value in ``required``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} frame lacks required column(s) {', '.join(map(repr, missing))} "
            f"(it has {', '.join(map(repr, map(str, frame.columns))) or 'no columns'})"
        )
    if frame.empty:
        raise ValueError(f"no rows to plot: the {what} frame is empty")
    data = frame.dropna(subset=list(required))
    if data.empty:
        raise ValueError(
            f"no rows to plot: every row of the {what} frame misses a value in "
            f"{', '.join(map(repr, required))}"
        )
    return data


def _unique(values: pd.Series) -> list[Any]:
    """Distinct values in order of first appearance."""
    return list(pd.unique(values))


def _conditions(data: pd.DataFrame) -> list[Any]:
    """The conditions to facet by, in order of appearance; ``[None]`` when there is no column."""
    if "condition" not in data.columns:
        return [None]
    return _unique(data["condition"].dropna())


def _subset(data: pd.DataFrame, condition: Any) -> pd.DataFrame:
    return data if condition is None else data[data["condition"] == condition]


def _grid(
    n_panels: int,
    *,
    ncols: int,
    panel: tuple[float, float],
    legend_width: float = 0.0,
    sharex: bool | str = True,
    sharey: bool | str = True,
) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``n_panels`` axes wrapped into ``ncols`` columns.

    Unused slots are removed, and the panel above an empty slot keeps its x tick labels.
    """
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(
        figsize=(panel[0] * ncols + legend_width, panel[1] * nrows + 0.5), layout="constrained"
    )
    axes = list(fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.remove()
    axes = axes[:n_panels]
    for i, ax in enumerate(axes):
        if i + ncols >= n_panels:  # the lowest panel of its column
            ax.tick_params(axis="x", labelbottom=True)
    return fig, axes


def _ncols(n_panels: int) -> int:
    """Columns for a wrapped grid of panels: three a row, but four panels as two by two."""
    return 2 if n_panels == 4 else min(n_panels, 3)


def _label_outer(axes: Sequence[Axes], ncols: int, xlabel: str, ylabel: str) -> None:
    """An x label under the lowest panel of each column; one y label for the figure.

    With one row of panels the y label goes on the first panel; with several, it is centred on
    the figure's left edge rather than repeated (and crowded) on every row.
    """
    n = len(axes)
    ncols = max(1, min(ncols, n))
    for i, ax in enumerate(axes):
        ax.set_xlabel(xlabel if i + ncols >= n else "")
        ax.set_ylabel(ylabel if n <= ncols and i == 0 else "")
    if n > ncols:
        axes[0].get_figure().supylabel(ylabel)


def _policy_legend(
    fig: Figure,
    palette: Mapping[str, str],
    policies: Sequence[str],
    kind: str = "line",
    extra: Sequence[Artist] = (),
) -> None:
    """One legend for the whole figure, outside the panels on the right (vertically centred, so
    that it never meets a wide figure title).

    ``kind`` is the policy handle: "patch" (bars), "line" or "marker_line"; ``extra`` handles
    follow the policies.
    """
    handles: list[Artist]
    if kind == "patch":
        handles = [Patch(facecolor=palette[p], label=p) for p in policies]
    else:
        marker = "o" if kind == "marker_line" else None
        handles = [
            Line2D([], [], color=palette[p], marker=marker, linewidth=2, label=p) for p in policies
        ]
    fig.legend(
        handles=[*handles, *extra], title="policy", loc="outside right center", frameon=False
    )


def _zero_line(ax: Axes) -> None:
    ax.axhline(0.0, color="0.25", linewidth=1.0, linestyle="--", zorder=1)


def _rotate_xticks(ax: Axes, degrees: float = 45.0) -> None:
    for label in ax.get_xticklabels():
        label.set_rotation(degrees)
        label.set_horizontalalignment("right")
        label.set_rotation_mode("anchor")


def _panel_title(condition: Any, extra: str | None = None) -> str:
    parts = [str(condition)] if condition is not None else []
    if extra is not None:
        parts.append(extra)
    return " · ".join(parts)


# --------------------------------------------------------------------------------------------------
# 1. Gain per user (the headline figure)
# --------------------------------------------------------------------------------------------------


def gain_per_user(
    gains: pd.DataFrame, out: Path | str, *, seed: int = 0, title: str | None = None
) -> list[Path]:
    """Macro-F1 gain over equal weights, per user and policy, with 95 % bootstrap CIs over seeds.

    Up to :data:`MANY_USERS` users: grouped bars (x = user, hue = policy), one panel per condition.
    Above that: one panel per policy (and condition), users sorted by their mean gain on x, a dot
    with its CI per user, and the number of users who gained written in the panel.

    ``gains`` needs policy, user_id, seed and gain (in macro-F1 points); ``condition`` facets.
    """
    data = _frame(gains, ["policy", "user_id", "seed", "gain"], "gains")
    data = data.assign(_user=data["user_id"].astype(str))
    policies = _unique(data["policy"])
    palette = policy_palette(policies)
    conditions = _conditions(data)
    users = _unique(data["_user"])
    title = title if title is not None else "Macro-F1 gain per user over equal weights"
    with _theme():
        if len(users) > MANY_USERS:
            fig = _gain_per_user_many(data, policies, conditions, palette, seed)
            note = "dots: mean over seeds; bars: 95 % bootstrap CI; users sorted per panel"
        else:
            fig = _gain_per_user_bars(data, users, policies, conditions, palette, seed)
            note = "bars: mean over seeds; error bars: 95 % bootstrap CI"
        fig.suptitle(f"{title}\n{note}")
        return save(fig, out)


def _gain_per_user_bars(
    data: pd.DataFrame,
    users: list[str],
    policies: list[str],
    conditions: list[Any],
    palette: dict[str, str],
    seed: int,
) -> Figure:
    width = min(14.0, max(6.0, 1.5 + len(users) * (0.2 + 0.15 * len(policies))))
    height = 3.8 if width <= 9.0 else 4.6
    fig, axes = _grid(
        len(conditions), ncols=1, panel=(width, height), legend_width=1.8, sharey=True
    )
    # rotate the user names when, side by side, they would need most of the panel's width
    rotate = len(users) * (max(len(u) for u in users) + 1) * 0.1 > 0.7 * width
    for ax, condition in zip(axes, conditions, strict=True):
        sns.barplot(
            data=_subset(data, condition),
            x="_user",
            y="gain",
            hue="policy",
            order=users,
            hue_order=policies,
            palette=palette,
            errorbar=("ci", 95),
            n_boot=N_BOOT,
            seed=seed,
            saturation=1.0,
            capsize=0.15,
            err_kws={"color": "0.15", "linewidth": 1.0},
            legend=False,
            ax=ax,
        )
        _zero_line(ax)
        ax.set_title(_panel_title(condition) or None)
        if rotate:
            _rotate_xticks(ax)
    _label_outer(axes, 1, "user", GAIN_LABEL)
    _policy_legend(fig, palette, policies, kind="patch")
    return fig


def _gain_per_user_many(
    data: pd.DataFrame,
    policies: list[str],
    conditions: list[Any],
    palette: dict[str, str],
    seed: int,
) -> Figure:
    panels = [(c, p) for c in conditions for p in policies]
    ncols = len(policies) if len(conditions) > 1 else min(3, len(policies))
    fig, axes = _grid(len(panels), ncols=ncols, panel=(5.0, 3.9), sharex=False, sharey=True)
    for ax, (condition, policy) in zip(axes, panels, strict=True):
        sub = _subset(data, condition)
        sub = sub[sub["policy"] == policy]
        if sub.empty:
            ax.set_title(_panel_title(condition, policy))
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            continue
        means = sub.groupby("_user", sort=False)["gain"].mean().sort_values(kind="stable")
        sns.pointplot(
            data=sub,
            x="_user",
            y="gain",
            order=list(means.index),
            color=palette[policy],
            errorbar=("ci", 95),
            n_boot=N_BOOT,
            seed=seed,
            linestyle="none",
            markersize=3.5,
            err_kws={"linewidth": 0.9, "alpha": 0.6},
            ax=ax,
        )
        _zero_line(ax)
        ax.set_xticks([])
        ax.grid(axis="x", visible=False)
        n_up = int((means > 0).sum())
        ax.text(
            0.02,
            0.97,
            f"gain > 0 for {n_up} of {len(means)} users",
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize="small",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
        )
        ax.set_title(_panel_title(condition, policy))
    _label_outer(axes, ncols, "users, sorted by gain", GAIN_LABEL)
    return fig


# --------------------------------------------------------------------------------------------------
# 2. Learning curves
# --------------------------------------------------------------------------------------------------


def _week_lines(ax: Axes, days: pd.Series) -> None:
    """Faint vertical lines at the start of each week after the first."""
    for start in range(7, int(days.max()) + 1, 7):
        ax.axvline(start - 0.5, color="0.7", linewidth=0.8, linestyle=":", zorder=0)


def learning_curves(days: pd.DataFrame, out: Path | str, *, seed: int = 0) -> list[Path]:
    """Daily macro-F1 by pilot day: mean over users and seeds with a 95 % bootstrap CI band.

    ``days`` needs policy, day and macro_f1; ``condition`` facets (three panels a row).
    """
    data = _frame(days, ["policy", "day", "macro_f1"], "days")
    policies = _unique(data["policy"])
    palette = policy_palette(policies)
    conditions = _conditions(data)
    n_days = data["day"].nunique()
    with _theme():
        ncols = _ncols(len(conditions))
        fig, axes = _grid(len(conditions), ncols=ncols, panel=(5.5, 3.8), legend_width=1.8)
        for ax, condition in zip(axes, conditions, strict=True):
            sub = _subset(data, condition)
            sns.lineplot(
                data=sub,
                x="day",
                y="macro_f1",
                hue="policy",
                hue_order=policies,
                palette=palette,
                errorbar=("ci", 95),
                n_boot=N_BOOT,
                seed=seed,
                marker="o" if n_days <= 30 else None,
                markersize=4,
                markeredgewidth=0,
                legend=False,
                ax=ax,
            )
            _week_lines(ax, sub["day"])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(_panel_title(condition) or None)
        _label_outer(axes, ncols, DAY_LABEL, "macro-F1 (daily)")
        _policy_legend(fig, palette, policies, kind="marker_line" if n_days <= 30 else "line")
        fig.suptitle(
            "Learning curves: daily macro-F1\n"
            "mean over users and seeds; band: 95 % bootstrap CI; dotted: new week"
        )
        return save(fig, out)


# --------------------------------------------------------------------------------------------------
# 3. Weight trajectories
# --------------------------------------------------------------------------------------------------


def weight_trajectories(days: pd.DataFrame, out: Path | str, *, max_users: int = 12) -> list[Path]:
    """The face weight at the end of each day, one small panel per user, on the smallest seed.

    Shows the first ``max_users`` users in order of appearance; colour is the policy, and the line
    style the condition when there are several.

    ``days`` needs policy, user_id, seed, day and w_face_end.
    """
    if max_users < 1:
        raise ValueError(f"max_users must be at least 1, got {max_users}")
    data = _frame(days, ["policy", "user_id", "seed", "day", "w_face_end"], "days")
    seed = data["seed"].min()
    data = data[data["seed"] == seed]
    data = data.assign(_user=data["user_id"].astype(str))
    policies = _unique(data["policy"])
    palette = policy_palette(policies)
    conditions = _conditions(data)
    style = "condition" if len(conditions) > 1 else None
    dashes = {c: _DASHES[i % len(_DASHES)] for i, c in enumerate(conditions)} if style else {}
    users = _unique(data["_user"])[:max_users]
    n = len(users)
    ncols = min(n, 4 if n > 9 or n % 4 == 0 else 3)
    with _theme():
        fig, axes = _grid(n, ncols=ncols, panel=(3.4, 2.6), legend_width=1.8)
        for ax, user in zip(axes, users, strict=True):
            sns.lineplot(
                data=data[data["_user"] == user],
                x="day",
                y="w_face_end",
                hue="policy",
                hue_order=policies,
                palette=palette,
                style=style,
                style_order=conditions if style else None,
                dashes=dashes or True,
                errorbar=None,
                marker="o",
                markersize=3,
                markeredgewidth=0,
                legend=False,
                ax=ax,
            )
            ax.set_ylim(-0.04, 1.04)  # fixed weights (0 or 1) stay visible
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"user {user}")
        _label_outer(axes, ncols, DAY_LABEL, W_FACE_LABEL)
        extra: list[Artist] = []
        if dashes:
            extra.append(Line2D([], [], linestyle="none", label="condition"))
            extra += [
                Line2D([], [], color="0.3", linestyle=(0, d) if d else "-", label=str(c))
                for c, d in dashes.items()
            ]
        _policy_legend(fig, palette, policies, kind="marker_line", extra=extra)
        shown = (
            f"first {n} of {data['_user'].nunique()} users"
            if n < data["_user"].nunique()
            else (f"{n} users")
        )
        fig.suptitle(f"Face weight at the end of each day (seed {seed}, {shown})")
        return save(fig, out)


# --------------------------------------------------------------------------------------------------
# 4. Confusion matrices
# --------------------------------------------------------------------------------------------------


def _counts(policy: str, matrix: object) -> np.ndarray:
    counts = np.asarray(matrix)
    if counts.shape != (NUM_EMOTIONS, NUM_EMOTIONS):
        raise ValueError(
            f"confusion matrix of {policy!r} has shape {counts.shape}: expected "
            f"{NUM_EMOTIONS}x{NUM_EMOTIONS} (rows true, columns predicted: {', '.join(EMOTIONS)})"
        )
    if not np.issubdtype(counts.dtype, np.number) or not np.all(np.isfinite(counts)):
        raise ValueError(f"confusion matrix of {policy!r} must hold finite counts")
    if np.any(counts < 0):
        raise ValueError(f"confusion matrix of {policy!r} has negative counts")
    return counts.astype(float)


def confusion_matrices(confusions: Mapping[str, np.ndarray], out: Path | str) -> list[Path]:
    """One row-normalized confusion matrix per policy, annotated with percentages.

    ``confusions`` maps a policy name to a 6x6 count array (rows: true emotion, columns:
    predicted, both in :data:`mer_gym.labels.EMOTIONS` order). A row with no samples stays blank.
    """
    if not isinstance(confusions, Mapping):
        raise TypeError(
            f"confusions: expected a mapping policy -> 6x6 array, got {type(confusions).__name__}"
        )
    if not confusions:
        raise ValueError("no rows to plot: the confusions mapping is empty")
    counts = {str(p): _counts(str(p), m) for p, m in confusions.items()}
    ncols = _ncols(len(counts))
    with _theme():
        fig, axes = _grid(
            len(counts),
            ncols=ncols,
            panel=(4.3, 4.0),
            legend_width=0.9,
            sharex=False,
            sharey=False,
        )
        for i, (ax, (policy, matrix)) in enumerate(zip(axes, counts.items(), strict=True)):
            totals = matrix.sum(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                pct = np.where(totals > 0, 100.0 * matrix / totals, np.nan)
            annot = np.where(np.isnan(pct), "", np.char.mod("%.0f", np.nan_to_num(pct)))
            sns.heatmap(
                pct,
                ax=ax,
                vmin=0.0,
                vmax=100.0,
                cmap="Blues",
                annot=annot,
                fmt="",
                annot_kws={"fontsize": 8},
                cbar=False,
                square=True,
                linewidths=0.5,
                linecolor="white",
                xticklabels=list(EMOTIONS),
                yticklabels=list(EMOTIONS) if i % ncols == 0 else False,
            )
            total = matrix.sum()
            accuracy = np.trace(matrix) / total if total > 0 else float("nan")
            ax.set_title(f"{policy}\naccuracy {accuracy:.0%}, n = {int(total)}")
            ax.tick_params(axis="y", labelrotation=0)
            _rotate_xticks(ax)
        for i, ax in enumerate(axes):  # square panels: a y label per row, next to its labels
            ax.set_xlabel("predicted emotion" if i + ncols >= len(axes) else "")
            ax.set_ylabel("true emotion" if i % ncols == 0 else "")
        fig.colorbar(
            axes[0].collections[0],  # every panel shares the 0-100 % colour scale
            ax=axes,
            label="% of the true emotion's samples",
            shrink=0.8,
            format=PercentFormatter(decimals=0),
        )
        fig.suptitle("Confusion matrices (row-normalized, %)")
        return save(fig, out)


# --------------------------------------------------------------------------------------------------
# 5. Gain against explicit feedback
# --------------------------------------------------------------------------------------------------


def gain_vs_feedback(rates: pd.DataFrame, out: Path | str) -> list[Path]:
    """Per-user gain against the user's explicit feedback rate, with a linear trend per policy.

    ``rates`` needs policy, gain and explicit_rate (one row per user); ``condition`` facets.
    """
    data = _frame(rates, ["policy", "gain", "explicit_rate"], "rates")
    policies = _unique(data["policy"])
    palette = policy_palette(policies)
    conditions = _conditions(data)
    ncols = _ncols(len(conditions))
    with _theme():
        fig, axes = _grid(len(conditions), ncols=ncols, panel=(5.0, 3.8), legend_width=1.8)
        for ax, condition in zip(axes, conditions, strict=True):
            sub = _subset(data, condition)
            for policy in policies:
                points = sub[sub["policy"] == policy]
                if points.empty:
                    continue
                sns.regplot(
                    data=points,
                    x="explicit_rate",
                    y="gain",
                    ci=None,
                    fit_reg=points["explicit_rate"].nunique() >= 2,
                    truncate=True,
                    color=palette[policy],
                    scatter_kws={"s": 22, "alpha": 0.75, "linewidths": 0},
                    line_kws={"linewidth": 1.6},
                    ax=ax,
                )
            _zero_line(ax)
            ax.set_title(_panel_title(condition) or None)
        _label_outer(axes, ncols, RATE_LABEL, GAIN_LABEL)
        _policy_legend(fig, palette, policies, kind="marker_line")
        fig.suptitle(
            "Per-user gain against explicit feedback rate\nlines: least-squares fit per policy"
        )
        return save(fig, out)


# --------------------------------------------------------------------------------------------------
# 6. Performance profiles
# --------------------------------------------------------------------------------------------------


def performance_profiles(profile: pd.DataFrame, out: Path | str) -> list[Path]:
    """Fraction of runs whose macro-F1 exceeds τ, against τ: one line per policy, CI as a band.

    ``profile`` needs policy, tau and fraction; ci_low and ci_high (when present) draw the band;
    ``condition`` facets.
    """
    data = _frame(profile, ["policy", "tau", "fraction"], "profile")
    has_ci = {"ci_low", "ci_high"} <= set(data.columns)
    policies = _unique(data["policy"])
    palette = policy_palette(policies)
    conditions = _conditions(data)
    ncols = _ncols(len(conditions))
    with _theme():
        fig, axes = _grid(len(conditions), ncols=ncols, panel=(5.0, 3.6), legend_width=1.8)
        for ax, condition in zip(axes, conditions, strict=True):
            sub = _subset(data, condition)
            for policy in policies:
                line = sub[sub["policy"] == policy].sort_values("tau", kind="stable")
                if line.empty:
                    continue
                colour = palette[policy]
                if has_ci:
                    band = line.dropna(subset=["ci_low", "ci_high"])
                    ax.fill_between(
                        band["tau"].to_numpy(float),
                        band["ci_low"].to_numpy(float),
                        band["ci_high"].to_numpy(float),
                        color=colour,
                        alpha=0.2,
                        linewidth=0,
                    )
                ax.plot(
                    line["tau"].to_numpy(float),
                    line["fraction"].to_numpy(float),
                    color=colour,
                    linewidth=1.8,
                )
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(_panel_title(condition) or None)
        _label_outer(axes, ncols, "macro-F1 threshold τ", "fraction of runs > τ")
        _policy_legend(fig, palette, policies)
        fig.suptitle(
            "Performance profiles: share of runs above each macro-F1 threshold"
            + ("\nband: 95 % CI" if has_ci else "")
        )
        return save(fig, out)


# --------------------------------------------------------------------------------------------------
# 7. Gain against the condition of a sweep
# --------------------------------------------------------------------------------------------------


def gain_vs_condition(
    summary: pd.DataFrame, out: Path | str, *, xlabel: str = "condition"
) -> list[Path]:
    """Mean gain with its CI per condition (x, in order of appearance) and policy (dodged).

    ``summary`` needs condition, policy, mean_gain, ci_low and ci_high (one row per condition and
    policy); a missing CI bound draws no error bar.
    """
    data = _frame(summary, ["condition", "policy", "mean_gain"], "summary")
    missing = [c for c in ("ci_low", "ci_high") if c not in data.columns]
    if missing:
        raise ValueError(
            f"summary frame lacks required column(s) {', '.join(map(repr, missing))} "
            f"(it has {', '.join(map(repr, map(str, data.columns)))})"
        )
    conditions = [str(c) for c in _unique(data["condition"])]
    policies = _unique(data["policy"])
    palette = policy_palette(policies)
    position = {c: i for i, c in enumerate(conditions)}
    step = min(0.8 / max(len(policies), 1), 0.15)
    longest = max(len(c) for c in conditions)
    rotate = len(conditions) * longest > 60
    width = min(14.0, max(6.0, 1.5 + len(conditions) * (0.9 + 0.25 * len(policies))))
    height = 4.0 + (0.15 * min(longest, 30) if rotate else 0.0)
    with _theme():
        fig, (ax,) = _grid(1, ncols=1, panel=(width, height), legend_width=1.8)
        for k, policy in enumerate(policies):
            rows = data[data["policy"] == policy]
            x = np.array([position[str(c)] for c in rows["condition"]], dtype=float)
            order = np.argsort(x, kind="stable")
            x = x[order] + (k - (len(policies) - 1) / 2) * step
            mean = rows["mean_gain"].to_numpy(float)[order]
            low = rows["ci_low"].to_numpy(float)[order]
            high = rows["ci_high"].to_numpy(float)[order]
            yerr = np.vstack(
                [
                    np.clip(np.nan_to_num(mean - low), 0, None),
                    np.clip(np.nan_to_num(high - mean), 0, None),
                ]
            )
            ax.errorbar(
                x,
                mean,
                yerr=yerr,
                color=palette[policy],
                marker="o",
                markersize=5,
                linewidth=1.4,
                capsize=3,
                elinewidth=1.2,
            )
        _zero_line(ax)
        ax.set_xticks(range(len(conditions)), conditions)
        ax.set_xlim(-0.5, len(conditions) - 0.5)
        ax.grid(axis="x", visible=False)
        if rotate:
            _rotate_xticks(ax, 30.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean macro-F1 gain over\nequal weights (points)")
        _policy_legend(fig, palette, policies, kind="marker_line")
        fig.suptitle("Mean macro-F1 gain over equal weights by condition\nerror bars: 95 % CI")
        return save(fig, out)
