"""Metrics of a study, from its days table (:data:`studies.runner.DAY_COLUMNS`).

Every metric is computed from the confusion counts the days table keeps (``cm_<true>_<pred>``),
so a user's macro-F1 is the one of all its interactions, not a mean of daily scores.

* **accuracy**, **macro_f1** (scikit-learn's definitions, computed from the counts: see
  :func:`scores`; over the six emotions, ``zero_division=0``: an emotion the user never
  felt nor was predicted counts as 0, as in ``mer-gym users`` and the hindsight-best bound),
  **recall_<emotion>**;
* **neutral_fpr**: the false-positive rate in neutral states, i.e. the share of interactions whose
  true state was neutral that were called an emotion (the paper's pilot reports a reduction);
* **regret**: the per-sample oracle's accuracy minus the policy's (the oracle picks, per
  interaction, a weight of the grid whose prediction is right, if any);
* **explicit_rate**: explicit answers per interaction; **w_face_mean**, **w_face_final**;
* :func:`detection_delay`: in streams with a low-mood episode, the days the policy's predictions
  take to show the rise in sadness.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mer_gym.labels import EMOTIONS

__all__ = [
    "KEYS",
    "by_day",
    "confusions",
    "detection_delay",
    "per_period",
    "per_user",
    "scores",
]

N = len(EMOTIONS)
CM = [f"cm_{i}_{j}" for i in range(N) for j in range(N)]
_TRUE = np.repeat(np.arange(N), N)
_PRED = np.tile(np.arange(N), N)
#: the columns that name one run of a policy on a user
KEYS = ["condition", "policy", "user_id", "subgroup", "seed"]
NEUTRAL = EMOTIONS.index("neutral")
SADNESS = EMOTIONS.index("sadness")


def scores(counts: np.ndarray) -> pd.DataFrame:
    """Accuracy, macro-F1, per-class recall and the neutral false-positive rate of each row of
    ``counts`` (R, 36): confusion counts, row-major (true, predicted).

    Computed from the counts with numpy: one scikit-learn call per row costs about 5 ms, and a
    population study's weekly table has 100,000 rows. The definitions are scikit-learn's
    (``f1_score(..., labels=range(6), average="macro", zero_division=0)``, ``recall_score(...,
    average=None, zero_division=nan)``), and ``tests/test_studies.py`` checks equality with it.
    """
    cm = np.asarray(counts, np.float64).reshape(-1, N, N)
    total = cm.sum(axis=(1, 2))
    tp = np.diagonal(cm, axis1=1, axis2=2)
    true = cm.sum(axis=2)  # per class: interactions whose truth is the class
    pred = cm.sum(axis=1)  # per class: interactions predicted as the class
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = true + pred  # 2 tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
        recall = np.where(true > 0, tp / np.where(true > 0, true, 1), np.nan)
        ok = total > 0
        out = {
            "accuracy": np.where(ok, tp.sum(axis=1) / np.where(ok, total, 1), np.nan),
            "macro_f1": np.where(ok, f1.mean(axis=1), np.nan),
            "neutral_fpr": 1.0 - recall[:, NEUTRAL],
        }
    out.update({f"recall_{e}": recall[:, k] for k, e in enumerate(EMOTIONS)})
    return pd.DataFrame(out)


def _aggregate(days: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    sums = ["n", "correct", "oracle_correct", "explicit", "confirmations", "corrections", "reward", *CM]
    grouped = days.groupby(list(by), sort=False, observed=True)
    agg = grouped[sums].sum()
    agg["w_face_mean"] = (days["w_face_mean"] * days["n"]).groupby([days[k] for k in by], sort=False).sum() / agg["n"]
    agg["w_face_final"] = grouped["w_face_end"].last()
    agg["days"] = grouped["day"].nunique()
    agg = agg.reset_index()
    metrics = scores(agg[CM].to_numpy())
    metrics.index = agg.index
    agg["regret"] = (agg["oracle_correct"] - agg["correct"]) / agg["n"]
    agg["explicit_rate"] = agg["explicit"] / agg["n"]
    out = pd.concat([agg.drop(columns=CM), metrics], axis=1)
    front = [*by, "n", "days", "accuracy", "macro_f1", "neutral_fpr", "regret", "explicit", "explicit_rate",
             "w_face_mean", "w_face_final"]
    rest = [c for c in out.columns if c not in front]
    return out[front + rest]


def per_user(days: pd.DataFrame) -> pd.DataFrame:
    """One row per (condition, policy, user, seed): the whole pilot's metrics."""
    return _aggregate(days, KEYS)


def per_period(days: pd.DataFrame, period: str = "week") -> pd.DataFrame:
    """One row per run and ``period`` (``"week"`` or ``"day"``)."""
    if period not in ("week", "day"):
        raise ValueError(f"period = {period!r}: expected 'week' or 'day'")
    return _aggregate(days, [*KEYS, period])


def by_day(days: pd.DataFrame) -> pd.DataFrame:
    """Macro-F1 and accuracy per (condition, policy, seed, day), pooled over the users (a user-day
    holds a handful of interactions, too few for a macro-F1 of its own): the learning curves.
    ``user_id`` is ``"all"``; the face weight is the mean over users of their end-of-day weight."""
    out = _aggregate(days.assign(user_id="all", subgroup="all"), [*KEYS, "day"])
    w_end = days.groupby(["condition", "policy", "seed", "day"], sort=False)["w_face_end"].mean()
    out["w_face_end"] = w_end.reindex(pd.MultiIndex.from_frame(out[["condition", "policy", "seed", "day"]])).to_numpy()
    return out


def confusions(days: pd.DataFrame, condition: str | None = None) -> dict[str, np.ndarray]:
    """Policy -> its 6×6 confusion counts (rows true, columns predicted), summed over users and
    seeds (of ``condition``, default the first)."""
    condition = days["condition"].iloc[0] if condition is None else condition
    sel = days[days["condition"] == condition]
    sums = sel.groupby("policy", sort=False)[CM].sum()
    return {p: row.to_numpy(np.int64).reshape(N, N) for p, row in sums.iterrows()}


def detection_delay(days: pd.DataFrame, *, window: int = 3, share: float = 0.5) -> pd.DataFrame:
    """How many days each run's predictions take to show a low-mood episode's rise in sadness.

    For each run whose stream has an episode (days with ``in_episode > 0``), starting on day
    ``d0``: the *true* rise is the share of sad interactions during the episode minus before it;
    the run detects the episode on the first day ``d >= d0`` where the share of interactions it
    *predicted* sad over the last ``window`` days (from ``d0`` on) exceeds its own pre-episode
    predicted-sad share by ``share`` times the true rise. ``delay_days = d - d0``; NaN when the
    episode ends first (``detected`` False).

    Returns:
        One row per run with an episode: KEYS, episode_start, true_rise, pred_rise, detected,
        delay_days.
    """
    sad_true = days[[f"cm_{SADNESS}_{j}" for j in range(N)]].to_numpy().sum(axis=1).astype(np.float64)
    sad_pred = days[[f"cm_{i}_{SADNESS}" for i in range(N)]].to_numpy().sum(axis=1).astype(np.float64)
    n_all = days["n"].to_numpy(np.float64)
    day_all = days["day"].to_numpy(np.int64)
    ep_all = days["in_episode"].to_numpy() > 0
    rows = []
    for key, index in days.groupby(KEYS, sort=False).indices.items():
        ep = ep_all[index]
        if not ep.any():
            continue
        day, n, st, sp = day_all[index], n_all[index], sad_true[index], sad_pred[index]
        d0, d1 = int(day[ep].min()), int(day[ep].max())
        before, during = day < d0, (day >= d0) & (day <= d1)
        if n[before].sum() == 0 or n[during].sum() == 0:
            continue
        true_rise = st[during].sum() / n[during].sum() - st[before].sum() / n[before].sum()
        base = sp[before].sum() / n[before].sum()
        pred_rise = sp[during].sum() / n[during].sum() - base
        threshold = base + share * max(true_rise, 0.0)
        delay = float("nan")
        if true_rise > 0:
            for d in np.unique(day[during]):
                win = during & (day > d - window) & (day <= d)
                if sp[win].sum() / n[win].sum() > threshold:
                    delay = float(d - d0)
                    break
        rows.append((*key, d0, true_rise, pred_rise, not np.isnan(delay), delay))
    cols = [*KEYS, "episode_start", "true_rise", "pred_rise", "detected", "delay_days"]
    return pd.DataFrame(rows, columns=cols)
