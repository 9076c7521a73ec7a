"""Bad input, tried systematically (issue 8): property-based tests of the preprocessing, the env,
the study loader and the embedding bank, and the table of bad inputs in docs/reliability.md.

The guarantee under test: a bad input gives either a valid result or one clear exception naming
the input and the fix, never a traceback from deep inside numpy, OpenCV, zipfile or YAML.
Hypothesis runs derandomized (the same examples on every run and machine).
"""

from __future__ import annotations

import copy
import math
import shutil
import tempfile
import types
import typing
from dataclasses import fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import bad_inputs
import gymnasium as gym
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mer_gym  # noqa: F401 - registers mer_gym/Personalization-v0
from mer_gym.bank import SAMPLE_ARRAYS, BankError, EmbeddingBank
from mer_gym.config import ConfigError
from mer_gym.envs import PersonalizationEnv
from mer_gym.preprocessing import FacePreprocessor, SpeechPreprocessor
from studies.spec import Study, load_study, study_from_mapping


def props(n: int) -> settings:
    """Hypothesis settings: ``n`` examples, no deadline, the same examples on every run."""
    return settings(
        max_examples=n, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Messages must say what to do; one of these words is the cheapest check that they do.
FIX_WORDS = ("expected", "use ", "pass ", "upscale", "divide", "rescale", "convert", "clean", "drop",
             "pad ", "must ")


def assert_clear(exc: BaseException, name: str) -> None:
    """``exc`` is a ValueError whose message names the input ``name`` and says what to do."""
    msg = str(exc)
    assert type(exc) is ValueError, f"{type(exc).__name__}: {msg}"
    assert name in msg, f"the message does not name the input {name!r}: {msg}"
    assert any(w in msg for w in FIX_WORDS), f"the message gives no fix: {msg}"


# ---- face preprocessing ------------------------------------------------------------------------

FACE = FacePreprocessor()
LAYOUTS = ("2d", 1, 2, 3, 4)
FACE_DTYPES = ("uint8", "uint16", "float32", "float64", "bool", "int64", "int8")
CONTENTS = ("random", "black", "white", "out-of-range", "nan")


def make_image(h: int, w: int, layout: Any, dtype: str, content: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if layout == "2d" else (h, w, layout)
    unit = rng.random(shape)  # in [0, 1)
    if content == "black":
        unit = np.zeros(shape)
    elif content == "white":
        unit = np.ones(shape)
    if dtype == "bool":
        return unit > 0.5
    if dtype in ("float32", "float64"):
        img = unit.astype(dtype)
        if content == "out-of-range":
            img = img * 255
        elif content == "nan":
            img.flat[rng.integers(img.size)] = np.nan
        return img
    top = 65535 if dtype == "uint16" else 255
    img = np.round(unit * top)
    if content == "out-of-range":
        img = img - 1 if dtype == "int8" else img * 300
    info = np.iinfo(dtype)
    return np.clip(img, info.min, info.max).astype(dtype)


def face_should_work(img: np.ndarray, layout: Any) -> bool:
    if layout == 2 or img.dtype == bool or min(img.shape[:2]) < FACE.min_input_size:
        return False
    if img.dtype.kind == "f":
        return bool(np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1)
    if img.dtype in (np.uint8, np.uint16):
        return True
    return bool(img.min() >= 0 and img.max() <= 255)


@props(120)
@given(
    h=st.integers(1, 300), w=st.integers(1, 400), layout=st.sampled_from(LAYOUTS),
    dtype=st.sampled_from(FACE_DTYPES), content=st.sampled_from(CONTENTS), seed=st.integers(0, 2**16),
)
@example(h=1, w=1, layout="2d", dtype="uint8", content="black", seed=0)
@example(h=300, w=400, layout=3, dtype="uint8", content="white", seed=0)
@example(h=300, w=400, layout=4, dtype="uint16", content="black", seed=0)
@example(h=24, w=24, layout=1, dtype="float64", content="white", seed=0)
def test_face_preprocessing_gives_a_valid_frame_or_one_clear_error(h, w, layout, dtype, content, seed):
    img = make_image(h, w, layout, dtype, content, seed)
    ok = face_should_work(img, layout)
    try:
        out = FACE(img, name="frame.png")
    except Exception as exc:
        assert not ok, f"a supported image failed: {type(exc).__name__}: {exc}"
        assert_clear(exc, "frame.png")
        return
    assert ok, f"an unsupported image ({img.dtype}, {img.shape}) was accepted"
    assert out.array.shape == (112, 112, 1) and out.array.dtype == np.float32
    assert np.isfinite(out.array).all() and out.array.min() >= 0 and out.array.max() <= 1
    x, y, bw, bh = out.box
    assert bw == bh >= 1 and 0 <= x <= w - bw and 0 <= y <= h - bh


# ---- speech preprocessing ----------------------------------------------------------------------

SPEECH = SpeechPreprocessor()
GOOD_RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000, 16000.0, np.int64(44100))
BAD_RATES = (0, -16000, 1, 3999, 384_001, 16000.5, math.nan, math.inf, "16000", None, True)
SPEECH_DTYPES = ("float32", "float64", "float16", "int16", "int32", "uint8", "int64", "bool", "complex64")
AUDIO_LAYOUTS = ("mono", "column", "stereo", "channels-first", "3d")
AUDIO_CONTENTS = ("speechy", "clipped", "silence", "nan", "inf")
LENGTHS = st.one_of(st.sampled_from([0, 1, 2, 399, 400, 559, 560, 561, 16000]), st.integers(0, 40000))


def make_audio(n: int, layout: str, dtype: str, content: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * 180 * t * (1 + t)) + 0.05 * rng.standard_normal(n)
    if content == "clipped":
        x = x * 20
    elif content == "silence":
        x = np.zeros(n)
    shape = {"mono": (n,), "column": (n, 1), "stereo": (n, 2), "channels-first": (2, n), "3d": (n, 1, 1)}
    x = np.broadcast_to(x.reshape(-1, 1), (n, 2)) if layout in ("stereo", "channels-first") else x
    x = np.ascontiguousarray(x.T if layout == "channels-first" else x).reshape(shape[layout])
    if dtype.startswith("float"):
        x = x.astype(dtype)
        if content in ("nan", "inf") and x.size:
            x.flat[rng.integers(x.size)] = np.nan if content == "nan" else np.inf
        return x
    if dtype == "bool":
        return x > 0
    if dtype == "complex64":
        return x.astype(np.complex64)
    if dtype == "uint8":
        return np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8)
    top = min(np.iinfo(dtype).max, 2**31 - 1)  # int64's max does not survive float64 rounding
    return np.clip(np.round(x * top), -top, top).astype(dtype)


def resampled_length(n: int, sr: float) -> int:
    return n if sr == 16000 else math.ceil(n * 16000 / sr)


@props(120)
@given(
    n=LENGTHS, layout=st.sampled_from(AUDIO_LAYOUTS), dtype=st.sampled_from(SPEECH_DTYPES),
    content=st.sampled_from(AUDIO_CONTENTS), sr=st.sampled_from(GOOD_RATES + BAD_RATES),
    seed=st.integers(0, 2**16),
)
@example(n=0, layout="mono", dtype="float32", content="speechy", sr=16000, seed=0)
@example(n=1, layout="mono", dtype="float32", content="speechy", sr=16000, seed=0)
@example(n=16000, layout="mono", dtype="float64", content="nan", sr=16000, seed=0)
@example(n=16000, layout="stereo", dtype="int16", content="clipped", sr=48000, seed=0)
@example(n=16000, layout="channels-first", dtype="float32", content="speechy", sr=16000, seed=0)
@example(n=40000, layout="mono", dtype="float32", content="speechy", sr=1, seed=0)
def test_speech_preprocessing_gives_valid_features_or_one_clear_error(n, layout, dtype, content, sr, seed):
    wave = make_audio(n, layout, dtype, content, seed)
    rate_ok = sr in GOOD_RATES and not isinstance(sr, bool)
    finite = wave.dtype.kind != "f" or bool(np.isfinite(wave).all())
    ok = (
        rate_ok and finite and layout in ("mono", "column", "stereo")
        and dtype not in ("int64", "bool", "complex64") and n > 0
        and resampled_length(n, float(sr)) >= SPEECH.min_samples
    )
    try:
        out = SPEECH(wave, sr, name="clip.wav")
    except Exception as exc:
        assert not ok, f"a supported waveform failed: {type(exc).__name__}: {exc}"
        assert_clear(exc, "clip.wav")
        return
    assert ok, f"an unsupported waveform ({wave.dtype}, {wave.shape}, sr={sr!r}) was accepted"
    assert out.features.shape == (120, 13) and out.features.dtype == np.float32
    assert np.isfinite(out.features).all()
    m = resampled_length(n, float(sr))
    assert out.n_frames == min(120, 1 + (m - 400) // 160)
    assert not out.features[out.n_frames :].any()


@pytest.mark.parametrize(("sr", "channels", "dtype"), [(16000, 1, "float32"), (48000, 2, "int16")])
def test_minutes_of_audio_are_truncated_to_120_frames(sr, channels, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((sr * 180, channels)) * 0.1
    wave = (x * 32767).astype(np.int16) if dtype == "int16" else x.astype(dtype)
    out = SPEECH(wave[:, 0] if channels == 1 else wave, sr)
    assert out.features.shape == (120, 13) and out.n_frames == 120 and np.isfinite(out.features).all()


# ---- the env -------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def env(kind: str) -> gym.Env:
    if kind == "registered":
        return gym.make("mer_gym/Personalization-v0")
    return PersonalizationEnv(actions="levels")


def check_obs(e: gym.Env, obs: dict[str, np.ndarray], w: float) -> None:
    assert e.observation_space.contains(obs)
    weights = obs["weights"]
    assert weights.dtype == np.float32 and weights[0] == np.float32(w)
    assert abs(float(weights.sum()) - 1.0) <= 1e-5
    for key in ("face", "speech", "fused"):
        p = obs[key]
        assert p.dtype == np.float32 and np.isfinite(p).all() and (p >= 0).all(), key
        assert abs(float(p.sum(dtype=np.float64)) - 1.0) <= 1e-5, (key, p)


@props(40)
@given(
    kind=st.sampled_from(["registered", "levels"]), seed=st.integers(0, 2**20),
    actions=st.data(),
)
def test_random_actions_keep_weights_and_probabilities_valid(kind, seed, actions):
    e = env(kind)
    base = e.unwrapped
    n = int(e.action_space.n)
    plan = actions.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=150))
    obs, _ = e.reset(seed=seed)
    w = base.w_face
    check_obs(e, obs, w)
    for a in plan:
        obs, reward, terminated, truncated, info = e.step(a)
        if kind == "levels":
            want = base.levels[a]
        else:
            want = min(1.0, max(0.0, round(w + base.increments[a], 12)))
        w = info["w_face"]
        assert 0.0 <= w <= 1.0 and w == pytest.approx(want, abs=1e-12) and base.w_face == w
        assert math.isfinite(reward) and not terminated
        check_obs(e, obs, w)
        if truncated:
            obs, _ = e.reset()
            w = base.w_face
            check_obs(e, obs, w)


BAD_ACTIONS = st.one_of(
    st.integers(max_value=-1), st.integers(min_value=11), st.floats(), st.booleans(),
    st.text(max_size=3), st.none(), st.lists(st.integers(0, 2), min_size=1, max_size=2),
)


@props(60)
@given(kind=st.sampled_from(["registered", "levels"]), action=BAD_ACTIONS)
def test_out_of_range_actions_raise_a_value_error_naming_the_action(kind, action):
    e = env(kind)
    e.reset(seed=0)
    with pytest.raises(ValueError) as info:
        e.step(action)
    assert f"action = {action!r} is invalid" in str(info.value)
    assert "expected an integer in 0.." in str(info.value)


# ---- the study loader ------------------------------------------------------------------------------

BASE_STUDY: dict[str, Any] = {
    "name": "tiny",
    "question": "does it work?",
    "population": {"preset": "paper-pilot", "n_users": 2, "seed": 0, "days": 4, "overrides": {}},
    "seeds": [0, 1],
    "env": {"fusion": "feature", "delta_w": 0.1, "increments": [-1, 0, 1], "history": 5, "w_face0": 0.5,
            "reward": "feedback", "privacy_epsilon": None},
    "baseline": "equal-weights",
    "policies": ["equal-weights", {"name": "q-learning", "label": "ql", "params": {"alpha": 0.05}},
                 {"name": "q-learning-warm", "label": "warm"}],
    "conditions": [{"label": "a", "value": 0.1, "population": {"profile": {}}, "env": {"history": 3},
                    "params": {"gamma": 0.5}, "applies_to": ["ql"]}],
    "warm_start": {"policy": "warm", "source": "ql"},
    "log_interactions": False,
    "paper": False,
}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


PATHS = _paths(BASE_STUDY)
MAPPINGS = [()] + [p for p in PATHS if isinstance(_get(BASE_STUDY, p), dict)]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.integers(min_value=10**18, max_value=10**30),
    st.floats(), st.text(max_size=8), st.sampled_from(["", "/", "ql", "1e-3", "feature", "q-learning", 10**400]),
)
JUNK = st.recursive(
    SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner,
                                                                                 max_size=3)),
    max_leaves=6,
)


@st.composite
def mutated_studies(draw: st.DrawFn) -> tuple[dict[str, Any], str, Any, Any]:
    """(study dict, what changed, the changed key, its old value)."""
    data = copy.deepcopy(BASE_STUDY)
    op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if op == "add":
        path = draw(st.sampled_from(MAPPINGS))
        key = draw(st.one_of(st.text(min_size=1, max_size=6), st.integers(-5, 5)))
        target = _get(data, path)
        if key in target:
            op, path = "replace", (*path, key)
        else:
            target[key] = draw(JUNK)
            return data, f"add {path}+{key!r}", key, None
    path = draw(st.sampled_from(PATHS))
    parent, key = _get(data, path[:-1]), path[-1]
    old = parent[key]
    if op == "delete":
        del parent[key]
    else:
        parent[key] = draw(JUNK)
    return data, f"{op} {path}", [k for k in path if isinstance(k, str)][-1], old


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [s for v in items for s in _strings(v)]


def conforms(value: Any, hint: Any) -> bool:
    """``value`` has the type a dataclass field declares (the subset of hints the specs use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple) and all(conforms(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, float)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if is_dataclass(hint):
        return isinstance(value, hint) and all(
            conforms(getattr(value, f.name), typing.get_type_hints(hint)[f.name]) for f in fields(hint)
        )
    return isinstance(value, hint)


def assert_valid_study(study: Study) -> None:
    """Every field has its declared type; every env option and every policy (under every
    condition) is accepted by the env's and the policies' own validators; it round-trips."""
    from agents.base import make_policy
    from mer_gym.envs.fusion import check_fusion
    from mer_gym.envs.personalization import check_increments, check_weight
    from mer_gym.envs.privacy import check_epsilon
    from mer_gym.envs.reward import make_reward

    assert conforms(study, Study), study
    assert study.name and all(s >= 0 for s in study.seeds) and study.baseline in study.labels
    for cond in study.condition_labels:
        kw = study.env_kwargs(cond)
        check_fusion(kw["fusion"])
        check_increments(kw["delta_w"], kw["increments"])
        check_weight(kw["w_face0"], "w_face0")
        make_reward(kw["reward"])
        check_epsilon(kw["privacy_epsilon"])
        assert isinstance(kw["history"], int) and kw["history"] >= 1
        for label in study.labels:
            name, params = study.policy_params(label, cond)
            make_policy(name, **params)
    assert study_from_mapping(study.to_dict(), where="round trip") == study
    assert len(study.digest()) == 64


@props(250)
@given(mutated_studies())
def test_a_mutated_study_is_valid_or_one_config_error_naming_the_field(case):
    data, what, key, old = case
    try:
        study = study_from_mapping(data, where="t")
    except ConfigError as exc:
        msg = str(exc)
        # the key, or (a label another field refers to) the old value, e.g. "applies_to names 'ql'"
        named = str(key) in msg or repr(key) in msg or any(repr(s) in msg for s in _strings(old))
        assert named, f"{what}: the message does not name {key!r}: {msg}"
        return
    assert_valid_study(study)


def test_the_unmutated_study_is_valid():
    assert_valid_study(study_from_mapping(BASE_STUDY, where="t"))


def _load_text(text: str | bytes) -> Any:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "study.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return load_study(path)


@props(150)
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60), st.sampled_from([
    "[" * 3000, "a: &x [*x]", "name: [tiny", "\x00", "{1: 2, b: 3}", "name: tiny\npolicies: 3",
    "seeds: 100000000000000000000", "!!python/object:os.system x",
])))
def test_random_text_is_a_config_error(text):
    with pytest.raises(ConfigError):
        _load_text(text)


@props(60)
@given(st.one_of(SCALARS, st.lists(JUNK, max_size=4)))
def test_yaml_that_is_not_a_mapping_is_a_config_error(value):
    with pytest.raises(ConfigError, match="expected a mapping"):
        _load_text(yaml.safe_dump(value))


# ---- the embedding bank ------------------------------------------------------------------------------

BANK_FILES = ("arrays.npz", "index.parquet", "meta.json")


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory) -> Path:
    return bad_inputs.write_bank(tmp_path_factory.mktemp("bank") / "bank")


def assert_damage_is_refused(bank_dir: Path, name: str, damage: Any) -> None:
    """Loading a copy of the bank with ``name`` damaged raises BankError, or (when the damage
    left the file's meaning intact, e.g. a cut-off final newline) gives the very same bank."""
    with tempfile.TemporaryDirectory() as d:
        damaged = Path(shutil.copytree(bank_dir, Path(d) / "bank"))
        damage(damaged / name)
        try:
            bank = EmbeddingBank.load(damaged)
        except BankError as exc:
            assert "rebuild it" in str(exc), str(exc)
            return
    original = EmbeddingBank.load(bank_dir)
    for array in SAMPLE_ARRAYS:
        assert np.array_equal(getattr(bank, array), getattr(original, array)), f"{name}: {array} changed"
    assert bank.index.equals(original.index), f"{name}: the index changed"
    assert bank.meta == original.meta, f"{name}: meta changed: {bank.meta} != {original.meta}"


def test_the_bank_fixture_loads(bank_dir):
    assert len(EmbeddingBank.load(bank_dir)) == 12


@props(90)
@given(name=st.sampled_from(BANK_FILES), fraction=st.floats(0, 1, exclude_max=True))
def test_a_truncated_bank_file_is_refused(bank_dir, name, fraction):
    size = (bank_dir / name).stat().st_size
    assert_damage_is_refused(bank_dir, name, lambda p: bad_inputs.truncate(p, int(fraction * size)))


def flip(where: int | tuple[bytes, int], mask: int) -> Any:
    """Damage: XOR one byte with ``mask``: at ``where`` (modulo the size; negative counts from the
    end), or at ``offset`` bytes after the first ``needle`` for ``where = (needle, offset)``."""

    def damage(path: Path) -> None:
        data = path.read_bytes()
        pos = data.index(where[0]) + where[1] if isinstance(where, tuple) else where % len(data)
        bad_inputs.flip_byte(path, pos, mask)

    return damage


@props(80)
@given(where=st.integers(0, 2**31), mask=st.integers(1, 255))
@example(where=(b"\x93NUMPY", 8), mask=0x4A)  # the first array's header length, 118 -> 60: TokenError
def test_a_flipped_byte_in_arrays_npz_is_refused(bank_dir, where, mask):
    assert_damage_is_refused(bank_dir, "arrays.npz", flip(where, mask))


@props(150)
@given(from_end=st.integers(1, 900), mask=st.integers(1, 255))  # the footer: schema and metadata
def test_a_flipped_byte_in_the_index_parquet_footer_is_refused(bank_dir, from_end, mask):
    assert_damage_is_refused(bank_dir, "index.parquet", flip(-from_end, mask))


@props(60)
@given(where=st.integers(0, 2**31), mask=st.integers(1, 255))
@example(where=(b'"n_samples": ', len(b'"n_samples": ')), mask=0x02)  # 12 -> 32 samples
def test_a_flipped_byte_in_meta_json_is_refused(bank_dir, where, mask):
    assert_damage_is_refused(bank_dir, "meta.json", flip(where, mask))


# ---- the table of bad inputs -------------------------------------------------------------------------

FORBIDDEN = (AttributeError, KeyError, IndexError, ZeroDivisionError, ArithmeticError, UnicodeError,
             RecursionError, MemoryError, NotImplementedError)


@pytest.mark.parametrize("index", range(len(bad_inputs.cases())), ids=lambda i: bad_inputs.cases()[i].bad_input)
def test_every_bad_input_raises_one_clean_error(index):
    outcome = bad_inputs.outcomes()[index]
    case = outcome.case
    assert outcome.error is not None, f"{case.area}: {case.bad_input} raised nothing"
    assert isinstance(outcome.error, case.expect), outcome.seen
    assert not isinstance(outcome.error, FORBIDDEN), outcome.seen
    assert len(outcome.seen) > len(type(outcome.error).__name__) + 10, outcome.seen
    assert "/tmp" not in outcome.seen and str(bad_inputs.ROOT) not in outcome.seen, outcome.seen


def test_there_are_at_least_25_bad_inputs_over_every_area():
    areas = {c.area for c in bad_inputs.cases()}
    assert len(bad_inputs.cases()) >= 25
    assert {"face preprocessing", "speech preprocessing", "env", "study YAML", "embedding bank", "user pool",
            "frozen models", "corpus wav", "policy"} <= areas


def test_reliability_doc_holds_the_rendered_table():
    block = bad_inputs.docs_block(bad_inputs.DOCS.read_text())
    assert block is not None, f"{bad_inputs.DOCS} lacks {bad_inputs.START} ... {bad_inputs.END}"
    assert block == bad_inputs.render_table(), (
        "docs/reliability.md is out of date with tests/bad_inputs.py: run "
        "`python tests/bad_inputs.py --write` and commit the result"
    )
