"""The vector environment: each sub-environment is the single env, step for step (observations,
predictions, weights, rewards), NEXT_STEP autoreset, reset masks, spaces, determinism, errors."""

from __future__ import annotations

import dataclasses
import doctest

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import iterate

from mer_gym.envs import PersonalizationEnv, PersonalizationVectorEnv
from mer_gym.envs import vector as vector_module
from mer_gym.envs.reward import RewardSignal
from mer_gym.labels import EMOTIONS
from simulators.users import default_pool, sample_population
from simulators.users.pool import UserPool
from simulators.users.stream import draw_stream

OBS_KEYS = (
    "face",
    "speech",
    "fused",
    "weights",
    "history",
    "explicit",
    "response_time",
    "engagement",
    "present",
)


@pytest.fixture(scope="module")
def pool() -> UserPool:
    return default_pool()


@pytest.fixture(scope="module")
def populations(pool):
    return {name: sample_population(name, pool) for name in ("paper-pilot", "sparse-feedback")}


def assert_obs_equal(vec_obs: dict, i: int, obs: dict, fusion: str, where: str) -> None:
    """Sub-env ``i`` of a batched observation equals a single env's observation: exactly, but
    for the fused softmax of feature fusion, which may differ by one float32 ulp (the batched
    matrix product sums in another order than the single env's vector product)."""
    assert sorted(obs) == sorted(OBS_KEYS)
    for key in OBS_KEYS:
        got, want = np.asarray(vec_obs[key][i]), np.asarray(obs[key])
        assert got.dtype == want.dtype and got.shape == want.shape, (where, key)
        if key == "fused" and fusion == "feature":
            np.testing.assert_array_max_ulp(got, want, maxulp=1)
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{where}: obs[{key!r}]")


def play_against_singles(pool, profiles, fusion, reward, seed, steps, rng, envs=None):
    """Step a vector env and one single env per user with the same random actions, comparing every
    sub-environment with its single env until that user's pilot ends. Returns the vector env and
    the number of user-steps compared."""
    envs = envs or PersonalizationVectorEnv(
        profiles=profiles, pool=pool, fusion=fusion, reward=reward
    )
    singles = [
        PersonalizationEnv(profiles=[p], pool=pool, fusion=fusion, reward=reward) for p in profiles
    ]
    vec_obs, vec_info = envs.reset(seed=seed)
    assert (vec_info["stream_seed"] == seed).all() and (vec_info["step"] == 0).all()
    live = np.ones(len(profiles), bool)
    for i, env in enumerate(singles):
        obs, info = env.reset(seed=seed, options={"user": 0})
        assert_obs_equal(vec_obs, i, obs, fusion, f"user {i} reset")
        assert info["stream_seed"] == seed and info["day"] == vec_info["day"][i]
    compared = 0
    for step in range(steps):
        actions = rng.integers(0, envs.single_action_space.n, envs.num_envs)
        vec_obs, rewards, terminated, truncated, vec_info = envs.step(actions)
        assert not terminated.any()
        for i in np.flatnonzero(live):
            obs, reward, term, trunc, info = singles[i].step(int(actions[i]))
            where = f"{fusion}/{reward}: user {i}, step {step}"
            assert_obs_equal(vec_obs, i, obs, fusion, where)
            assert abs(rewards[i] - reward) <= 1e-12, where
            assert vec_info["prediction_index"][i] == info["prediction_index"], where
            assert vec_info["w_face"][i] == info["w_face"] == singles[i].w_face, where
            assert vec_info["label_index"][i] == info["label_index"], where
            assert vec_info["correct"][i] == info["correct"], where
            arrived = info["explicit_feedback"]
            assert vec_info["confirmations"][i] == sum(f["confirmed"] for f in arrived), where
            assert vec_info["corrections"][i] == sum(not f["confirmed"] for f in arrived), where
            for key in ("step", "day", "week", "stream_seed"):
                assert vec_info[key][i] == info[key], (where, key)
            assert truncated[i] == trunc and not term, where
            compared += 1
            live[i] = not trunc
        if not live.any():
            break
    assert not live.any(), "every pilot should have ended"
    return envs, compared


# ---------------------------------------------------------------------------------------------
# The decisive test: every sub-environment is the single env


@pytest.mark.parametrize("fusion", ["feature", "late", "log_linear"])
@pytest.mark.parametrize("preset", ["paper-pilot", "sparse-feedback"])
def test_each_sub_env_is_the_single_env_step_for_step(pool, populations, preset, fusion):
    profiles = populations[preset]
    if preset == "sparse-feedback":
        assert all(p.feedback.timing == "diary" for p in profiles)
    rng = np.random.default_rng([len(preset), len(fusion)])
    _, compared = play_against_singles(pool, profiles, fusion, "feedback", 11, 10_000, rng)
    assert compared > 50 * len(profiles)


def test_oracle_and_custom_rewards_match_the_single_env(pool, populations):
    profiles = populations["paper-pilot"][:3]
    play_against_singles(pool, profiles, "feature", "oracle", 4, 10_000, np.random.default_rng(1))

    def shaped(s: RewardSignal):
        return (
            0.5 * s.confirmations - 2.0 * s.corrections + 0.25 * s.engagement_z * s.response_time_z
        )

    play_against_singles(pool, profiles, "late", shaped, 5, 10_000, np.random.default_rng(2))


def test_diary_feedback_arrives_in_bulk_at_the_days_last_interaction(pool, populations):
    profiles = [
        dataclasses.replace(
            p,
            feedback=dataclasses.replace(
                p.feedback, p_explicit=1.0, weekly_decay=0.0, morning_factor=1.0, erosion=0.0
            ),
        )
        for p in populations["sparse-feedback"][:4]
    ]
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool)
    envs.reset(seed=0)
    streams = [draw_stream(p, pool, 0) for p in profiles]
    arrived = np.zeros(len(profiles), np.int64)
    for _ in range(min(len(s) for s in streams)):
        _, _, _, _, info = envs.step(np.ones(envs.num_envs, np.int64))
        got = info["confirmations"] + info["corrections"]
        for i, st in enumerate(streams):
            t = info["step"][i]
            if st.deliver_step[t] == t:  # a day's last interaction: the whole day's answers arrive
                assert got[i] == (st.pilot_day == st.pilot_day[t]).sum()
            else:
                assert got[i] == 0
        arrived += got
    assert (arrived > 50).all()


# ---------------------------------------------------------------------------------------------
# Autoreset, reset masks, seeds


def test_next_step_autoreset_starts_the_next_stream_seed_and_ignores_the_action(pool, populations):
    profiles = populations["paper-pilot"][:3]
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    envs.reset(seed=20)
    lengths = [len(draw_stream(p, pool, 20)) for p in profiles]
    first = int(np.argmin(lengths))
    rng = np.random.default_rng(0)
    for step in range(lengths[first]):
        _, rewards, terminated, truncated, info = envs.step(rng.integers(0, 3, 3))
        assert truncated[first] == (step == lengths[first] - 1)
    assert truncated[first] and not terminated.any()
    # the next step: user `first` starts its next pilot (stream seed 21); its action is ignored
    single = PersonalizationEnv(profiles=[profiles[first]], pool=pool)
    fresh_obs, fresh_info = single.reset(seed=21, options={"user": 0})
    before = envs.w_face
    obs, rewards, terminated, truncated, info = envs.step(np.full(3, 2))
    assert_obs_equal(obs, first, fresh_obs, "feature", "autoreset")
    assert rewards[first] == 0.0 and not truncated[first] and not terminated[first]
    assert info["step"][first] == 0 and info["stream_seed"][first] == 21 == envs.stream_seeds[first]
    assert info["day"][first] == fresh_info["day"] and info["week"][first] == fresh_info["week"]
    assert not info["_prediction_index"][first] and info["prediction_index"][first] == -1
    ended = [i for i in range(3) if lengths[i] == lengths[first]]
    assert (
        info["_step"].all()
        and (info["_prediction_index"] == [i not in ended for i in range(3)]).all()
    )
    others = [i for i in range(3) if i not in ended]
    assert envs.w_face[first] == 0.5 and (envs.w_face[others] >= before[others]).all()
    # and the new pilot is the single env's, step for step
    for step in range(lengths[first]):
        a = rng.integers(0, 3, 3)
        obs, rewards, _, truncated, info = envs.step(a)
        s_obs, s_reward, _, s_trunc, s_info = single.step(int(a[first]))
        assert_obs_equal(obs, first, s_obs, "feature", f"second pilot step {step}")
        assert abs(rewards[first] - s_reward) <= 1e-12
        assert info["prediction_index"][first] == s_info["prediction_index"]
        if s_trunc:
            assert truncated[first]
            break


def test_every_user_runs_pilot_after_pilot(pool, populations):
    profiles = populations["paper-pilot"]
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool)
    envs.reset(seed=0)
    ends = np.zeros(envs.num_envs, np.int64)
    rng = np.random.default_rng(3)
    for _ in range(400):
        _, _, _, truncated, _info = envs.step(rng.integers(0, 3, envs.num_envs))
        ends += truncated
    assert (ends >= 4).all()
    assert (envs.stream_seeds >= ends).all() and (envs.stream_seeds <= ends + 1).all()


def test_reset_mask_resets_only_those_users(pool, populations):
    profiles = populations["paper-pilot"]
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool)
    envs.reset(seed=1)
    for _ in range(7):
        obs, *_ = envs.step(np.full(envs.num_envs, 2))
    mask = np.zeros(envs.num_envs, bool)
    mask[[1, 4]] = True
    new_obs, info = envs.reset(options={"reset_mask": mask, "stream_seed": 9})
    assert (info["_step"] == mask).all() and (info["step"][mask] == 0).all()
    assert (info["stream_seed"][mask] == 9).all() and (envs.stream_seeds[~mask] == 1).all()
    for key in OBS_KEYS:  # the others carry on where they were
        np.testing.assert_array_equal(new_obs[key][~mask], obs[key][~mask])
    assert (envs.w_face[mask] == 0.5).all() and (envs.w_face[~mask] > 0.5).all()
    for i in np.flatnonzero(mask):
        single = PersonalizationEnv(profiles=[profiles[i]], pool=pool)
        assert_obs_equal(
            new_obs, i, single.reset(seed=9, options={"user": 0})[0], "feature", "masked reset"
        )


def test_a_longer_pilot_after_reset_grows_the_tables(pool, populations):
    profiles = populations["paper-pilot"][:2]
    lengths = {s: [len(draw_stream(p, pool, s)) for p in profiles] for s in range(40)}
    seed = min(lengths, key=lambda s: max(lengths[s]))
    longer = next(s for s in lengths if lengths[s][0] > max(lengths[seed]))
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool)
    envs.reset(seed=seed)
    envs.step(np.array([2, 0]))
    obs, _ = envs.reset(options={"reset_mask": np.array([True, False]), "stream_seed": longer})
    single = PersonalizationEnv(profiles=[profiles[0]], pool=pool)
    assert_obs_equal(obs, 0, single.reset(seed=longer, options={"user": 0})[0], "feature", "grown")
    rng = np.random.default_rng(0)
    for step in range(lengths[longer][0]):
        a = rng.integers(0, 3, 2)
        obs, rewards, _, truncated, _ = envs.step(a)
        s_obs, s_reward, _, s_trunc, _ = single.step(int(a[0]))
        assert_obs_equal(obs, 0, s_obs, "feature", f"step {step}")
        assert abs(rewards[0] - s_reward) <= 1e-12 and truncated[0] == s_trunc
        if s_trunc:
            break
    assert s_trunc and step == lengths[longer][0] - 1


def test_seeded_vector_env_is_deterministic(pool, populations):
    profiles = populations["sparse-feedback"][:8]
    runs = []
    for _ in range(2):
        envs = PersonalizationVectorEnv(profiles=profiles, pool=pool, fusion="log_linear")
        rng = np.random.default_rng(5)
        out = [envs.reset(seed=123)]
        out.append(envs.reset())  # the stream seed drawn from the env's seeded generator
        for _ in range(150):
            out.append(envs.step(rng.integers(0, 3, envs.num_envs)))
        runs.append(out)
    for a, b in zip(*runs, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, dict):
                assert x.keys() == y.keys()
                for key in x:
                    np.testing.assert_array_equal(x[key], y[key])
            else:
                np.testing.assert_array_equal(x, y)
    assert (runs[0][1][1]["stream_seed"] != 123).all()


# ---------------------------------------------------------------------------------------------
# Spaces and the Gymnasium vector API


def test_spaces_and_observations_are_the_single_envs_batched(pool, populations):
    envs = PersonalizationVectorEnv(profiles=populations["paper-pilot"], pool=pool, history=3)
    single = PersonalizationEnv(profiles=populations["paper-pilot"], pool=pool, history=3)
    assert envs.num_envs == 6 and envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.action_space == gym.spaces.MultiDiscrete([3] * 6)
    obs, info = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    envs.action_space.seed(0)
    for _ in range(200):
        actions = envs.action_space.sample()
        obs, rewards, terminated, truncated, info = envs.step(actions)
        assert envs.observation_space.contains(obs)
        for sub in iterate(envs.observation_space, obs):
            assert envs.single_observation_space.contains(sub)
        assert rewards.shape == terminated.shape == truncated.shape == (6,)
        assert rewards.dtype == np.float64 and truncated.dtype == np.bool_
        for key in ("label_index", "prediction_index", "correct", "w_face", "day", "week", "step"):
            assert info[key].shape == (6,) and info[f"_{key}"].shape == (6,)
    full = info["step"] >= 2  # these users have made k = 3 predictions in this pilot
    assert full.sum() >= 4 and (obs["history"][full] < len(EMOTIONS)).all()
    assert (obs["history"][~full] == len(EMOTIONS)).any(axis=1).all()


def test_gymnasium_wrappers_run_on_it(pool, populations):
    envs = gym.wrappers.vector.RecordEpisodeStatistics(
        PersonalizationVectorEnv(profiles=populations["paper-pilot"], pool=pool)
    )
    envs.reset(seed=0)
    envs.action_space.seed(0)
    episodes = 0
    for _ in range(80):
        _, _, _, _truncated, info = envs.step(envs.action_space.sample())
        if "episode" in info:
            episodes += int(info["_episode"].sum())
    assert episodes >= 1


def test_docstring_example_is_true():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in finder.find(
        vector_module.PersonalizationVectorEnv, "PersonalizationVectorEnv", globs={}
    ):
        runner.run(t)
    assert runner.tries >= 5 and runner.failures == 0


# ---------------------------------------------------------------------------------------------
# Errors


def test_clear_errors(pool, populations):
    profiles = populations["paper-pilot"]
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool)
    with pytest.raises(gym.error.ResetNeeded):
        envs.step(np.zeros(6, np.int64))
    with pytest.raises(gym.error.ResetNeeded):
        _ = envs.w_face
    with pytest.raises(ValueError, match="full reset"):
        envs.reset(options={"reset_mask": np.eye(6, dtype=bool)[0]})
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        envs.step(np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="dtype float64"):
        envs.step(np.zeros(6))
    with pytest.raises(ValueError, match="dtype bool"):
        envs.step(np.zeros(6, bool))
    with pytest.raises(ValueError, match=r"actions\[3\] = 3 is invalid"):
        envs.step(np.array([0, 1, 2, 3, 0, 0]))
    with pytest.raises(ValueError, match=r"actions\[0\] = -1"):
        envs.step([-1, 0, 0, 0, 0, 0])
    assert envs.step([0, 1, 2, 0, 1, 2])[1].shape == (6,)  # a list of ints is fine
    with pytest.raises(ValueError, match="unknown"):
        envs.reset(options={"user": 0})
    for bad in (np.ones(5, bool), np.ones(6), [True] * 6):
        with pytest.raises(ValueError, match="reset_mask"):
            envs.reset(options={"reset_mask": bad})
    with pytest.raises(ValueError, match="no True"):
        envs.reset(options={"reset_mask": np.zeros(6, bool)})
    with pytest.raises(ValueError, match="stream_seed"):
        envs.reset(options={"stream_seed": -1})
    with pytest.raises(ValueError, match="profiles is empty"):
        PersonalizationVectorEnv(profiles=[], pool=pool)
    with pytest.raises(ValueError, match="repeat a user_id"):
        PersonalizationVectorEnv(profiles=[profiles[0], profiles[0]], pool=pool)
    for kwargs, match in (
        ({"fusion": "max"}, "fusion"),
        ({"delta_w": 0.0}, "delta_w"),
        ({"increments": (1, 2)}, "increments"),
        ({"history": 0}, "history"),
        ({"w_face0": 1.5}, "w_face0"),
        ({"reward": "nope"}, "reward"),
        ({"max_response_time_s": 0}, "max_response_time_s"),
    ):
        with pytest.raises(ValueError, match=match):
            PersonalizationVectorEnv(profiles=profiles, pool=pool, **kwargs)


def test_reward_functions_must_return_one_finite_number_per_user(pool, populations):
    profiles = populations["paper-pilot"][:3]
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool, reward=lambda s: 0.25)
    envs.reset(seed=0)
    np.testing.assert_array_equal(
        envs.step(np.ones(3, np.int64))[1], [0.25] * 3
    )  # a scalar: everyone
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool, reward=lambda s: np.zeros(2))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        envs.step(np.ones(3, np.int64))
    envs = PersonalizationVectorEnv(
        profiles=profiles, pool=pool, reward=lambda s: np.where(np.arange(3) == 1, np.nan, 0.0)
    )
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="user 1"):
        envs.step(np.ones(3, np.int64))


def test_many_weight_states_are_handled(pool, populations):
    """A fine weight grid and an off-grid start: the lazily grown transition table stays the
    single env's arithmetic (round to 12 digits, clip to [0, 1])."""
    profiles = populations["paper-pilot"][:2]
    kwargs = {"delta_w": 0.003, "increments": (-7, -1, 0, 1, 5), "w_face0": 1 / 3}
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool, **kwargs)
    singles = [PersonalizationEnv(profiles=[p], pool=pool, **kwargs) for p in profiles]
    envs.reset(seed=2)
    for s in singles:
        s.reset(seed=2, options={"user": 0})
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.integers(0, 5, 2)
        _, _, _, _, info = envs.step(a)
        for i, s in enumerate(singles):
            s.step(int(a[i]))
            assert info["w_face"][i] == s.w_face
    assert len(envs._w_values) > 20


@pytest.mark.parametrize("p_keep", [0.2, 0.9, 1.0])
def test_settled_policies_take_the_shortcut_and_stay_exact(pool, populations, p_keep):
    """Mostly 'keep' actions: the prediction reuses the observation's probabilities for users whose
    weight did not move (as the single env does) and recomputes only the others."""
    profiles = populations["paper-pilot"]
    rng = np.random.default_rng(7)
    envs = PersonalizationVectorEnv(profiles=profiles, pool=pool)
    singles = [PersonalizationEnv(profiles=[p], pool=pool) for p in profiles]
    envs.reset(seed=3)
    for s in singles:
        s.reset(seed=3, options={"user": 0})
    for step in range(50):
        actions = np.where(rng.random(6) < p_keep, 1, rng.integers(0, 3, 6))
        _, rewards, _, _, info = envs.step(actions)
        for i, s in enumerate(singles):
            _, reward, _, _, s_info = s.step(int(actions[i]))
            assert info["prediction_index"][i] == s_info["prediction_index"], (step, i)
            assert abs(rewards[i] - reward) <= 1e-12


def test_make_vec_through_a_vector_entry_point(pool):
    env_id = "mer_gym_test/PersonalizationVector-v0"
    if env_id not in gym.registry:
        gym.register(env_id, vector_entry_point="mer_gym.envs.vector:PersonalizationVectorEnv")
    envs = gym.make_vec(
        env_id, num_envs=5, vectorization_mode="vector_entry_point", population="population"
    )
    assert isinstance(envs, PersonalizationVectorEnv) and envs.num_envs == 5 == len(envs.profiles)
    obs, _ = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    with pytest.raises(ValueError, match="disagree"):
        PersonalizationVectorEnv(num_envs=3, n_users=4)
    with pytest.raises(ValueError, match="one sub-env per user"):
        PersonalizationVectorEnv(
            num_envs=3, profiles=sample_population("paper-pilot", pool), pool=pool
        )
