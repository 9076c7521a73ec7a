"""Simulated users: every mechanism measured from long streams, against the profile that drew it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mer_gym.config import ConfigError
from mer_gym.labels import EMOTIONS
from simulators.users.describe import (
    best_fixed_weight,
    describe_users,
    gain_line,
    pool_table,
    spread_text,
    weight_curve,
)
from simulators.users.feedback import NONE, UserState, respond
from simulators.users.pool import PoolError, UserPool, default_dir, default_pool
from simulators.users.population import load_population, population_names, sample_population
from simulators.users.profile import DEFAULT_BASE_RATES, Profile
from simulators.users.stream import draw_stream, markov_chain

SAD, HAPPY = EMOTIONS.index("sadness"), EMOTIONS.index("happiness")


@pytest.fixture(scope="module")
def pool() -> UserPool:
    return default_pool()


def make_profile(pool: UserPool, **changes) -> Profile:
    """A one-context, full-compliance profile (so that consecutive interactions are consecutive
    prompts), long by default; ``changes`` is merged into the mapping."""
    data = {
        "user_id": "t0",
        "person_id": pool.person_ids[0],
        "contexts": [{"name": "home", "face": {"clean": 1.0}, "speech": {"clean": 1.0}}],
        "schedule": {"days": 350, "prompts_per_day": 10, "compliance": 1.0, "miss_streak": 0.0,
                     "weekly_compliance_decline": 0.0, "morning_compliance_factor": 1.0},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Profile.from_dict(data)


def z_ok(measured: float, expected: float, n: int, z: float = 4.0) -> bool:
    """``measured`` proportion within ``z`` binomial standard errors of ``expected``."""
    se = np.sqrt(max(expected * (1 - expected), 1e-9) / n)
    return abs(measured - expected) <= z * se


# ---------------------------------------------------------------------------------------------
# The pool


def docs_block(name: str) -> str:
    text = (Path(__file__).parents[1] / "docs" / "users.md").read_text()
    return text.split(f"<!-- {name}:start -->")[1].split(f"<!-- {name}:end -->")[0]


def test_docs_pool_table_is_the_commands_output(pool):
    assert pool_table(pool) in docs_block("pool-table"), "update docs/users.md from `mer-gym users --describe`"


def test_shipped_pool_matches_its_card_and_has_heterogeneous_persons(pool):
    card = json.loads((default_dir() / "user_pool.json").read_text())
    assert pool.n_persons == 32 and pool.face_conditions[0] == "clean" and pool.speech_conditions[0] == "clean"
    assert (pool.n_moments == 8).all()
    for name in ("face_cnn", "speech_lstm", "fusion_head"):
        model = json.loads((default_dir() / f"{name}.card.json").read_text())
        assert card["models"][name] == model["sha256"], f"pool built with another {name}: run `make pool`"
    face, speech = pool.accuracy("face"), pool.accuracy("speech")
    # conditions cost accuracy on average, as in the model cards
    assert face["clean"].mean() > face["blur"].mean() + 0.2
    assert speech["clean"].mean() > speech["snr_0db"].mean() + 0.05
    # persons differ: some are captured far better by the face, others by the voice
    gap = face["clean"] - speech["clean"]
    assert gap.max() > 0.3 and gap.min() < -0.1


def test_pool_fused_softmax_is_a_distribution_and_absent_modality_is_zeroed(pool):
    rows = np.arange(50)
    p = pool.fused_softmax(rows, rows, 0.3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # with the face absent the face weight still scales nothing of the face: w=0 and w=1 differ
    # only through the speech half
    off = pool.fused_softmax(rows, rows, 0.3, face_present=np.zeros(50, bool))
    manual = pool.projection.fused_softmax(
        np.zeros((50, pool.projection.embedding_dim)), pool.speech_flat("proj")[rows].astype(float), 0.3
    )
    np.testing.assert_allclose(off, manual, atol=1e-12)
    with pytest.raises(ValueError, match="w_face"):
        pool.fused_softmax(rows, rows, 1.5)


def test_tampered_or_missing_pool_is_refused(tmp_path, pool):
    for name in ("user_pool.npz", "user_pool.json"):
        shutil.copy(default_dir() / name, tmp_path / name)
    assert UserPool.load(tmp_path).n_persons == pool.n_persons
    data = bytearray((tmp_path / "user_pool.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "user_pool.npz").write_bytes(bytes(data))
    with pytest.raises(PoolError, match="sha256 does not match"):
        UserPool.load(tmp_path)
    with pytest.raises(PoolError, match="no user pool"):
        UserPool.load(tmp_path / "nowhere")


def test_pool_save_load_round_trip(tmp_path, pool):
    path = pool.save(tmp_path)
    back = UserPool.load(path.parent)
    np.testing.assert_array_equal(back.face_proj, pool.face_proj)
    np.testing.assert_array_equal(back.speech_softmax, pool.speech_softmax)
    assert back.person_ids == pool.person_ids and back.speech_conditions == pool.speech_conditions
    np.testing.assert_array_equal(back.fused_softmax(7, 9, 0.4), pool.fused_softmax(7, 9, 0.4))


# ---------------------------------------------------------------------------------------------
# Bad input names the field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"feedback": {"p_explicit": 1.5}}, "feedback.p_explicit"),
        ({"feedback": {"colour": 1}}, "colour"),
        ({"emotions": {"base_rates": {"joy": 1.0}}}, "joy"),
        ({"emotions": {"base_rates": {"neutral": 0.5, "anger": 0.2}}}, "sum to 0.7"),
        ({"emotions": {"inertia": -0.1}}, "emotions.inertia"),
        ({"schedule": {"days": 0}}, "schedule.days"),
        ({"contexts": [{"name": "home", "p_camera_off": 2}]}, "p_camera_off"),
        ({"contexts": [{"name": "home", "face": {"clean": 0.5}}]}, "face: probabilities sum"),
        ({"drift": [{"day": 3, "contexts": ["office"]}]}, "office"),
    ],
)
def test_bad_profile_fields_are_named(pool, change, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        make_profile(pool, **change)


def test_profile_round_trips_through_a_plain_mapping(pool):
    prof = sample_population("drift", pool, n_users=2)[0]
    assert Profile.from_dict(prof.to_dict()) == prof


def test_pool_refuses_a_person_or_condition_it_lacks(pool):
    with pytest.raises(PoolError, match="person_id = 'nobody'"):
        draw_stream(make_profile(pool, person_id="nobody"), pool)
    fog = make_profile(pool, contexts=[{"name": "home", "face": {"fog": 1.0}}])
    with pytest.raises(PoolError, match=r"face condition\(s\) fog"):
        draw_stream(fog, pool)


def test_bad_population_presets(tmp_path, pool):
    with pytest.raises(ConfigError, match="unknown population preset 'nope'"):
        load_population("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nn_users: 3\nvariaton: {}\n")
    with pytest.raises(ConfigError, match="'variaton'"):
        load_population(bad)
    bad.write_text("name: bad\nprofile: {feedback: {label_noise: 3}}\n")
    with pytest.raises(ConfigError, match=r"feedback\.label_noise"):
        load_population(bad)
    bad.write_text("name: bad\nprofile: {person_id: p0001}\n")
    with pytest.raises(ConfigError, match="set by the sampler"):
        load_population(bad)
    bad.write_text("name: bad\nsubgroups: [{name: g, persons: {facial_expressivity: [0.0, 0.01]}}]\n")
    with pytest.raises(ConfigError, match="no person of the pool matches"):
        sample_population(load_population(bad), pool)
    with pytest.raises(ConfigError, match="n_users"):
        sample_population("paper-pilot", pool, n_users=0)


# ---------------------------------------------------------------------------------------------
# Populations


def test_every_shipped_population_samples_and_draws(pool):
    assert {"paper-pilot", "population", "drift", "sparse-feedback", "subgroups"} <= set(population_names())
    pilot = sample_population("paper-pilot", pool)
    assert len(pilot) == 6 and all(p.schedule.days == 14 for p in pilot)
    assert len({p.person_id for p in pilot}) == 6  # drawn without replacement while the pool allows
    big = load_population("population")
    assert big.n_users >= 200 and big.profile["schedule"]["days"] == 56
    for name in population_names():
        for prof in sample_population(name, pool, n_users=6):
            assert len(draw_stream(prof, pool, 0)) > 0


def test_sampler_is_deterministic_and_seeded(pool):
    a = sample_population("population", pool, n_users=20, seed=3)
    b = sample_population("population", pool, n_users=20, seed=3)
    c = sample_population("population", pool, n_users=20, seed=4)
    assert a == b and a != c
    # users differ around the template
    assert len({p.feedback.p_explicit for p in a}) > 10
    assert len({json.dumps(p.contexts[0].face, sort_keys=True) for p in a}) > 10


def test_subgroups_select_persons_by_expressivity(pool):
    profiles = sample_population("subgroups", pool)
    groups = {p.subgroup for p in profiles}
    assert groups == {"low-facial-expressivity", "low-vocal-expressivity", "noisy-surroundings"}
    assert all(p.facial_expressivity <= 0.5 for p in profiles if p.subgroup == "low-facial-expressivity")
    assert all(p.vocal_expressivity <= 0.5 for p in profiles if p.subgroup == "low-vocal-expressivity")
    noisy = next(p for p in profiles if p.subgroup == "noisy-surroundings")
    assert "snr_0db" in noisy.contexts[1].speech


def test_enrolment_waves_shift_start_days(tmp_path, pool):
    path = tmp_path / "waves.yaml"
    path.write_text("name: waves\nn_users: 8\nenrolment: {waves: 4, every_days: 14}\n")
    starts = [p.schedule.start_day for p in sample_population(load_population(path), pool)]
    assert starts == [0, 14, 28, 42] * 2
    st = draw_stream(sample_population(load_population(path), pool)[1], pool)
    assert st.study_day.min() >= 14 and (st.study_day - st.pilot_day == 14).all()
    assert str(st.timestamp[0]).startswith("2026-01-19")  # study day 14 is two weeks after 2026-01-05


# ---------------------------------------------------------------------------------------------
# Streams: determinism and common random numbers


def test_stream_is_deterministic_by_seed_and_hides_the_label(pool):
    prof = sample_population("paper-pilot", pool)[0]
    a, b, c = draw_stream(prof, pool, 1), draw_stream(prof, pool, 1), draw_stream(prof, pool, 2)
    for name in a.OBSERVABLE + a.DICE + a.TRUTH:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.label, c.label[: len(a)]) or len(a) != len(c)
    assert not set(a.observable()) & {"label", "in_episode"}
    assert "label" not in a.to_frame().columns and "label" in a.to_frame(truth=True).columns
    with pytest.raises(ValueError, match="read-only"):
        a.label[0] = 0


def test_mechanisms_draw_from_separate_streams(pool):
    """Changing the feedback behaviour leaves emotions, times and captures untouched."""
    base = make_profile(pool, schedule={"days": 28})
    other = dataclasses.replace(base, feedback=dataclasses.replace(base.feedback, p_explicit=0.9))
    a, b = draw_stream(base, pool, 5), draw_stream(other, pool, 5)
    for name in ("label", "hour", "face_row", "speech_row", "u_explicit", "z_rt"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# ---------------------------------------------------------------------------------------------
# Emotion dynamics


def test_base_rates_and_inertia_match_the_profile(pool):
    prof = make_profile(pool, emotions={"inertia": 0.4})
    st = draw_stream(prof, pool, 0)
    n = len(st)
    assert n == 3500
    for k, e in enumerate(EMOTIONS):
        expected = DEFAULT_BASE_RATES[e]
        share = float((st.label == k).mean())
        # the chain's draws are autocorrelated: widen the binomial band by the variance inflation
        inflation = np.sqrt((1 + 0.4) / (1 - 0.4))
        assert abs(share - expected) <= 4 * inflation * np.sqrt(expected * (1 - expected) / n), e
    for e in ("neutral", "happiness"):
        x = (st.label == EMOTIONS.index(e)).astype(float)
        r = np.corrcoef(x[:-1], x[1:])[0, 1]
        assert abs(r - 0.4) < 0.07, (e, r)


def test_markov_chain_has_the_stated_autocorrelation():
    rng = np.random.default_rng(0)
    probs = np.tile([0.3, 0.7], (200_000, 1))
    x = (markov_chain(rng, probs, np.full(200_000, 0.6)) == 0).astype(float)
    assert abs(x.mean() - 0.3) < 0.01
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1] - 0.6) < 0.01


def test_low_mood_episode_raises_sadness(pool):
    prof = make_profile(
        pool,
        emotions={"episodes": [{"start_day": 100, "days": 100,
                                "rate_multipliers": {"sadness": 4.0, "happiness": 0.25}, "inertia": 0.5}]},
    )
    st = draw_stream(prof, pool, 0)
    inside, outside = st.in_episode, ~st.in_episode
    assert inside.sum() == 1000
    sad_in, sad_out = (st.label[inside] == SAD).mean(), (st.label[outside] == SAD).mean()
    # 0.10 * 4 renormalized: 0.4 / (1 + 0.3 + 0.075 - 0.3 ... ) -> expected share from the profile
    rates, _ = prof.emotions.rates(150)
    assert abs(sad_in - rates[SAD]) < 0.08 and abs(sad_out - 0.10) < 0.03
    assert (st.label[inside] == HAPPY).mean() < (st.label[outside] == HAPPY).mean() - 0.15


# ---------------------------------------------------------------------------------------------
# Schedule, compliance and capture


def test_compliance_morning_and_streaks(pool):
    prof = make_profile(
        pool,
        schedule={"days": 350, "prompts_per_day": 10, "hours": [7.0, 21.0], "compliance": 0.8,
                  "morning_compliance_factor": 0.5, "miss_streak": 0.3, "weekly_compliance_decline": 0.0},
    )
    st = draw_stream(prof, pool, 0)
    assert st.counts["prompts"] == 3500 and st.counts["no_signal"] == 0
    answered = st.counts["interactions"] / st.counts["prompts"]
    # the share of prompts before 09:00 is (9 - 7) / 14 of the window
    morning = 2 / 14
    expected = 0.8 * (1 - morning) + 0.4 * morning
    assert z_ok(answered, expected, 3500, z=5)
    assert ((st.hour >= 7) & (st.hour < 21)).all()
    assert (st.hour < 9).mean() < morning * 0.4 / expected + 0.03


def test_weekly_compliance_decline(pool):
    prof = make_profile(pool, schedule={"days": 350, "compliance": 0.9, "weekly_compliance_decline": 0.05})
    st = draw_stream(prof, pool, 0)
    per_week = np.bincount(st.week, minlength=50) / 70
    assert per_week[:5].mean() > per_week[-5:].mean() + 0.4  # 0.9 -> 0.9 * 0.95**47 ~ 0.08


def test_camera_off_silence_and_conditions_match_the_context(pool):
    ctx = {"name": "home", "face": {"clean": 0.5, "low_light": 0.5},
           "speech": {"clean": 0.2, "snr_0db": 0.8}, "p_camera_off": 0.3, "p_silence": 0.2}
    st = draw_stream(make_profile(pool, contexts=[ctx]), pool, 0)
    n = st.counts["prompts"]
    # interactions with neither modality are dropped: P(kept) = 1 - 0.3 * 0.2
    assert z_ok(st.counts["no_signal"] / n, 0.06, n)
    assert z_ok(1 - st.face_present.mean(), 0.3 * 0.8 / 0.94, len(st))
    assert z_ok(1 - st.speech_present.mean(), 0.7 * 0.2 / 0.94, len(st))
    low = pool.face_conditions.index("low_light")
    assert z_ok((st.face_condition == low).mean(), 0.5, len(st))
    snr0 = pool.speech_conditions.index("snr_0db")
    assert z_ok((st.speech_condition == snr0).mean(), 0.8, len(st))
    # the rows are the person's, the label's and the condition's
    m, cf = pool.max_moments, len(pool.face_conditions)
    assert ((st.face_row % cf) == st.face_condition).all()
    assert ((st.face_row // cf // m) % len(EMOTIONS) == st.label).all()
    assert (st.face_row // cf // m // len(EMOTIONS) == 0).all()


def test_contexts_follow_their_hours(pool):
    contexts = [
        {"name": "home", "weight": 1.0},
        {"name": "work", "weight": 3.0, "hours": [9, 17]},
    ]
    st = draw_stream(make_profile(pool, contexts=contexts), pool, 0)
    work = st.context == 1
    assert ((st.hour[work] >= 9) & (st.hour[work] < 17)).all()
    daytime = (st.hour >= 9) & (st.hour < 17)
    assert z_ok(work[daytime].mean(), 0.75, int(daytime.sum()))


def test_drift_changes_the_affected_modality_accuracy(pool):
    """A dim room from day 7 costs the face model accuracy (measured with the frozen models'
    outputs in the pool); a new phone with a worse microphone costs the speech model."""
    profiles = sample_population("drift", pool, n_users=24)
    gaps = {"dim-room": [], "new-phone": []}
    for prof in profiles:
        prof = dataclasses.replace(prof, schedule=dataclasses.replace(prof.schedule, days=56))
        st = draw_stream(prof, pool, 0)
        for modality in ("face", "speech"):
            rows = st.face_row if modality == "face" else st.speech_row
            present = st.face_present if modality == "face" else st.speech_present
            flat = pool.face_flat("softmax") if modality == "face" else pool.speech_flat("softmax")
            hit = np.asarray(flat[rows]).argmax(axis=1) == st.label
            before, after = present & (st.pilot_day < 7), present & (st.pilot_day >= 7)
            if modality == ("face" if prof.subgroup == "dim-room" else "speech"):
                gaps[prof.subgroup].append(hit[before].mean() - hit[after].mean())
    for group, values in gaps.items():
        assert np.mean(values) > 0.04, (group, values)
        assert stats.ttest_1samp(values, 0.0, alternative="greater").pvalue < 0.01, group


# ---------------------------------------------------------------------------------------------
# Feedback


def _play(st, predict):
    state = UserState()
    return [respond(st, t, int(predict(t)), state) for t in range(len(st))]


def test_explicit_feedback_rate_and_weekly_decay(pool):
    prof = make_profile(pool, feedback={"p_explicit": 0.4, "weekly_decay": 0.1, "morning_factor": 1.0,
                                        "erosion": 0.0})
    st = draw_stream(prof, pool, 0)
    out = _play(st, lambda t: st.label[t])  # always right: engagement stays at 1
    explicit = np.array([r.explicit for r in out])
    for week in (0, 1, 4, 10):
        sel = st.week == week
        assert z_ok(explicit[sel].mean(), 0.4 * 0.9**week, int(sel.sum())), week
    # the decay measured: slope of the log weekly rate over 20 weeks (1,400 interactions)
    weeks = np.arange(20)
    rates = np.array([explicit[st.week == w].mean() for w in weeks])
    slope = np.polyfit(weeks, np.log(rates), 1, w=np.sqrt(rates))[0]
    assert abs(slope - np.log(0.9)) < 0.03, slope


def test_explicit_feedback_is_lower_in_the_morning(pool):
    prof = make_profile(pool, schedule={"hours": [7.0, 12.0]},
                        feedback={"p_explicit": 0.5, "weekly_decay": 0.0, "morning_factor": 0.4, "erosion": 0.0})
    st = draw_stream(prof, pool, 0)
    explicit = np.array([r.explicit for r in _play(st, lambda t: st.label[t])])
    morning = st.hour < 9
    assert z_ok(explicit[morning].mean(), 0.2, int(morning.sum()))
    assert z_ok(explicit[~morning].mean(), 0.5, int((~morning).sum()))


def test_corrections_carry_the_label_with_configured_noise(pool):
    prof = make_profile(pool, feedback={"p_explicit": 1.0, "weekly_decay": 0.0, "label_noise": 0.1,
                                        "erosion": 0.0, "morning_factor": 1.0})
    st = draw_stream(prof, pool, 0)
    wrong_pred = (st.label + 1) % len(EMOTIONS)
    out = _play(st, lambda t: wrong_pred[t])
    assert all(r.explicit for r in out)
    answers = np.array([r.answer for r in out])
    noisy = answers != st.label
    assert z_ok(noisy.mean(), 0.1, len(st))
    # a noisy answer names another label (sometimes the wrong prediction: then it confirms it)
    confirmed = np.array([r.confirmed for r in out])
    np.testing.assert_array_equal(confirmed, answers == wrong_pred)
    assert z_ok(confirmed.mean(), 0.1 / 5, len(st))
    right = _play(st, lambda t: st.label[t])
    assert z_ok(np.mean([r.corrected for r in right]), 0.1, len(st))


def test_implicit_cues_separate_right_from_wrong_by_the_margin(pool):
    prof = make_profile(pool, feedback={"implicit_margin": 0.8, "rt_sigma": 0.5, "erosion": 0.0, "recovery": 0.0})
    st = draw_stream(prof, pool, 0)
    rng = np.random.default_rng(0)
    pred = np.where(rng.random(len(st)) < 0.5, st.label, (st.label + 2) % len(EMOTIONS))
    out = _play(st, lambda t: pred[t])
    wrong = pred != st.label
    log_rt = np.log([r.response_time_s for r in out])
    eng = np.array([r.engagement for r in out])
    for cue, sign in ((log_rt, 1), (eng, -1)):
        d = sign * (cue[wrong].mean() - cue[~wrong].mean()) / np.sqrt((cue[wrong].var() + cue[~wrong].var()) / 2)
        assert abs(d - 0.8) < 0.1, d
    assert abs(np.median(np.exp(log_rt[~wrong])) - prof.feedback.rt_median_s) < 0.3


def test_engagement_erodes_after_wrong_predictions(pool):
    prof = make_profile(pool, feedback={"p_explicit": 0.5, "weekly_decay": 0.0, "erosion": 0.1,
                                        "recovery": 0.1, "morning_factor": 1.0})
    st = draw_stream(prof, pool, 0)
    always_wrong = _play(st, lambda t: (st.label[t] + 1) % len(EMOTIONS))
    always_right = _play(st, lambda t: st.label[t])
    wrong_rate = np.mean([r.explicit for r in always_wrong[50:]])
    right_rate = np.mean([r.explicit for r in always_right[50:]])
    assert right_rate > 0.45 and wrong_rate < 0.01
    assert np.mean([r.engagement for r in always_wrong[50:]]) < 0.2


def test_diary_feedback_arrives_with_the_days_last_interaction(pool):
    prof = make_profile(pool, schedule={"days": 21}, feedback={"timing": "diary"})
    st = draw_stream(prof, pool, 0)
    for day in np.unique(st.pilot_day):
        idx = np.flatnonzero(st.pilot_day == day)
        assert (st.deliver_step[idx] == idx[-1]).all()
    immediate = draw_stream(make_profile(pool, schedule={"days": 21}), pool, 0)
    np.testing.assert_array_equal(immediate.deliver_step, np.arange(len(immediate)))
    r = respond(st, 0, 0, UserState())
    assert r.step == 0 and r.deliver_step == st.deliver_step[0]


def test_respond_rejects_bad_input(pool):
    st = draw_stream(make_profile(pool, schedule={"days": 2}), pool, 0)
    with pytest.raises(IndexError, match="outside the stream"):
        respond(st, len(st), 0, UserState())
    for bad in (6, -1, 1.5, "anger"):
        with pytest.raises(ValueError, match="class index"):
            respond(st, 0, bad, UserState())
    assert respond(st, 0, np.int64(2), UserState()).step == 0  # numpy integers are class indices
    assert respond(st, 0, 0, UserState(engagement=0.0)).answer == NONE


# ---------------------------------------------------------------------------------------------
# Heterogeneity: there is something to personalize


@pytest.mark.slow
def test_population_best_fixed_weights_spread_widely(pool):
    profiles = sample_population("population", pool)
    table, _ = describe_users(profiles, pool, seed=0)
    best = table["best_w_face"]
    assert best.quantile(0.9) - best.quantile(0.1) >= 0.4
    assert (best < 0.5).mean() >= 0.05 and (best > 0.5).mean() >= 0.5
    assert (best == 0.5).mean() < 0.25
    # and personalizing pays: the hindsight-best weight beats equal weights for most users
    assert ((table["f1_best"] - table["f1_equal"]) > 0.01).mean() > 0.6
    # docs/users.md shows exactly this spread
    assert spread_text(best) in docs_block("spread-table")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"{spread_text(best)}\n{gain_line(table)}" in readme, "update the README from `make users`"


def test_weight_curve_and_best_weight(pool):
    prof = make_profile(pool, schedule={"days": 7})
    st = draw_stream(prof, pool, 0)
    curve = weight_curve(st, pool)
    assert list(curve["w_face"]) == [round(0.1 * i, 1) for i in range(11)]
    direct = pool.fused_softmax(st.face_row, st.speech_row, 0.3).argmax(axis=1)
    assert curve.loc[3, "accuracy"] == pytest.approx((direct == st.label).mean())
    from sklearn.metrics import f1_score

    f1 = f1_score(st.label, direct, labels=list(range(6)), average="macro", zero_division=0)
    assert curve.loc[3, "macro_f1"] == pytest.approx(f1, abs=1e-12)
    import pandas as pd

    tie = pd.DataFrame({"w_face": [0.2, 0.4, 0.7], "macro_f1": [0.5, 0.5, 0.5]})
    assert best_fixed_weight(tie) == 0.4


# ---------------------------------------------------------------------------------------------
# Building a pool, and the command line


@pytest.mark.slow
def test_build_pool_from_a_corpus_matches_the_bank(tiny_corpus, random_models_dir, tmp_path):
    """The pool's clean rows are the bank's rows of the same re-rendered samples; conditions differ."""
    from mer_gym.bank import bank_from_arrays
    from mer_gym.models.evaluate import condition_arrays
    from simulators.users.pool import build_pool

    built = build_pool(tiny_corpus, random_models_dir, face_conditions=("clean", "blur"),
                       speech_conditions=("clean", "snr_0db"), dtype="float32", progress=False)
    assert built.n_persons == 2 and built.max_moments == 2 and (built.n_moments == 2).all()
    arrays = condition_arrays(tiny_corpus, "clean", "clean", split="user_pool")
    bank = bank_from_arrays(arrays, random_models_dir, progress=False)
    idx = bank.index
    for i in range(len(idx)):
        p = built.person_index(idx.loc[i, "person_id"])
        m = int(idx.loc[i, "repetition"])
        f = built.face_row(p, int(idx.loc[i, "label_index"]), m, 0)
        np.testing.assert_array_equal(built.face_flat("proj")[f], bank.face_proj[i])
        np.testing.assert_array_equal(built.speech_flat("softmax")[built.speech_row(p, idx.loc[i, "label_index"], m, 0)],
                                      bank.speech_softmax[i])
        np.testing.assert_allclose(built.fused_softmax(f, f, 0.3), bank.fused_softmax(i, 0.3), atol=1e-12)
    assert not np.array_equal(built.face_proj[..., 0, :], built.face_proj[..., 1, :])
    back = UserPool.load(built.save(tmp_path).parent)
    assert back.person_ids == built.person_ids and back.persons["facial_expressivity"].notna().all()


def test_pool_from_a_real_corpus_bank(tiny_corpus, random_models_dir):
    """A real paired corpus (here the tiny corpus standing in) becomes a one-condition pool with
    ragged moments; a profile asking for other conditions is refused by name."""
    from mer_gym.bank import bank_from_arrays
    from mer_gym.models.data import corpus_arrays
    from simulators.users.pool import RECORDED, pool_from_bank

    arrays = corpus_arrays(tiny_corpus, progress=False)
    first = (arrays.index["person_id"] == arrays.index["person_id"].iloc[0]).to_numpy()
    keep = ~(first & (arrays.index["label_index"] == 0).to_numpy())  # person 0 has no anger
    keep[np.flatnonzero(first & (arrays.index["label_index"] == 1).to_numpy())[0]] = False  # ragged
    bank = bank_from_arrays(arrays.subset(keep), random_models_dir, progress=False)
    real = pool_from_bank(bank)
    assert real.face_conditions == (RECORDED,) and real.n_moments.min() == 0
    assert len(set(real.n_moments.ravel().tolist())) == 3  # 0, fewer, all
    prof = Profile.from_dict({"user_id": "a", "person_id": real.person_ids[0],
                              "contexts": [{"name": "lab", "face": {RECORDED: 1.0}, "speech": {RECORDED: 1.0}}]})
    with pytest.raises(PoolError, match=r"base_rates\.anger"):
        draw_stream(prof, real)
    calm = dataclasses.replace(prof, emotions=dataclasses.replace(
        prof.emotions, base_rates={"neutral": 0.5, "happiness": 0.5}))
    st = draw_stream(calm, real)
    assert set(np.unique(st.label)) <= {EMOTIONS.index("neutral"), HAPPY}
    with pytest.raises(PoolError, match="clean"):
        draw_stream(make_profile(real, person_id=real.person_ids[0]), real)


def test_cli_users_describe(capsys):
    from mer_gym.cli import main

    assert main(["users", "--preset", "paper-pilot", "--describe"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("u0")]
    assert len(lines) == 6
    for column in ("face_acc", "speech_acc", "best_w_face", "camera_off"):
        assert column in out
    assert main(["users", "--list"]) == 0
    assert "paper-pilot" in capsys.readouterr().out
    assert main(["users", "--preset", "nope"]) == 2
    assert "unknown population preset 'nope'" in capsys.readouterr().err


def test_package_docstring_example_runs():
    import doctest

    import simulators.users

    result = doctest.testmod(simulators.users)
    assert result.attempted >= 4 and result.failed == 0
