"""respond_batch: the user model for N users at once gives exactly what respond gives per user."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mer_gym.labels import EMOTIONS
from simulators.users.feedback import (
    NONE,
    Dice,
    FeedbackParams,
    UserState,
    respond,
    respond_batch,
)
from simulators.users.pool import UserPool, default_pool
from simulators.users.population import sample_population
from simulators.users.profile import Profile
from simulators.users.stream import Stream, draw_stream

FIELDS = ("step", "deliver_step", "explicit", "confirmed", "corrected", "answer", "p_explicit")


@pytest.fixture(scope="module")
def pool() -> UserPool:
    return default_pool()


def _profile(pool: UserPool, i: int, feedback: dict) -> Profile:
    return Profile.from_dict(
        {
            "user_id": f"b{i}",
            "person_id": pool.person_ids[i % len(pool.person_ids)],
            "contexts": [
                {
                    "name": "home",
                    "face": {"clean": 1.0},
                    "speech": {"clean": 1.0},
                    "p_camera_off": 0.2,
                },
                {
                    "name": "work",
                    "hours": [9.0, 18.0],
                    "face": {"clean": 1.0},
                    "speech": {"clean": 1.0},
                },
            ],
            "schedule": {
                "days": 120 + 17 * i,
                "prompts_per_day": 8,
                "hours": [6.0, 22.0],
                "compliance": 1.0,
                "miss_streak": 0.0,
            },
            "feedback": feedback,
        }
    )


FEEDBACKS = [
    {},
    {
        "p_explicit": 0.9,
        "weekly_decay": 0.03,
        "morning_factor": 0.3,
        "morning_until": 8.7,
        "erosion": 0.2,
    },
    {
        "p_explicit": 0.6,
        "label_noise": 0.4,
        "rt_median_s": 2.7,
        "rt_sigma": 0.9,
        "implicit_margin": 1.3,
    },
    {
        "p_explicit": 1.0,
        "weekly_decay": 0.0,
        "timing": "diary",
        "recovery": 0.3,
        "engagement_noise": 0.37,
    },
    {"p_explicit": 0.05, "weekly_decay": 0.2, "timing": "diary", "morning_until": 10.3},
]


@pytest.fixture(scope="module")
def streams(pool: UserPool) -> list[Stream]:
    return [draw_stream(_profile(pool, i, fb), pool, 7 + i) for i, fb in enumerate(FEEDBACKS)]


def _play_both(streams: list[Stream], steps_of, predict, rounds: int, weeks: int = 0) -> int:
    """Play ``rounds`` rounds: in round r user i answers at step ``steps_of(r)[i]`` the
    prediction ``predict(r)[i]``; respond per user and respond_batch for all must agree bit for
    bit, the engagement states included. Returns the number of responses compared."""
    params = FeedbackParams.of([s.profile.feedback for s in streams], weeks=weeks)
    states = [UserState() for _ in streams]
    engagement = np.ones(len(streams))
    n = 0
    for r in range(rounds):
        steps, preds = steps_of(r), predict(r)
        want = [
            respond(st, int(t), int(p), s)
            for st, t, p, s in zip(streams, steps, preds, states, strict=True)
        ]
        got = respond_batch(params, Dice.at(streams, steps), steps, preds, engagement)
        for f in FIELDS:
            np.testing.assert_array_equal(
                getattr(got, f), [getattr(w, f) for w in want], err_msg=f"{f}, round {r}"
            )
        np.testing.assert_array_equal(
            got.response_time_s, [w.response_time_s for w in want], err_msg=f"rt, round {r}"
        )
        np.testing.assert_array_equal(
            got.engagement_cue, [w.engagement for w in want], err_msg=f"cue, round {r}"
        )
        np.testing.assert_array_equal(
            got.engagement, [s.engagement for s in states], err_msg=f"state, round {r}"
        )
        engagement = got.engagement
        n += len(streams)
    return n


@pytest.mark.parametrize("weeks", [0, 12, 40], ids=["power", "table-and-power", "table"])
def test_respond_batch_equals_respond_bit_for_bit_over_long_streams(streams, weeks):
    lengths = np.array([len(s) for s in streams])
    assert lengths.min() > 500
    rounds = 1000  # every user wraps around its stream (with a fresh engagement history)
    rng = np.random.default_rng(0)
    labels = [s.label.astype(np.int64) for s in streams]
    right = rng.random((rounds, len(streams)))
    guess = rng.integers(0, len(EMOTIONS), (rounds, len(streams)))
    # users at different interactions: user i starts i * 13 steps in and wraps around its stream
    offsets = np.arange(len(streams)) * 13

    def steps_of(r: int) -> np.ndarray:
        return (r + offsets) % lengths

    def predict(r: int) -> np.ndarray:
        truth = np.array([lab[t] for lab, t in zip(labels, steps_of(r), strict=True)])
        # mostly right for a while (engagement recovers), mostly wrong later (it erodes)
        p_right = 0.8 if (r // 200) % 2 == 0 else 0.2
        return np.where(right[r] < p_right, truth, guess[r])

    assert max(int(s.week.max()) for s in streams) in range(12, 40)  # weeks=12: both paths
    assert _play_both(streams, steps_of, predict, rounds, weeks) == rounds * len(streams)


def test_respond_batch_covers_every_branch(streams):
    params = FeedbackParams.of([s.profile.feedback for s in streams])
    steps = np.zeros(len(streams), np.int64)
    explicit, confirmed, corrected, noisy, morning = set(), set(), set(), set(), set()
    rng = np.random.default_rng(1)
    engagement = np.ones(len(streams))
    for t in range(500):
        steps[:] = t
        dice = Dice.at(streams, steps)
        preds = np.where(
            rng.random(len(streams)) < 0.5, dice.label, rng.integers(0, 6, len(streams))
        )
        got = respond_batch(params, dice, steps, preds.astype(np.int64), engagement)
        engagement = got.engagement
        explicit |= set(np.flatnonzero(got.explicit))
        confirmed |= set(np.flatnonzero(got.confirmed))
        corrected |= set(np.flatnonzero(got.corrected))
        noisy |= set(np.flatnonzero(got.explicit & (got.answer != dice.label)))
        morning |= set(np.flatnonzero(dice.hour < params.morning_until))
        assert (got.answer[~got.explicit] == NONE).all()
        assert (got.deliver_step >= steps).all()
    assert explicit == confirmed == corrected == noisy == morning == set(range(len(streams)))


def test_respond_batch_on_a_sampled_population(pool):
    """The shipped presets' users (immediate and diary timing), all at the same step."""
    profiles = sample_population("paper-pilot", pool) + sample_population("sparse-feedback", pool)
    streams = [draw_stream(p, pool, 3) for p in profiles]
    rng = np.random.default_rng(2)
    n_min = min(len(s) for s in streams)
    preds = rng.integers(0, len(EMOTIONS), (n_min, len(streams)))
    weeks = max(p.schedule.days for p in profiles) // 7 + 1  # as the vector env tabulates them
    assert (
        _play_both(streams, lambda r: np.full(len(streams), r), lambda r: preds[r], n_min, weeks)
        > 1000
    )


def test_feedback_params_gather_the_profiles(streams):
    params = FeedbackParams.of([s.profile.feedback for s in streams])
    assert len(params) == len(streams)
    fb = streams[1].profile.feedback
    assert params.decay_base[1] == 1.0 - fb.weekly_decay
    assert params.morning_until[1] == 8.7
    assert params.log_rt_median[2] == np.log(2.7)
    assert params.p_week.shape == (len(streams), 0)
    table = FeedbackParams.of([s.profile.feedback for s in streams], weeks=3).p_week
    assert (
        table.shape == (len(streams), 3)
        and table[1, 2] == fb.p_explicit * (1.0 - fb.weekly_decay) ** 2
    )
    with pytest.raises(ValueError, match="weeks"):
        FeedbackParams.of([fb], weeks=-1)
    with pytest.raises(ValueError):
        params.p_explicit[0] = 0.5  # read-only


def test_respond_batch_rejects_bad_input(streams):
    params = FeedbackParams.of([s.profile.feedback for s in streams])
    steps = np.zeros(len(streams), np.int64)
    dice = Dice.at(streams, steps)
    ones = np.ones(len(streams))
    preds = np.zeros(len(streams), np.int64)
    for bad, where in ((6, "prediction\\[2\\] = 6"), (-1, "prediction\\[2\\] = -1")):
        p = preds.copy()
        p[2] = bad
        with pytest.raises(ValueError, match=where):
            respond_batch(params, dice, steps, p, ones)
    with pytest.raises(ValueError, match="dtype float64"):
        respond_batch(params, dice, steps, preds.astype(float), ones)
    with pytest.raises(ValueError, match="prediction has shape"):
        respond_batch(params, dice, steps, preds[:2], ones)
    with pytest.raises(ValueError, match="z_rt has shape"):
        respond_batch(params, dice._replace(z_rt=dice.z_rt[:1]), steps, preds, ones)
    with pytest.raises(IndexError, match="steps\\[1\\]"):
        Dice.at(streams, [0, len(streams[1])] + [0] * (len(streams) - 2))
    with pytest.raises(ValueError, match="one step per stream"):
        Dice.at(streams, [0])


def test_respond_batch_compares_the_hour_as_respond_does(streams):
    """An hour exactly at float32(morning_until) (8.7 is not a float32, float32(8.7) < 8.7):
    respond compares the stream's hour (a float32 value) with the Python float in float64, and so
    must respond_batch (comparing in float32 would call the hour not morning)."""
    st = streams[1]  # morning_until 8.7, morning_factor 0.3
    hour = st.hour.copy()
    hour[:4] = [
        np.float32(8.7),
        np.nextafter(np.float32(8.7), np.float32(0)),
        np.float32(8.75),
        np.float32(9.0),
    ]
    edge = dataclasses.replace(st, hour=hour)
    params = FeedbackParams.of([edge.profile.feedback] * 4)
    steps = np.arange(4)
    want = [respond(edge, t, 0, UserState()) for t in range(4)]
    got = respond_batch(
        params, Dice.at([edge] * 4, steps), steps, np.zeros(4, np.int64), np.ones(4)
    )
    np.testing.assert_array_equal(got.p_explicit, [w.p_explicit for w in want])
    assert want[0].p_explicit == want[1].p_explicit != want[2].p_explicit == want[3].p_explicit
