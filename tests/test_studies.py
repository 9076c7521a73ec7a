"""Studies: the YAML spec, the runner (parallel, resumable, Ray), the metrics and the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from mer_gym.config import ConfigError
from mer_gym.labels import EMOTIONS
from studies import metrics
from studies.runner import DAY_COLUMNS, StudyError, plan, run_study
from studies.spec import Study, load_study, study_from_mapping, study_names

ROOT = Path(__file__).resolve().parents[1]

SHIPPED = [
    "drift", "fairness", "feedback-sparsity", "fusion", "pilot", "population", "privacy", "sensitivity", "waves",
]


def tiny(**changes) -> Study:
    """A study small enough for unit tests: 2 users x 4 days x 2 seeds."""
    data = {
        "name": "tiny",
        "question": "test",
        "population": {"preset": "paper-pilot", "n_users": 2, "days": 4},
        "seeds": 2,
        "policies": ["equal-weights", "q-learning", "random", "hindsight-best"],
        **changes,
    }
    return study_from_mapping(data, where="tiny")


def read_days(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "days.parquet")


# ---- the spec ----------------------------------------------------------------------------------


def test_every_shipped_study_loads_and_plans():
    assert study_names() == SHIPPED
    for name in SHIPPED:
        study = load_study(name)
        jobs = plan(study)
        n_users = len({(j.condition, j.user_id) for j in jobs}) // len(study.condition_labels)
        assert len(jobs) == len(study.condition_labels) * len(study.policies) * len(study.seeds) * n_users
        assert load_study(ROOT / "studies" / f"{name}.yaml") == study


def test_population_study_is_the_issue_size():
    study = load_study("population")
    assert study.population.n_users == 200 and len(study.seeds) == 5
    from simulators.users.population import load_population

    assert load_population(study.population.preset).profile["schedule"]["days"] == 56
    deep = {"dqn", "ppo", "a2c"}
    assert not deep & {p.name for p in study.policies}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"seedz": 3}, "seedz"),
        ({"policies": ["q-learning"]}, "baseline 'equal-weights' is not among the policies"),
        ({"seeds": [1, 1]}, "seeds repeat"),
        ({"population": {"preset": "paper-pilot", "n_users": 0}}, "population.n_users"),
        ({"conditions": [{"label": "a", "env": {"fusoin": "late"}}]}, "fusoin"),
        ({"policies": ["equal-weights", "equal-weights"]}, "labels repeat"),
        ({"warm_start": {"policy": "q-learning-warm"}}, "warm_start.policy"),
    ],
)
def test_bad_study_names_the_field(change, needle):
    with pytest.raises(ConfigError, match=needle):
        tiny(**change)


def test_unknown_study_and_missing_file():
    with pytest.raises(ConfigError, match=r"unknown study 'pilto'.*pilot"):
        load_study("pilto")
    with pytest.raises(ConfigError, match="does not exist"):
        load_study("nowhere/else.yaml")


# ---- the runner --------------------------------------------------------------------------------


def test_days_table_and_common_random_numbers(tmp_path):
    study = tiny()
    run_study(study, tmp_path / "a", n_workers=1, progress=False)
    days = read_days(tmp_path / "a")
    assert list(days.columns) == list(DAY_COLUMNS)
    assert len(days.groupby(metrics.KEYS)) == len(plan(study)) == 4 * 2 * 2
    # every policy meets a user on the same stream: same days, interaction counts and truth
    truth = [f"cm_{i}_{j}" for i in range(6) for j in range(6)]
    for i in range(6):  # interactions whose true emotion is i
        days[f"true_{i}"] = days[[f"cm_{i}_{j}" for j in range(6)]].sum(axis=1)
    key = ["user_id", "seed", "day"]
    ref = days[days["policy"] == "equal-weights"].set_index(key)[["n", "oracle_correct", "in_episode", *[f"true_{i}" for i in range(6)]]]
    for policy, sel in days.groupby("policy"):
        pd.testing.assert_frame_equal(sel.set_index(key)[ref.columns], ref, check_names=False, obj=policy)
    assert days[truth].to_numpy().sum() == days["n"].sum()
    # the per-sample oracle is never below any policy; equal weights never move
    assert (days["oracle_correct"] >= days["correct"]).all()
    assert (days.loc[days["policy"] == "equal-weights", "w_face_end"] == 0.5).all()


def test_results_do_not_depend_on_workers(tmp_path):
    study = tiny()
    run_study(study, tmp_path / "one", n_workers=1, progress=False)
    run_study(study, tmp_path / "two", n_workers=2, chunk_size=1, progress=False)
    pd.testing.assert_frame_equal(read_days(tmp_path / "one"), read_days(tmp_path / "two"))
    assert (tmp_path / "one" / "days.csv").read_bytes() == (tmp_path / "two" / "days.csv").read_bytes()


def test_interrupted_run_resumes_without_recomputing(tmp_path):
    study = tiny()
    full = tmp_path / "full"
    run_study(study, full, n_workers=1, progress=False)
    part = tmp_path / "part"
    seen: list = []

    def stop_after_five(job):
        seen.append(job)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(study, part, n_workers=1, chunk_size=1, progress=False, on_job=stop_after_five)
    assert len(list((part / "jobs").glob("*.parquet"))) == 5
    assert not (part / "days.parquet").exists()
    with pytest.raises(StudyError, match="--resume"):
        run_study(study, part, n_workers=1, progress=False)
    again: list = []
    run_study(study, part, n_workers=1, progress=False, resume=True, on_job=again.append)
    assert len(again) == len(plan(study)) - 5
    assert not set(again) & set(seen)
    pd.testing.assert_frame_equal(read_days(part), read_days(full))


def test_resume_refuses_another_study(tmp_path):
    run_study(tiny(), tmp_path / "r", n_workers=1, progress=False)
    with pytest.raises(StudyError, match="different study"):
        run_study(tiny(seeds=3), tmp_path / "r", n_workers=1, progress=False, resume=True)


def test_provenance_is_saved(tmp_path):
    import json

    run_study(tiny(seeds=1), tmp_path / "r", n_workers=1, progress=False)
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    assert prov["versions"]["numpy"] == np.__version__
    assert set(prov["artifacts_sha256"]) >= {"face_cnn.keras", "speech_lstm.keras", "fusion_head.keras", "user_pool.npz"}
    assert "revision" in prov["git"] and prov["jobs"] == 8
    assert json.loads((tmp_path / "r" / "study.json").read_text())["name"] == "tiny"


def test_conditions_and_warm_start(tmp_path):
    study = tiny(
        population={"preset": "population", "n_users": 4, "days": 7, "overrides": {"enrolment": {"waves": 2, "every_days": 3}}},
        seeds=1,
        policies=["equal-weights", "q-learning", "q-learning-warm"],
        warm_start={"policy": "q-learning-warm", "source": "q-learning"},
        conditions=[{"label": "a"}, {"label": "b", "params": {"alpha": 0.5}, "applies_to": ["q-learning"]}],
    )
    run_study(study, tmp_path / "w", n_workers=1, progress=False)
    users = metrics.per_user(read_days(tmp_path / "w"))
    acc = users.pivot_table(index=["condition", "user_id"], columns="policy", values="correct")
    # wave 0 (users 0 and 2) starts cold: the warm policy plays exactly as the cold one there
    for cond in ("a", "b"):
        for uid in ("u000", "u002"):
            if cond == "a":
                assert acc.loc[(cond, uid), "q-learning"] == acc.loc[(cond, uid), "q-learning-warm"]
    assert len(list((tmp_path / "w" / "qtables").glob("*.npy"))) == 2 * 4
    # the condition's alpha changes q-learning only (equal weights the same in both arms)
    eq = acc["equal-weights"]
    assert (eq.loc["a"] == eq.loc["b"]).all()


# ---- metrics -----------------------------------------------------------------------------------


def test_metrics_equal_sklearn_on_the_interaction_log(tmp_path):
    study = tiny(log_interactions=True, seeds=1)
    run_study(study, tmp_path / "r", n_workers=1, progress=False)
    log = pd.read_parquet(tmp_path / "r" / "interactions")
    users = metrics.per_user(read_days(tmp_path / "r")).set_index(["policy", "user_id"])
    for (policy, uid), sel in log.groupby(["policy", "user_id"]):
        row = users.loc[(policy, uid)]
        assert row["accuracy"] == pytest.approx(accuracy_score(sel["label"], sel["prediction"]), abs=1e-12)
        f1 = f1_score(sel["label"], sel["prediction"], labels=list(EMOTIONS), average="macro", zero_division=0)
        assert row["macro_f1"] == pytest.approx(f1, abs=1e-12)
        assert row["regret"] == pytest.approx(sel["oracle_correct"].mean() - sel["correct"].mean(), abs=1e-12)
        neutral = sel[sel["label"] == "neutral"]
        if len(neutral):
            assert row["neutral_fpr"] == pytest.approx((neutral["prediction"] != "neutral").mean())
        assert row["w_face_final"] == sel["w_face"].iloc[-1]


def _synthetic_days(pred_sad_by_day: list[float], true_sad_by_day: list[float], episode: range) -> pd.DataFrame:
    rows = []
    sad, neutral = EMOTIONS.index("sadness"), EMOTIONS.index("neutral")
    for day, (ps, ts) in enumerate(zip(pred_sad_by_day, true_sad_by_day, strict=True)):
        cm = np.zeros((6, 6), np.int64)
        # 10 interactions a day: ts of them truly sad, ps of them predicted sad (taken from neutral)
        cm[sad, sad] = min(ps, ts)
        cm[sad, neutral] = ts - min(ps, ts)
        cm[neutral, sad] = ps - min(ps, ts)
        cm[neutral, neutral] = 10 - cm.sum()
        row = {"condition": "default", "policy": "p", "user_id": "u", "subgroup": "all", "seed": 0,
               "day": day, "week": day // 7, "n": 10, "in_episode": 10 if day in episode else 0}
        row.update({f"cm_{i}_{j}": int(cm[i, j]) for i in range(6) for j in range(6)})
        rows.append(row)
    return pd.DataFrame(rows)


def test_detection_delay_known_answer():
    episode = range(10, 17)
    true = [1] * 10 + [5] * 7 + [1] * 3  # true sad share 0.1 -> 0.5: rise 0.4, threshold +0.2
    pred = [1] * 10 + [1, 1, 1, 5, 5, 5, 5] + [1] * 3  # predictions follow on day 13
    out = metrics.detection_delay(_synthetic_days(pred, true, episode))
    row = out.iloc[0]
    assert row["episode_start"] == 10 and row["true_rise"] == pytest.approx(0.4)
    # threshold 0.1 + 0.2: the 3-day window ending on day 13 holds (1+1+5)/30 = 0.233, not enough;
    # the one ending on day 14 holds (1+5+5)/30 = 0.367
    assert row["detected"] and row["delay_days"] == 4
    never = metrics.detection_delay(_synthetic_days([1] * 20, true, episode)).iloc[0]
    assert not never["detected"] and np.isnan(never["delay_days"])


# ---- the command, a kill, and Ray ---------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mer_gym.cli", *args]


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_tables(tmp_path):
    yaml = tmp_path / "kill.yaml"
    yaml.write_text(
        "name: kill\npopulation: {preset: paper-pilot, n_users: 6, days: 5}\nseeds: 2\n"
        "policies: [equal-weights, q-learning, linucb, random]\n"
    )
    ref, out = tmp_path / "ref", tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(_cli("run", str(yaml), "--out", str(ref), "--workers", "2", "--quiet", "--no-report"),
                   check=True, env=env, cwd=ROOT)
    total = len(list((ref / "jobs").glob("*.parquet")))
    kills = 0
    rng = np.random.default_rng(8)
    for _attempt in range(4):  # kill it at random moments, then let it finish
        cmd = _cli("run", str(yaml), "--out", str(out), "--workers", "2", "--quiet", "--no-report", "--resume")
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
        before = len(list((out / "jobs").glob("*.parquet"))) if (out / "jobs").exists() else 0
        wait_jobs, extra_s = int(rng.integers(1, 8)), float(rng.uniform(0.0, 0.3))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = len(list((out / "jobs").glob("*.parquet"))) if (out / "jobs").exists() else 0
            if done >= before + wait_jobs:
                time.sleep(extra_s)
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.02)
        proc.wait()
    assert kills >= 1
    partial = len(list((out / "jobs").glob("*.parquet")))
    assert partial < total
    subprocess.run(_cli("run", str(yaml), "--out", str(out), "--workers", "2", "--quiet", "--no-report", "--resume"),
                   check=True, env=env, cwd=ROOT)
    days = read_days(out)
    pd.testing.assert_frame_equal(days, read_days(ref))
    assert not days.duplicated(["policy", "user_id", "seed", "day"]).any()  # no job counted twice
    assert len(list((out / "jobs").glob("*.parquet"))) == total
    assert not list((out / "jobs").glob(".*partial"))


@pytest.mark.slow
def test_ray_backend_gives_the_joblib_tables(tmp_path):
    pytest.importorskip("ray")
    study = tiny()
    run_study(study, tmp_path / "joblib", n_workers=2, progress=False)
    run_study(study, tmp_path / "ray", backend="ray", n_workers=2, progress=False)
    pd.testing.assert_frame_equal(read_days(tmp_path / "ray"), read_days(tmp_path / "joblib"))


def test_scores_equal_sklearn_on_random_confusions():
    from sklearn.metrics import recall_score

    rng = np.random.default_rng(3)
    counts = rng.integers(0, 4, size=(40, 36)) * (rng.random((40, 36)) < 0.4)
    counts[0] = 0
    counts[0, 0] = 5  # one class only
    out = metrics.scores(counts)
    true, pred = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    for r, row in enumerate(counts):
        if row.sum() == 0:
            assert np.isnan(out["macro_f1"][r])
            continue
        keep = row > 0
        yt, yp, w = true[keep], pred[keep], row[keep]
        f1 = f1_score(yt, yp, labels=list(range(6)), average="macro", sample_weight=w, zero_division=0)
        assert out["macro_f1"][r] == pytest.approx(f1, abs=1e-12)
        assert out["accuracy"][r] == pytest.approx(accuracy_score(yt, yp, sample_weight=w), abs=1e-12)
        rec = recall_score(yt, yp, labels=list(range(6)), average=None, sample_weight=w, zero_division=np.nan)
        np.testing.assert_allclose(out[[f"recall_{e}" for e in EMOTIONS]].to_numpy()[r], rec, atol=1e-12)


def _gain_table(markdown: str) -> str:
    start = markdown.index("| policy | macro-F1 | gain (points)")
    return markdown[start:].split("\n\n", 1)[0].strip()


@pytest.mark.slow
def test_main_command_runs_the_pilot_and_docs_quote_its_table(tmp_path):
    """The README's main command (``make demo`` = ``mer-gym run pilot``): the report, the per-user
    gain plot, the time printed; docs/studies.md and the README quote the report's gain table."""
    out = tmp_path / "pilot"
    done = subprocess.run(_cli("run", "pilot", "--out", str(out), "--quiet"), check=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert "study pilot: ran in" in done.stdout
    report = (out / "report.md").read_text()
    assert (out / "report.html").is_file()
    for name in ("gain_per_user", "learning_curves", "weight_trajectories", "confusion_matrices",
                 "gain_vs_feedback", "performance_profiles"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
        assert f"figures/{name}.png" in report
    assert "## The paper side by side" in report and "+1.2" in report
    for doc in ("docs/studies.md", "README.md"):
        text = (ROOT / doc).read_text()
        assert _gain_table(text) == _gain_table(report), f"{doc}: paste the pilot's gain table from the report"
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["policy"]) == {p.label for p in load_study("pilot").policies} - {"equal-weights"}
    # the bounds order: oracle >= hindsight-best >= the baseline, on every user
    users = pd.read_parquet(out / "per_user.parquet")
    acc = users.pivot_table(index=["user_id", "seed"], columns="policy", values="accuracy")
    assert (acc["oracle"] >= acc["hindsight-best"] - 1e-12).all()
