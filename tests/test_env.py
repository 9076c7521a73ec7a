"""The Gymnasium environment: API conformance for every registered id, step semantics, rewards,
episodes, wrappers, learnability on users with a known answer, and clear errors."""

from __future__ import annotations

import doctest
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mer_gym
from mer_gym.envs import PersonalizationEnv, personalization
from mer_gym.envs.reward import RewardSignal
from mer_gym.envs.wrappers import RICH_FEATURES, DiscretizeObservation, flatten_for_sb3, make_env
from mer_gym.labels import EMOTIONS
from simulators.users import Profile, default_pool
from simulators.users.pool import PoolError, UserPool


@pytest.fixture(scope="module")
def pool():
    return default_pool()


def user(pool, face=None, speech=None, *, pid=None, days=28, feedback=None, **changes) -> Profile:
    data = {
        "user_id": "x",
        "person_id": pid or pool.person_ids[0],
        "contexts": [{"name": "home", "face": face or {"clean": 1.0}, "speech": speech or {"clean": 1.0}}],
        "feedback": {"p_explicit": 0.8, "weekly_decay": 0.0, "erosion": 0.0, **(feedback or {})},
        "schedule": {"days": days, "prompts_per_day": 10, "compliance": 1.0},
        **changes,
    }
    return Profile.from_dict(data)


def rollout(env, seed, actions):
    """Steps through ``actions``, resetting (unseeded) whenever an episode ends."""
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, trunc, info))
        if term or trunc:
            out.append(env.reset())
    return out


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


# ---------------------------------------------------------------------------------------------
# Conformance, for every registered id


@pytest.mark.parametrize("env_id", mer_gym.ENV_IDS)
def test_registered_env_passes_gymnasium_and_sb3_checkers(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(gym.make(env_id).unwrapped)
    sb3_check_env(flatten_for_sb3(gym.make(env_id)))


@pytest.mark.parametrize("env_id", mer_gym.ENV_IDS)
def test_seeded_rollouts_match_step_for_step(env_id):
    actions = np.random.default_rng(0).integers(0, 3, 400).tolist()
    a = rollout(gym.make(env_id), 11, actions)
    b = rollout(gym.make(env_id), 11, actions)
    assert len(a) > 400 and same(a, b)
    c = rollout(gym.make(env_id), 12, actions)
    assert not same(a, c)


@pytest.mark.parametrize("env_id", mer_gym.ENV_IDS)
def test_env_pickles_mid_episode(env_id):
    def play(e, actions):
        out = []
        for a in actions:
            out.append(e.step(a))
            if out[-1][3]:
                out.append(e.reset())
        return out

    env = gym.make(env_id)
    env.reset(seed=3)
    play(env, [0, 2, 2, 1])
    clone = pickle.loads(pickle.dumps(env))
    actions = [2, 0, 1, 1, 0, 2] * 5
    assert same(play(env, actions), play(clone, actions))


def test_make_works_with_nothing_but_the_shipped_files():
    env = gym.make("mer_gym/Personalization-v0")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["user_id"].startswith("u")
    assert env.unwrapped.pool is default_pool()
    late = gym.make("mer_gym/Personalization-v0", fusion="late", population="drift", n_users=4)
    assert len(late.unwrapped.profiles) == 4


def test_env_docstring_example_is_true():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(personalization.PersonalizationEnv, "PersonalizationEnv", globs={})
    for t in tests:
        runner.run(t)
    assert runner.tries >= 5 and runner.failures == 0


# ---------------------------------------------------------------------------------------------
# Step semantics


def test_actions_move_the_face_weight_and_clip(pool):
    env = PersonalizationEnv(profiles=[user(pool)])
    obs, _ = env.reset(seed=0)
    ws = []
    for a in [2] * 8 + [0] * 14:
        obs, *_ , info = env.step(a)
        ws.append(info["w_face"])
        assert obs["weights"][0] == np.float32(info["w_face"])
        assert obs["weights"].sum() == pytest.approx(1.0)
    assert ws[:5] == [0.6, 0.7, 0.8, 0.9, 1.0] and ws[7] == 1.0
    assert ws[-1] == 0.0 and min(ws) == 0.0
    wide = PersonalizationEnv(profiles=[user(pool)], increments=(-2, -1, 0, 1, 2), delta_w=0.05)
    wide.reset(seed=0)
    assert wide.action_space == gym.spaces.Discrete(5)
    assert wide.step(4)[-1]["w_face"] == 0.6 and wide.step(0)[-1]["w_face"] == 0.5


def test_step_order_fuses_the_current_sample_with_the_new_weight(pool):
    """The observation shows the sample's confidences and its fusion at the current weight; the
    prediction fuses the same sample at the weight after the action."""
    env = PersonalizationEnv(profiles=[user(pool, {"clean": 0.5, "blur": 0.5}, {"snr_0db": 1.0})])
    obs, _ = env.reset(seed=1)
    st = env.stream
    for t in range(60):
        w_before = env.w_face
        expected_obs = pool.fused_softmax(st.face_row[t], st.speech_row[t], w_before,
                                          st.face_present[t], st.speech_present[t])
        np.testing.assert_allclose(obs["fused"], expected_obs, atol=1e-6)
        face = pool.face_flat("softmax")[st.face_row[t]].astype(np.float64)
        np.testing.assert_array_equal(obs["face"], (face / face.sum()).astype(np.float32))
        a = t % 3
        obs, _, _, _, info = env.step(a)
        after = pool.fused_softmax(st.face_row[t], st.speech_row[t], info["w_face"],
                                   st.face_present[t], st.speech_present[t])
        assert info["prediction_index"] == int(after.argmax()) and info["step"] == t
        assert info["label_index"] == st.label[t] and info["correct"] == (after.argmax() == st.label[t])
        assert obs["history"][0] == info["prediction_index"]


def test_absent_modality_shows_uniform_and_present_flags(pool):
    env = PersonalizationEnv(profiles=[user(pool, contexts=[{"name": "h", "p_camera_off": 0.5}])])
    obs, _ = env.reset(seed=0)
    seen = set()
    for _ in range(80):
        if not obs["present"][0]:
            np.testing.assert_allclose(obs["face"], 1 / 6)
        seen.add(tuple(obs["present"]))
        obs, *_ = env.step(1)
    assert (0, 1) in seen and (1, 1) in seen


@pytest.mark.parametrize("fusion", ["feature", "late", "log_linear"])
def test_fusion_modes(pool, fusion):
    env = PersonalizationEnv(profiles=[user(pool)], fusion=fusion, w_face0=1.0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["fused"].sum(), 1.0, atol=1e-5)
    if fusion != "feature":  # all weight on the face: the face model's own prediction
        np.testing.assert_allclose(obs["fused"], obs["face"], atol=1e-5)
    check_env(env, skip_render_check=True)


# ---------------------------------------------------------------------------------------------
# Rewards


def test_default_reward_never_sees_ground_truth(pool):
    """With no explicit feedback, rewards come only from the implicit cues (|r| <= 0.1)."""
    env = PersonalizationEnv(profiles=[user(pool, feedback={"p_explicit": 0.0})])
    env.reset(seed=0)
    rewards = [env.step(1)[1] for _ in range(200)]
    assert max(abs(r) for r in rewards) <= 0.1 + 1e-12 and np.std(rewards) > 0


def test_explicit_rewards_and_oracle(pool):
    env = PersonalizationEnv(
        profiles=[user(pool, feedback={"p_explicit": 1.0, "label_noise": 0.0, "morning_factor": 1.0})]
    )
    env.reset(seed=0)
    for _ in range(100):
        _, r, *_, info = env.step(1)
        (fb,) = info["explicit_feedback"]
        assert fb["confirmed"] == info["correct"] and fb["step"] == info["step"]
        assert (r > 0.85) == info["correct"] and abs(r) >= 0.9
        assert fb["answer"] == info["label"]
    oracle = PersonalizationEnv(profiles=[user(pool, feedback={"p_explicit": 0.0})], reward="oracle")
    oracle.reset(seed=0)
    for _ in range(50):
        _, r, *_, info = oracle.step(1)
        assert r == (1.0 if info["correct"] else -1.0)


def test_reward_is_injected(pool):
    seen = []

    def my_reward(signal: RewardSignal) -> float:
        seen.append(signal)
        return 2.0 * signal.confirmations

    env = PersonalizationEnv(profiles=[user(pool)], reward=my_reward)
    env.reset(seed=0)
    rewards = [env.step(1)[1] for _ in range(30)]
    assert all(s.correct is None for s in seen)  # no ground truth unless asked for
    assert rewards == [2.0 * s.confirmations for s in seen]
    with pytest.raises(ValueError, match="reward = 'money'"):
        PersonalizationEnv(profiles=[user(pool)], reward="money")


def test_diary_feedback_is_paid_when_it_arrives_and_names_its_interaction(pool):
    diary = user(pool, feedback={"p_explicit": 0.5, "timing": "diary"})
    env = PersonalizationEnv(profiles=[diary])
    env.reset(seed=0)
    st = env.stream
    done, n_items = False, 0
    while not done:
        _, r, term, trunc, info = env.step(1)
        done = term or trunc
        t = info["step"]
        last_of_day = t == len(st) - 1 or st.pilot_day[t + 1] != st.pilot_day[t]
        for item in info["explicit_feedback"]:
            n_items += 1
            assert last_of_day and st.pilot_day[item["step"]] == st.pilot_day[t] and item["step"] <= t
        if not last_of_day:
            assert abs(r) <= 0.1 + 1e-12
    assert n_items > 50


# ---------------------------------------------------------------------------------------------
# Episodes and users


def test_pilot_episode_truncates_at_the_end_and_cycles_users(pool):
    env = gym.make("mer_gym/Personalization-v0")
    _, info = env.reset()
    first = info["user_id"]
    n, trunc = 0, False
    while not trunc:
        *_, term, trunc, _ = env.step(1)
        assert not term
        n += 1
    assert n == len(env.unwrapped.stream)
    with pytest.raises(gym.error.ResetNeeded):
        env.unwrapped.step(1)
    _, info = env.reset()
    assert info["user_id"] != first
    _, info = env.reset(options={"user": "u003", "stream_seed": 5})
    assert info["user_id"] == "u003" and info["stream_seed"] == 5


def test_day_episodes_carry_weights_over_and_end_with_the_pilot(pool):
    env = PersonalizationEnv(profiles=[user(pool, days=3, user_id="a"), user(pool, days=3, user_id="b")],
                             episode="day")
    _, info = env.reset(seed=0)
    assert info["user_id"] == env.profiles[0].user_id or info["user_id"] == env.profiles[1].user_id
    pilot_user = info["user_id"]
    days = []
    for _ in range(3):
        trunc, steps = False, []
        while not trunc:
            *_, trunc, info = env.step(2)
            steps.append(info)
        assert len({s["day"] for s in steps}) == 1
        days.append((steps[0]["day"], steps[0]["w_face"]))
        _, info = env.reset()
    assert [d for d, _ in days] == [0, 1, 2]
    assert days[1][1] == 1.0  # the weight carried over from day 0 (10 steps up, clipped)
    assert info["user_id"] != pilot_user and env.w_face == 0.5  # a new pilot after the last day


# ---------------------------------------------------------------------------------------------
# Wrappers


def test_discretize_observation(pool):
    env = DiscretizeObservation(PersonalizationEnv(profiles=[user(pool)]))
    assert env.observation_space == gym.spaces.Discrete(15)
    s, _ = env.reset(seed=0)
    assert env.decode(s) == {"w_face": 2, "explicit": 0}
    rich = DiscretizeObservation(PersonalizationEnv(profiles=[user(pool)]), features=RICH_FEATURES)
    assert rich.observation_space == gym.spaces.Discrete(135)
    s2, _ = rich.reset(seed=0)
    assert rich.decode(s2)["w_face"] == 2 and rich.decode(s2)["present"] == 0
    for _ in range(30):
        s, *_ = env.step(2)
        assert env.observation_space.contains(s)
    assert env.decode(s)["w_face"] == 4
    custom = DiscretizeObservation(PersonalizationEnv(profiles=[user(pool)]),
                                   features=("fused_confidence", "last_emotion"), bins={"fused_confidence": (0.5,)})
    assert custom.observation_space.n == 2 * 7
    with pytest.raises(ValueError, match="features"):
        DiscretizeObservation(PersonalizationEnv(profiles=[user(pool)]), features=("mood",))
    with pytest.raises(ValueError, match="increasing"):
        DiscretizeObservation(PersonalizationEnv(profiles=[user(pool)]), bins={"w_face": (0.5, 0.2)})
    assert isinstance(make_env(wrapper="discrete").observation_space, gym.spaces.Discrete)


def test_sb3_learns_on_the_flattened_env():
    from stable_baselines3 import PPO

    env = make_env(wrapper="flat")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))


# ---------------------------------------------------------------------------------------------
# Learnability on users with a known answer


def _q_learning_final_weight(env, episodes=3, seed=0) -> float:
    """A minimal tabular Q-learner (alpha 0.05, gamma 0.9, epsilon 0.1) over the weight level;
    returns the mean face weight over the last 100 steps."""
    q = np.zeros((env.observation_space.n, env.action_space.n))
    rng = np.random.default_rng(seed)
    for ep in range(episodes):
        s, _ = env.reset(seed=ep)
        done, ws = False, []
        while not done:
            a = int(rng.integers(env.action_space.n)) if rng.random() < 0.1 else int(q[s].argmax())
            s2, r, term, trunc, info = env.step(a)
            q[s, a] += 0.05 * (r + 0.9 * q[s2].max() * (not term) - q[s, a])
            s, done = s2, term or trunc
            ws.append(info["w_face"])
    return float(np.mean(ws[-100:]))


@pytest.mark.slow
def test_learning_drives_the_weight_away_from_a_useless_modality(pool):
    """A camera that is always dark must drive the face weight toward 0; a microphone drowned in
    babble (-10 dB) toward 1. Eight users each, the default feedback reward (no ground truth)."""
    levels = {"w_face": tuple(np.round(np.arange(0.05, 1.0, 0.1), 2))}
    finals = {}
    for name, face, speech in (("dark", {"dark": 1.0}, {"clean": 1.0}), ("mic", {"clean": 1.0}, {"snr_-10db": 1.0})):
        finals[name] = [
            _q_learning_final_weight(
                DiscretizeObservation(PersonalizationEnv(profiles=[user(pool, face, speech, pid=pid)]),
                                      features=("w_face",), bins=levels)
            )
            for pid in pool.person_ids[:8]
        ]
    assert np.mean(finals["dark"]) < 0.4, finals
    assert np.mean(finals["mic"]) > 0.6, finals


# ---------------------------------------------------------------------------------------------
# Clear errors


@pytest.mark.parametrize("action", [3, -1, 1.5, "up", None, True])
def test_invalid_actions(pool, action):
    env = PersonalizationEnv(profiles=[user(pool)])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action = .* is invalid"):
        env.step(action)
    assert env.step(np.int64(1))[-1]["step"] == 0  # nothing was consumed by the bad calls


def test_weight_outside_range_from_a_wrapper_is_refused(pool):
    env = PersonalizationEnv(profiles=[user(pool)])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"w_face = 1.3 is outside \[0, 1\]"):
        env.w_face = 1.3
    env._w = float("nan")  # a careless wrapper writing the private field
    with pytest.raises(ValueError, match=r"w_face = nan"):
        env.step(1)


def test_bad_constructor_arguments_name_the_field(pool):
    for kwargs, field in [
        ({"fusion": "attention"}, "fusion"),
        ({"delta_w": 0.0}, "delta_w"),
        ({"increments": (1, 2)}, "increments"),
        ({"history": 0}, "history"),
        ({"w_face0": 2}, "w_face0"),
        ({"episode": "week"}, "episode"),
    ]:
        with pytest.raises(ValueError, match=field):
            PersonalizationEnv(profiles=[user(pool)], **kwargs)
    env = PersonalizationEnv(profiles=[user(pool)])
    with pytest.raises(gym.error.ResetNeeded):
        env.step(1)
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"usr": 1})
    with pytest.raises(ValueError, match="no such user"):
        env.reset(options={"user": "nobody"})


def test_nan_in_a_pool_row_is_refused(pool):
    face_softmax = np.array(pool.face_softmax)
    face_softmax[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(PoolError, match="face_softmax holds NaN"):
        UserPool(pool.persons, pool.face_conditions, pool.speech_conditions, face_softmax, pool.face_proj,
                 pool.speech_softmax, pool.speech_proj, pool.n_moments, pool.projection)


def test_emotion_names_in_info(pool):
    env = PersonalizationEnv(profiles=[user(pool)])
    env.reset(seed=0)
    info = env.step(1)[-1]
    assert info["label"] in EMOTIONS and info["prediction"] in EMOTIONS
    assert {"day", "week", "context", "user_id", "step"} <= set(info)


def test_level_actions_set_the_weight_and_reset_can_set_it(pool):
    env = PersonalizationEnv(profiles=[user(pool)], actions="levels", delta_w=0.25)
    assert env.action_space == gym.spaces.Discrete(5)
    env.reset(seed=0, options={"w_face": 0.9})
    assert env.w_face == 0.9
    assert [env.step(a)[-1]["w_face"] for a in (4, 0, 2)] == [1.0, 0.0, 0.5]
    check_env(PersonalizationEnv(profiles=[user(pool)], actions="levels"), skip_render_check=True)
    with pytest.raises(ValueError, match="1 / delta_w must be an integer"):
        PersonalizationEnv(profiles=[user(pool)], actions="levels", delta_w=0.3)
    with pytest.raises(ValueError, match="actions = 'absolute'"):
        PersonalizationEnv(profiles=[user(pool)], actions="absolute")
    with pytest.raises(ValueError, match=r"options\['w_face'\]"):
        env.reset(options={"w_face": -0.1})


def test_readme_quick_start_runs():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = readme.split("## Quick start", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md quick start", "exec"), namespace)
    assert len(namespace["log"]) > 100 and namespace["info"]["w_face"] == 0.6
