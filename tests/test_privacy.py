"""Feedback under local differential privacy (mer_gym/envs/privacy.py, issue 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.base import make_policy
from agents.runner import env_for
from mer_gym.envs import PersonalizationEnv
from mer_gym.envs.privacy import LocalPrivacy


def run(policy_name: str, epsilon: float | None, users=(0, 1, 2, 3, 4, 5), seed: int = 0):
    policy = make_policy(policy_name)
    env = env_for(policy, population="paper-pilot", privacy_epsilon=epsilon)
    logs, infos = [], []
    for u in users:
        obs, info = env.reset(options={"user": u, "stream_seed": seed})
        policy.reset_user(info["user_id"], env=env)
        done = False
        while not done:
            a = policy.act(obs)
            obs, r, term, trunc, info = env.step(a)
            infos.append((info, r, obs))
            done = term or trunc
        logs.append(info)
    return infos


def explicit_items(infos):
    return [(item, info["prediction"], info["label"]) for info, _, _ in infos for item in info["explicit_feedback"]]


def test_randomized_response_rates():
    for eps in (0.1, 1.0, 3.0):
        ldp = LocalPrivacy(eps)
        assert ldp.p_truth == pytest.approx(math.exp(eps) / (math.exp(eps) + 5))
        dice = LocalPrivacy.dice(200_000, 0, "u000")
        answers = np.array([ldp.answer(2, u, o) for u, o in zip(dice.u[:50_000], dice.offset[:50_000], strict=True)])
        p = (answers == 2).mean()
        assert abs(p - ldp.p_truth) < 4 * math.sqrt(ldp.p_truth * (1 - ldp.p_truth) / 50_000)
        others = np.bincount(answers[answers != 2], minlength=6)[[0, 1, 3, 4, 5]]
        assert others.min() > 0.9 * others.mean()  # the other emotions uniformly
        noise = ldp.laplace_scale * dice.noise_rt
        assert np.std(noise) == pytest.approx(math.sqrt(2) * 2 / eps, rel=0.03)


def test_no_privacy_is_the_default_and_huge_epsilon_changes_no_answer():
    plain = run("q-learning", None, users=(0, 1))
    again = run("q-learning", None, users=(0, 1))
    assert [r for _, r, _ in plain] == [r for _, r, _ in again]
    loose = run("equal-weights", 1e6, users=(0, 1))
    ref = run("equal-weights", None, users=(0, 1))
    assert [i for i, _, _ in explicit_items(loose)] == [i for i, _, _ in explicit_items(ref)]
    for (a, _, _), (b, _, _) in zip(loose, ref, strict=True):
        # the privatized cues are the env's clipped ones (the system never sees beyond [0, 1])
        assert a["response_time_s"] == pytest.approx(min(b["response_time_s"], 30.0), abs=1e-3)
        assert a["engagement"] == pytest.approx(min(max(b["engagement"], 0.0), 1.0), abs=1e-4)


def test_strong_privacy_randomizes_what_the_policy_sees_and_only_that():
    eps = 0.2
    private = run("equal-weights", eps)
    ref = run("equal-weights", None)
    # the truth, the predictions and which interactions got an explicit answer do not change
    assert [i["label"] for i, _, _ in private] == [i["label"] for i, _, _ in ref]
    assert [i["prediction"] for i, _, _ in private] == [i["prediction"] for i, _, _ in ref]
    items, ref_items = explicit_items(private), explicit_items(ref)
    assert [i["step"] for i, _, _ in items] == [i["step"] for i, _, _ in ref_items]
    same = np.mean([a["answer"] == b["answer"] for (a, _, _), (b, _, _) in zip(items, ref_items, strict=True)])
    p = LocalPrivacy(eps).p_truth
    n = len(items)
    assert n > 100 and abs(same - p) < 4 * math.sqrt(p * (1 - p) / n) + 0.02
    # what the policy sees agrees with the privatized answers: the obs and the reward follow them
    for info, reward, obs in private:
        fb = info["explicit_feedback"]
        for item in fb:
            assert item["confirmed"] == (item["answer"] == info["prediction"]) or item["step"] != info["step"]
        if fb:
            corrections = sum(not item["confirmed"] for item in fb)
            assert int(obs["explicit"]) == (2 if corrections else 1)
            # the explicit part of the default reward: +1 per confirmation, -1 per correction
            assert abs(reward - (len(fb) - 2 * corrections)) < 1.0
        assert 0.0 <= info["engagement"] <= 1.0 and info["response_time_s"] > 0


def test_privacy_dice_are_common_random_numbers():
    a = run("random", 0.5, users=(0,))
    b = run("random", 0.5, users=(0,))
    assert [i["explicit_feedback"] for i, _, _ in a] == [i["explicit_feedback"] for i, _, _ in b]
    d1, d2 = LocalPrivacy.dice(50, 3, "u001"), LocalPrivacy.dice(50, 3, "u001")
    np.testing.assert_array_equal(d1.u, d2.u)
    assert not np.array_equal(d1.u, LocalPrivacy.dice(50, 3, "u002").u)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_bad_epsilon_names_the_argument(bad):
    with pytest.raises(ValueError, match="privacy_epsilon"):
        PersonalizationEnv(privacy_epsilon=bad)


def test_privacy_study_runs_and_plots_gain_against_epsilon(tmp_path):
    from studies.report import analyze
    from studies.runner import run_study
    from studies.spec import load_study

    study = load_study("privacy").scaled(n_users=3, seeds=1, days=4)
    run_study(study, tmp_path / "p", n_workers=1, progress=False)
    report = analyze(tmp_path / "p").read_text()
    assert (tmp_path / "p" / "figures" / "gain_vs_condition.png").is_file()
    assert "eps=0.5" in report and "no privacy" in report
    summary = (tmp_path / "p" / "summary.csv").read_text()
    assert summary.count("eps=") == 5 * 4  # 5 epsilon arms x 4 policies besides the baseline
