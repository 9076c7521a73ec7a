"""Online learners over the fusion weight: Hedge from explicit feedback (agents/online.py), and the
contextual bandits LinUCB and linear Thompson sampling (agents/bandits.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from agents import Hedge, LinearThompson, LinUCB, Policy, PolicyError, env_for, make_policy, play
from agents.bandits import FEATURES, features
from mer_gym.config import ConfigError
from mer_gym.envs import PersonalizationEnv
from mer_gym.labels import EMOTIONS
from simulators.users import Profile, default_pool

LEARNERS = ("hedge-modalities", "hedge-levels", "linucb", "thompson")


@pytest.fixture(scope="module")
def pool():
    return default_pool()


def obs_with(face, speech, present=(1, 1), explicit=0, engagement=0.0, response_time=0.0):
    return {
        "face": np.asarray(face, np.float32),
        "speech": np.asarray(speech, np.float32),
        "fused": np.full(6, 1 / 6, np.float32),
        "weights": np.array([0.5, 0.5], np.float32),
        "history": np.full(5, 6),
        "explicit": explicit,
        "response_time": np.array([response_time], np.float32),
        "engagement": np.array([engagement], np.float32),
        "present": np.array(present, np.int8),
    }


def onehot(i, sure=0.7):
    p = np.full(6, (1 - sure) / 5)
    p[i] = sure
    return p


def feedback(step, answer):
    return {"step": step, "confirmed": False, "answer": EMOTIONS[answer]}


def user(pool, uid="x", pid=None, face=None, speech=None, days=28, **feedback_fields):
    return Profile.from_dict(
        {
            "user_id": uid,
            "person_id": pid or pool.person_ids[0],
            "contexts": [
                {"name": "home", "face": face or {"clean": 1.0}, "speech": speech or {"clean": 1.0}}
            ],
            "feedback": {"p_explicit": 0.8, "weekly_decay": 0.0, **feedback_fields},
            "schedule": {"days": days, "prompts_per_day": 10, "compliance": 1.0},
        }
    )


# ---------------------------------------------------------------------------------------------
# Hedge


def test_hedge_modalities_weights_follow_the_exponential_weights_formula():
    agent = make_policy("hedge-modalities", eta=0.5)
    agent.reset_user("u")
    assert agent.act(obs_with(onehot(0), onehot(1))) == 5  # no feedback yet: equal weights
    # (face predicts, speech predicts, answer): losses face 0,0,1,0 and speech 1,1,0,1
    sequence = [(0, 1, 0), (2, 3, 2), (4, 5, 5), (1, 0, 1)]
    for step, (f, s, answer) in enumerate(sequence):
        obs = obs_with(onehot(f), onehot(s))
        info = {"step": step, "explicit_feedback": [feedback(step, answer)]}
        agent.learn(obs, 5, 1.0, obs, False, False, info)
    assert agent.losses["u"].tolist() == [1.0, 3.0]
    p_face = math.exp(-0.5 * 1) / (
        math.exp(-0.5 * 1) + math.exp(-0.5 * 3)
    )  # 1 / (1 + e^-1) = 0.731
    assert agent.probabilities() == pytest.approx([p_face, 1 - p_face])
    assert agent.act(obs_with(onehot(0), onehot(1))) == round(p_face * 10) == 7
    # an absent modality gives the present one the whole weight
    assert agent.act(obs_with(onehot(0), np.full(6, 1 / 6), present=(1, 0))) == 10
    assert agent.act(obs_with(np.full(6, 1 / 6), onehot(0), present=(0, 1))) == 0
    # answers about interactions with an absent modality, or never acted on, are not scored
    obs = obs_with(onehot(0), np.full(6, 1 / 6), present=(1, 0))
    agent.learn(obs, 10, 1.0, obs, False, False, {"step": 9, "explicit_feedback": [feedback(9, 3)]})
    agent.learn(
        obs, 10, 1.0, obs, False, False, {"step": 10, "explicit_feedback": [feedback(77, 3)]}
    )
    assert agent.losses["u"].tolist() == [1.0, 3.0] and agent.counts["u"] == 4


def test_hedge_levels_scores_each_level_by_late_fusion_and_defaults_eta_to_the_regret_rate():
    agent = make_policy("hedge-levels")
    assert agent.eta == pytest.approx(math.sqrt(8 * math.log(11) / 300))
    assert make_policy("hedge-modalities").eta == pytest.approx(math.sqrt(8 * math.log(2) / 300))
    agent.reset_user("u")
    # class 0 wins the fusion l * face + (1 - l) * speech when 0.2 + 0.4 l > 0.8 - 0.4 l, i.e. l > 0.75
    face, speech = [0.6, 0.4, 0, 0, 0, 0], [0.2, 0.8, 0, 0, 0, 0]
    assert (
        agent.expert_losses(np.array(face), np.array(speech), 0).tolist() == [1.0] * 8 + [0.0] * 3
    )
    for step in range(3):
        obs = obs_with(face, speech)
        agent.learn(
            obs, 5, 0.0, obs, False, False, {"step": step, "explicit_feedback": [feedback(step, 0)]}
        )
    expected = np.exp(-agent.eta * np.array([3.0] * 8 + [0.0] * 3))
    np.testing.assert_allclose(agent.probabilities(), expected / expected.sum())
    assert agent.act(obs_with(face, speech), deterministic=True) == 8  # ties 8..10: nearest to 0.5
    draws = [agent.act(obs_with(face, speech)) for _ in range(4000)]
    share = np.bincount(draws, minlength=11) / len(draws)
    np.testing.assert_allclose(share, expected / expected.sum(), atol=0.02)


def test_diary_feedback_is_credited_to_the_interaction_it_concerns(pool):
    env = PersonalizationEnv(
        profiles=[user(pool, days=7, timing="diary", p_explicit=0.5)], actions="levels"
    )
    agent = make_policy("hedge-modalities")
    obs, info = env.reset(options={"stream_seed": 3})
    agent.reset_user(info["user_id"], env=env)
    seen, expected, at_arrival, late = {}, np.zeros(2), np.zeros(2), 0
    done = False
    while not done:
        action = agent.act(obs)
        next_obs, reward, term, trunc, info = env.step(action)
        seen[info["step"]] = obs
        agent.learn(obs, action, reward, next_obs, term, trunc, info)
        for item in info["explicit_feedback"]:
            answer = EMOTIONS.index(item["answer"])
            concerned = seen[item["step"]]
            expected += [
                concerned["face"].argmax() != answer,
                concerned["speech"].argmax() != answer,
            ]
            at_arrival += [obs["face"].argmax() != answer, obs["speech"].argmax() != answer]
            late += item["step"] != info["step"]
        obs, done = next_obs, term or trunc
    assert late > 20  # most answers arrive with the evening diary, after the interaction
    np.testing.assert_array_equal(agent.losses[info["user_id"]], expected)
    assert not np.array_equal(expected, at_arrival)  # crediting the arrival step would differ


# ---------------------------------------------------------------------------------------------
# Bandits


def test_features_are_the_documented_context_vector():
    x = features(
        obs_with(
            onehot(2, 0.5),
            np.full(6, 1 / 6),
            present=(1, 0),
            explicit=2,
            engagement=0.7,
            response_time=0.2,
        )
    )
    named = dict(zip(FEATURES, x, strict=True))
    assert len(x) == 13 and named["bias"] == 1.0
    assert named["face_max"] == pytest.approx(0.5) and named["speech_max"] == pytest.approx(1 / 6)
    assert named["max_gap"] == pytest.approx(0.5 - 1 / 6)
    assert named["speech_entropy"] == pytest.approx(1.0, abs=1e-6)
    face_h = -(0.5 * math.log(0.5) + 5 * 0.1 * math.log(0.1)) / math.log(6)
    assert named["face_entropy"] == pytest.approx(face_h, rel=1e-6)
    assert (named["face_present"], named["speech_present"]) == (1.0, 0.0)
    assert [
        named[k] for k in ("explicit_none", "explicit_confirmation", "explicit_correction")
    ] == [0, 0, 1]
    assert named["engagement"] == pytest.approx(0.7) and named["response_time"] == pytest.approx(
        0.2
    )


@pytest.mark.parametrize("name", ["linucb", "thompson"])
def test_sherman_morrison_keeps_the_exact_inverse(name):
    agent = make_policy(name, ridge=2.0)
    agent.reset_user("u")
    rng = np.random.default_rng(0)
    A = np.repeat(2.0 * np.eye(13)[None], 11, axis=0)
    b = np.zeros((11, 13))
    for _ in range(200):
        obs = obs_with(
            rng.dirichlet(np.ones(6)),
            rng.dirichlet(np.ones(6)),
            present=rng.integers(0, 2, 2),
            explicit=int(rng.integers(3)),
            engagement=rng.random(),
            response_time=rng.random(),
        )
        a, r = int(rng.integers(11)), float(rng.normal())
        agent.learn(obs, a, r, obs, False, False, {})
        x = features(obs)
        A[a] += np.outer(x, x)
        b[a] += r * x
    np.testing.assert_allclose(agent.a_inv["u"], np.linalg.inv(A), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(agent.b["u"], b)
    np.testing.assert_allclose(agent.theta(), np.linalg.solve(A, b[..., None])[..., 0], atol=1e-10)


def test_linucb_plays_the_upper_confidence_bound_on_a_two_arm_problem():
    obs = obs_with(onehot(0), onehot(1))
    x = features(obs)
    xx = float(x @ x)
    # arm 0 (speech only) played 10 times for reward 0.5, arm 1 (face only) once for 0.4
    mean = [10 * 0.5 * xx / (1 + 10 * xx), 0.4 * xx / (1 + xx)]
    width = [math.sqrt(xx / (1 + 10 * xx)), math.sqrt(xx / (1 + xx))]
    flip = (mean[0] - mean[1]) / (width[1] - width[0])  # alpha at which the bonus of arm 1 wins
    for alpha, expected in ((0.0, 0), (0.9 * flip, 0), (1.1 * flip, 1)):
        agent = make_policy("linucb", delta_w=1.0, alpha=alpha)
        agent.reset_user("u")
        assert agent.act(obs) == 0  # a fresh model: a tie, broken toward the lower level of the two
        for _ in range(10):
            agent.learn(obs, 0, 0.5, obs, False, False, {})
        agent.learn(obs, 1, 0.4, obs, False, False, {})
        np.testing.assert_allclose(agent.scores(x, False), np.add(mean, alpha * np.array(width)))
        assert agent.act(obs) == expected
        assert agent.act(obs, deterministic=True) == 0  # greedy: no bonus


def _actions(agent, env, seed=0):
    return play(agent, env, user=0, seed=seed)["action"].tolist()


def test_thompson_is_deterministic_given_its_seed(pool):
    env = env_for(LinearThompson(), profiles=[user(pool, days=5)])
    first = _actions(make_policy("thompson", seed=4), env)
    assert _actions(make_policy("thompson", seed=4), env) == first
    assert _actions(make_policy("thompson", seed=5), env) != first
    assert len(set(first)) > 3  # it explores


def test_a_new_user_starts_fresh_and_a_seen_user_resumes(pool):
    agent = make_policy("linucb")
    env = env_for(agent, profiles=[user(pool, "a", days=3), user(pool, "b", days=3)])
    n_a = len(play(agent, env, user=0))
    a_state = agent.a_inv["a"].copy()
    n_b = len(play(agent, env, user=1))
    np.testing.assert_array_equal(agent.a_inv["a"], a_state)  # another user's pilot leaves it alone
    assert (agent.counts["a"].sum(), agent.counts["b"].sum()) == (n_a, n_b)
    n_a2 = len(play(agent, env, user=0, seed=1))
    assert agent.counts["a"].sum() == n_a + n_a2 and agent.counts["b"].sum() == n_b


# ---------------------------------------------------------------------------------------------
# Learnability on users whose best weight is known: a microphone drowned in babble (-10 dB)


def test_learners_beat_equal_weights_when_the_microphone_is_drowned(pool):
    """Accuracy over the second half of a 28-day pilot, six users, paired streams. Measured
    (stream seed 0, persons 0-5): equal weights 0.705; hedge-modalities 0.888, hedge-levels 0.811,
    linucb 0.836, thompson 0.797 (face only: 0.888)."""
    profiles = [
        user(pool, f"m{i}", pid, speech={"snr_-10db": 1.0})
        for i, pid in enumerate(pool.person_ids[:6])
    ]

    def second_half_accuracy(agent):
        env = env_for(agent, profiles=profiles)
        accs = []
        for u in range(len(profiles)):
            rows = play(agent, env, user=u, seed=0)
            accs.append(rows["correct"].iloc[len(rows) // 2 :].mean())
        return float(np.mean(accs))

    equal = second_half_accuracy(make_policy("equal-weights"))
    gains = {name: second_half_accuracy(make_policy(name)) - equal for name in LEARNERS}
    assert 0.65 < equal < 0.75, equal
    assert all(gain > 0.05 for gain in gains.values()), (equal, gains)


# ---------------------------------------------------------------------------------------------
# Persistence and SB3


@pytest.mark.parametrize("name", LEARNERS)
def test_save_load_round_trip(tmp_path, pool, name):
    agent = make_policy(name, seed=2)
    env = env_for(agent, profiles=[user(pool, "a", days=3), user(pool, "b", days=3)])
    play(agent, env, user=0)
    play(agent, env, user=1)
    agent.save(tmp_path / "agent")
    loaded = Policy.load(tmp_path / "agent")
    assert type(loaded) is type(agent) and loaded.config == agent.config
    state, again = agent.state_dict(), loaded.state_dict()
    assert state.keys() == again.keys() and len(state) >= 2
    for key in state:
        np.testing.assert_array_equal(state[key], again[key])
    assert loaded.meta() == agent.meta()
    assert _actions(loaded, env, seed=7) == _actions(agent, env, seed=7)


@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("linucb", {"delta_w": 0.25}),
        ("linucb", {"ridge": 2.0}),
        ("thompson", {"delta_w": 0.5}),
        ("hedge-levels", {"delta_w": 0.25}),
    ],
)
def test_a_state_for_another_configuration_is_refused(pool, name, other):
    agent = make_policy(name)
    play(agent, env_for(agent, profiles=[user(pool, days=2)]), user=0)
    with pytest.raises(PolicyError, match="saved"):
        make_policy(name, **other).load_state_dict(agent.state_dict(), agent.meta())


def test_loading_into_another_policy_kind_is_refused(tmp_path, pool):
    modalities = make_policy("hedge-modalities")
    play(modalities, env_for(modalities, profiles=[user(pool, days=2)]), user=0)
    with pytest.raises(PolicyError, match="over 'modalities'"):
        make_policy("hedge-levels").load_state_dict(modalities.state_dict(), modalities.meta())
    modalities.save(tmp_path / "hedge")
    with pytest.raises(PolicyError, match="not a 'linucb'"):
        LinUCB.load(tmp_path / "hedge")
    assert isinstance(Hedge.load(tmp_path / "hedge"), Hedge)


def test_bad_hyperparameters_name_the_field():
    with pytest.raises(ConfigError, match="over = 'words'"):
        make_policy("hedge-modalities", over="words")
    with pytest.raises(ConfigError, match="eta"):
        make_policy("hedge-levels", eta=-1.0)
    with pytest.raises(ConfigError, match="alpha"):
        make_policy("linucb", alpha=-0.1)
    with pytest.raises(ConfigError, match="ridge"):
        make_policy("thompson", ridge=0)
    with pytest.raises(ConfigError, match="delta_w"):
        make_policy("thompson", delta_w=0.3)


def test_env_with_other_levels_is_refused(pool):
    agent = make_policy("linucb")
    env = PersonalizationEnv(profiles=[user(pool, days=2)], actions="levels", delta_w=0.25)
    with pytest.raises(PolicyError, match="delta_w"):
        play(agent, env, user=0)
    hedge = make_policy("hedge-levels")
    with pytest.raises(PolicyError, match="delta_w"):
        play(hedge, env, user=0)


@pytest.mark.parametrize("name", ["linucb", "hedge-levels"])
def test_sb3_evaluate_policy_scores_an_online_learner(name):
    agent = make_policy(name)
    env = Monitor(env_for(agent, population="paper-pilot", n_users=1))
    mean, std = evaluate_policy(agent, env, n_eval_episodes=1)  # batched obs through a DummyVecEnv
    n = env.get_episode_lengths()[0]
    assert np.isfinite(mean) and std == 0.0 and abs(mean) <= 1.1 * n and n > 10
