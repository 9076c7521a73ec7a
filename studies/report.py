"""Analyze a finished study: tables, statistics, figures and ``report.md`` / ``report.html``.

:func:`analyze` reads ``days.parquet`` of a run folder and writes beside it:

* ``per_user.{parquet,csv}`` (one row per condition, policy, user, seed), ``weeks.{parquet,csv}``,
  ``learning.{parquet,csv}`` (macro-F1 by day pooled over users), ``summary.csv`` (one row per
  condition and policy: gains over the baseline with CIs and tests, :func:`studies.stats.summarize`),
  ``subgroups.csv`` (the same per subgroup, when the population has several), ``detection.csv``
  (low-mood episodes, :func:`studies.metrics.detection_delay`);
* ``figures/``: the per-user gain plot (the headline), learning curves, fusion-weight
  trajectories, confusion matrices, gain against the explicit-feedback rate, performance
  profiles and, for sweeps, the gain per condition (PNG and SVG);
* ``report.md`` and ``report.html``: the question, the setup, the table of gains, the figures, the
  provenance and, for the pilot, the paper's numbers beside ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studies import metrics, plots, stats
from studies.spec import Study, study_from_mapping

__all__ = ["PAPER", "analyze"]

#: The seed paper's numbers (Arzu et al. 2026): the pilot's gain (§6, 6 users x 2 weeks) and the
#: Table 8 ablation (accuracy, %).
PAPER = {
    "pilot_gain_points": 1.2,
    "ablation_accuracy": {
        "face only": ("face-only", 89.0),
        "voice only": ("speech-only", 90.0),
        "no Q-learning (fixed fusion)": ("equal-weights", 91.5),
        "full (adaptive fusion)": ("q-learning", 93.0),
    },
}


def _write_table(df: pd.DataFrame, path: Path, parquet: bool = True) -> None:
    if parquet:
        tmp = path.with_name(f".{path.stem}.parquet.partial")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path.with_suffix(".parquet"))
    tmp = path.with_name(f".{path.stem}.csv.partial")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path.with_suffix(".csv"))


def load_run(out: str | Path) -> tuple[Study, pd.DataFrame, dict[str, Any]]:
    out = Path(out)
    saved = json.loads((out / "study.json").read_text())
    study = study_from_mapping(saved["study"], where=f"{out}/study.json")
    days = pd.read_parquet(out / "days.parquet")
    prov_path = out / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    return study, days, prov


def analyze(out: str | Path, *, seed: int = 0) -> Path:
    """Write the tables, figures and report of the run in ``out``; returns ``report.md``."""
    out = Path(out)
    study, days, prov = load_run(out)
    users = metrics.per_user(days)
    weeks = metrics.per_period(days, "week")
    learning = metrics.by_day(days)
    _write_table(users, out / "per_user")
    _write_table(weeks, out / "weeks")
    _write_table(learning, out / "learning")
    summary = stats.summarize(users, baseline=study.baseline, seed=seed)
    _write_table(summary, out / "summary", parquet=False)
    subgroups = None
    if users["subgroup"].nunique() > 1:
        parts = []
        for group, sel in users.groupby("subgroup", sort=False):
            part = stats.summarize(sel, baseline=study.baseline, seed=seed)
            part.insert(1, "subgroup", group)
            parts.append(part)
        subgroups = pd.concat(parts, ignore_index=True)
        _write_table(subgroups, out / "subgroups", parquet=False)
    detection = metrics.detection_delay(days)
    if not detection.empty:
        _write_table(detection, out / "detection", parquet=False)
    figures = _figures(study, out / "figures", days, users, learning, summary, seed)
    text = _markdown(study, out, days, users, summary, subgroups, detection, figures, prov)
    report = out / "report.md"
    tmp = out / ".report.md.partial"
    tmp.write_text(text)
    os.replace(tmp, report)
    html = _html(text, study.name)
    tmp = out / ".report.html.partial"
    tmp.write_text(html)
    os.replace(tmp, out / "report.html")
    return report


def _figures(
    study: Study, folder: Path, days: pd.DataFrame, users: pd.DataFrame, learning: pd.DataFrame,
    summary: pd.DataFrame, seed: int,
) -> dict[str, Path]:
    gains = stats.paired_gains(users, baseline=study.baseline)
    figs: dict[str, Path] = {}
    figs["gain_per_user"] = plots.gain_per_user(
        gains, folder / "gain_per_user", seed=seed,
        title=f"{study.name}: macro-F1 gain per user over {study.baseline}",
    )[0]
    figs["learning_curves"] = plots.learning_curves(learning, folder / "learning_curves", seed=seed)[0]
    # the policies that move the weight (fixed ones are flat lines; the oracle jumps every step)
    spread = days.groupby("policy", sort=False)["w_face_end"].agg(lambda w: w.max() - w.min())
    moving = [p for p in spread.index if (spread[p] > 0 and p != "oracle") or p == study.baseline]
    figs["weight_trajectories"] = plots.weight_trajectories(
        days[days["policy"].isin(moving)], folder / "weight_trajectories"
    )[0]
    figs["confusion_matrices"] = plots.confusion_matrices(
        metrics.confusions(days), folder / "confusion_matrices"
    )[0]
    per_user_gain = stats.user_gains(gains)
    rates = users.groupby(["condition", "policy", "user_id"], sort=False)["explicit_rate"].mean().reset_index()
    rates = per_user_gain.merge(rates, on=["condition", "policy", "user_id"], how="left")
    figs["gain_vs_feedback"] = plots.gain_vs_feedback(rates, folder / "gain_vs_feedback")[0]
    profile = stats.performance_profile(users, seed=seed)
    figs["performance_profiles"] = plots.performance_profiles(profile, folder / "performance_profiles")[0]
    if len(study.conditions) > 1:
        figs["gain_vs_condition"] = plots.gain_vs_condition(
            summary, folder / "gain_vs_condition", xlabel=study.sweep
        )[0]
    return figs


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _gain_table(summary: pd.DataFrame, several: bool) -> str:
    head = ["policy", "macro-F1", "gain (points)", "95 % CI", "IQM gain [95 % CI]", "t-test p (Holm)",
            "Wilcoxon p (Holm)", "worst quarter", "users hurt"]
    if several:
        head.insert(0, "condition")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.itertuples(index=False):
        cells = [
            r.policy,
            f"{r.value:.3f}",
            f"{r.mean_gain:+.2f}",
            f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
            f"{r.iqm_gain:+.2f} [{r.iqm_ci_low:+.2f}, {r.iqm_ci_high:+.2f}]",
            f"{_fmt_p(r.t_p)} ({_fmt_p(r.t_p_holm)})",
            f"{_fmt_p(r.wilcoxon_p)} ({_fmt_p(r.wilcoxon_p_holm)})",
            f"{r.worst_quarter_gain:+.2f}",
            f"{100 * r.share_hurt:.0f} %",
        ]
        if several:
            cells.insert(0, r.condition)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _metric_table(users: pd.DataFrame, several: bool) -> str:
    cols = ["accuracy", "macro_f1", "neutral_fpr", "regret", "explicit_rate", "w_face_mean", "w_face_final"]
    keys = ["condition", "policy"] if several else ["policy"]
    means = users.groupby(keys, sort=False)[cols].mean().reset_index()
    head = [*keys, "accuracy", "macro-F1", "neutral FP rate", "regret vs oracle", "explicit answers / interaction",
            "mean w_face", "final w_face"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in means.itertuples(index=False):
        vals = [getattr(r, k) for k in keys] + [f"{getattr(r, c):.3f}" for c in cols]
        lines.append("| " + " | ".join(map(str, vals)) + " |")
    return "\n".join(lines)


def _paper_section(study: Study, users: pd.DataFrame, summary: pd.DataFrame) -> str:
    cond = users["condition"].iloc[0]
    sel = users[users["condition"] == cond]
    acc = sel.groupby("policy")["accuracy"].mean()
    lines = [
        "## The paper side by side",
        "",
        "| | the paper | this run |",
        "|---|---|---|",
    ]
    q = summary[(summary["condition"] == cond) & (summary["policy"] == "q-learning")]
    if not q.empty:
        r = q.iloc[0]
        lines.append(
            f"| macro-F1 gain of adaptive fusion over fixed fusion (points) | +{PAPER['pilot_gain_points']:.1f} "
            f"(6 users × 2 weeks) | {r.mean_gain:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}] "
            f"({int(r.n_users)} users × {int(r.n_seeds)} seeds) |"
        )
    for what, (policy, value) in PAPER["ablation_accuracy"].items():
        ours = f"{100 * acc[policy]:.1f} %" if policy in acc.index else "not run"
        lines.append(f"| Table 8 accuracy, {what} | {value:.1f} % | {ours} (`{policy}`) |")
    if "q-learning" in acc.index:
        from agents.base import make_policy

        name, params = study.policy_params("q-learning", cond)
        config = make_policy(name, **params).config
        n_user = sel[sel["policy"] == "q-learning"]["n"].mean()
        eps_end = config.epsilon(n_user)
        lines += [
            "",
            f"Why the sign can differ: a simulated user answers {n_user:.0f} prompts in this pilot on average, "
            f"while the Q-learner's exploration decays from ε = {config.epsilon_start} to {config.epsilon_end} "
            f"over {config.epsilon_decay} interactions, so it still explores with ε ≈ {eps_end:.2f} on the last "
            "day: a share of its weight moves are random, and it has seen each state a handful of times. "
            "The paper reports neither its schedule nor its pilot's interaction counts; the `sensitivity` "
            "study sweeps α, γ, Δw and k, and `waves` shows what a population warm start buys.",
        ]
    lines += [
        "",
        "What is comparable and what is not: the paper trained and tested its models on FER-2013, CK+ "
        "and EMO-DB recordings and ran its pilot with six real people; this run uses the models "
        "shipped with mer-gym, trained on a generated face + speech corpus, and simulated users whose "
        "capture conditions, feedback and emotions follow published rates. The absolute accuracies "
        "therefore differ: the shipped models are weaker than the paper's (see `mer-gym models table`), "
        "and the simulated users' capture conditions are harder by design, so that personalization has "
        "something to fix. The *design* is the same: the same fusion head, the same Q-learning "
        "(Eq. 3, α = 0.05, γ = 0.9, Δw = 0.1), the same pilot size, and the gain is a paired "
        "difference on the same streams. Table 8 is a dataset-level ablation; ours is the mean "
        "accuracy over the pilot's users and seeds.",
        "",
    ]
    return "\n".join(lines)


def _markdown(
    study: Study, out: Path, days: pd.DataFrame, users: pd.DataFrame, summary: pd.DataFrame,
    subgroups: pd.DataFrame | None, detection: pd.DataFrame, figures: dict[str, Path], prov: dict[str, Any],
) -> str:
    several = len(study.conditions) > 1
    n_users = users["user_id"].nunique()
    interactions = int(days["n"].sum())
    pop = study.population
    lines = [
        f"# Study `{study.name}`",
        "",
        f"**Question.** {study.question.strip() or '(none given)'}",
        "",
        "## Setup",
        "",
        f"- Users: {n_users} from population preset `{pop.preset}`"
        + (f", {pop.days}-day pilots" if pop.days else "")
        + (f"; overrides `{json.dumps(pop.overrides)}`" if pop.overrides else "")
        + ".",
        f"- Seeds: {', '.join(map(str, study.seeds))} (each seed is a stream seed shared by every policy: paired comparisons).",
        f"- Env: {', '.join(f'{k}={v}' for k, v in study.env.kwargs().items())}.",
        f"- Policies: {', '.join(f'`{p.label}`' + (f' {json.dumps(p.params)}' if p.params else '') for p in study.policies)}; "
        f"baseline `{study.baseline}`.",
    ]
    if study.conditions:
        lines.append(f"- Conditions: {', '.join(f'`{c.label}`' for c in study.conditions)}.")
    if study.warm_start:
        lines.append(
            f"- Warm start: `{study.warm_start.policy}` starts each user from the mean final Q-table of "
            f"`{study.warm_start.source}` over the users of earlier enrolment waves."
        )
    lines += [
        f"- {len(days.groupby(metrics.KEYS))} runs, {interactions:,} interactions.",
        "",
        "## Gains over the baseline",
        "",
        f"Macro-F1 gain in points (×100) over `{study.baseline}` on the same streams. The mean gain and its "
        "bootstrap 95 % CI, the paired t-test (as in the paper) and the Wilcoxon signed-rank test are over "
        "users (seeds averaged within a user); p-values are Holm-corrected across policies. The IQM "
        "(interquartile mean) is over users × seeds with a stratified bootstrap CI (rliable's definition). "
        "*Worst quarter*: the mean gain of the worst-off 25 % of users; *users hurt*: the share with a "
        "negative gain.",
        "",
        _gain_table(summary, several),
        "",
        "## Metrics per policy",
        "",
        "Means over users and seeds. *Neutral FP rate*: the share of truly neutral moments called an "
        "emotion. *Regret*: the per-sample oracle's accuracy minus the policy's.",
        "",
        _metric_table(users, several),
        "",
    ]
    if subgroups is not None:
        lines += ["## Subgroups", "", "The gain table per subgroup (same statistics, within the subgroup).", ""]
        sub = subgroups.copy()
        sub["policy"] = sub["subgroup"] + " / " + sub["policy"]
        lines += [_gain_table(sub, several), ""]
    if not detection.empty:
        det = detection.groupby("policy", sort=False).agg(
            runs=("detected", "size"), detected=("detected", "mean"), median_delay=("delay_days", "median"),
            true_rise=("true_rise", "mean"), pred_rise=("pred_rise", "mean"),
        ).reset_index()
        lines += [
            "## A low-mood episode: how fast do the predictions show it?",
            "",
            "For streams with a low-mood episode: the share of runs whose predicted sadness (3-day window) "
            "rose by half the true rise while the episode lasted, and the median delay in days from its start.",
            "",
            "| policy | runs | detected | median delay (days) | true rise in sadness share | predicted rise |",
            "|---|---|---|---|---|---|",
        ]
        for r in det.itertuples(index=False):
            delay = "–" if not np.isfinite(r.median_delay) else f"{r.median_delay:.1f}"
            lines.append(f"| {r.policy} | {r.runs} | {100 * r.detected:.0f} % | {delay} | {r.true_rise:+.3f} | {r.pred_rise:+.3f} |")
        lines.append("")
    if study.paper:
        lines.append(_paper_section(study, users, summary))
    captions = {
        "gain_per_user": "Macro-F1 gain per user (the headline), 95 % bootstrap CIs over seeds.",
        "learning_curves": "Learning curves: macro-F1 by pilot day, pooled over users; band: 95 % CI over seeds.",
        "weight_trajectories": "Face-weight trajectories (end of each day) of the policies that move it, first seed.",
        "confusion_matrices": "Confusion matrices per policy (row-normalized, all users and seeds).",
        "gain_vs_feedback": "Per-user gain against the user's explicit-feedback rate.",
        "performance_profiles": "Performance profiles: the share of runs (user × seed) above each macro-F1 threshold.",
        "gain_vs_condition": "Mean gain per condition, 95 % CIs.",
    }
    lines += ["## Figures", ""]
    for key, path in figures.items():
        rel = path.relative_to(out).as_posix()
        lines += [f"**{captions.get(key, key)}**", "", f"![{key}]({rel})", ""]
    lines += ["## Provenance", ""]
    if prov:
        git = prov.get("git", {})
        lines += [
            f"- Study sha256: `{prov.get('study_sha256', '?')}`; git revision `{git.get('revision', '?')}`"
            + (" (with uncommitted changes)" if git.get("dirty") else "") + ".",
            f"- Backend: {prov.get('backend')} with {prov.get('workers')} workers; {prov.get('jobs')} jobs; "
            f"run time {prov.get('run_s')} s (this invocation: {prov.get('computed_now')} computed, "
            f"{prov.get('resumed_from')} resumed).",
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items()) + ".",
            "- Artifacts (sha256): " + ", ".join(f"{k} `{v[:12]}…`" for k, v in prov.get("artifacts_sha256", {}).items()) + ".",
            f"- Command: `{prov.get('command', '')}`.",
        ]
    lines += ["", "Tables: `days`, `per_user`, `weeks`, `learning` (parquet + CSV), `summary.csv`.", ""]
    return "\n".join(lines)


def _html(text: str, title: str) -> str:
    import markdown

    body = markdown.markdown(text, extensions=["tables"])
    style = (
        "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;line-height:1.45}"
        "table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em}"
        "img{max-width:100%}code{background:#f4f4f4}"
    )
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>mer-gym study {title}</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )
