"""Tests of the parametric FACS face renderer (simulators/corpus/faces.py).

Expression tests measure rendered pixels and the project's Haar detector, and check the EMFACS
prototypes of simulator-facts §3 against ``data/facs.yaml``, not the code's internals.
"""

from __future__ import annotations

import dataclasses
from importlib import resources

import numpy as np
import pytest

from mer_gym.config import ConfigError, from_mapping
from mer_gym.labels import EMOTIONS
from mer_gym.preprocessing.haar import detect_faces, largest_face
from simulators.corpus.face_facs import au_activations, expression_params, load_facs
from simulators.corpus.faces import (
    HAIR_STYLES,
    OCCLUSIONS,
    FaceConditions,
    FaceConditionSpec,
    FaceIdentity,
    haar_detection_rate,
    render_face,
)

CLEAN = FaceConditions.clean()


def _face(seed: int, sex: str | None = None) -> FaceIdentity:
    return FaceIdentity.sample(np.random.default_rng(seed), sex=sex)


def _render(identity: FaceIdentity, emotion: str, intensity: float, seed: int = 0, **kw) -> np.ndarray:
    cond = kw.pop("conditions", CLEAN)
    return render_face(identity, emotion, intensity, cond, np.random.default_rng(seed), **kw)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


# --- output and determinism ------------------------------------------------------------------------


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_emotion_renders_a_uint8_frame(emotion: str) -> None:
    frame = _render(_face(1), emotion, 0.8)
    assert frame.dtype == np.uint8
    assert frame.shape == (160, 160)
    assert 20 < frame.mean() < 235 and frame.std() > 10


def test_size_is_height_width() -> None:
    frame = _render(_face(1), "fear", 0.5, size=(120, 200))
    assert frame.shape == (120, 200)


def test_same_seed_same_bytes_different_seed_different() -> None:
    face = _face(3)
    cond = FaceConditionSpec().sample(np.random.default_rng(4))
    a = _render(face, "anger", 0.7, seed=11, conditions=cond)
    b = _render(face, "anger", 0.7, seed=11, conditions=cond)
    c = _render(face, "anger", 0.7, seed=12, conditions=cond)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_samplers_are_deterministic_by_generator() -> None:
    spec = FaceConditionSpec()
    assert spec.sample(np.random.default_rng(5)) == spec.sample(np.random.default_rng(5))
    assert spec.sample(np.random.default_rng(5)) != spec.sample(np.random.default_rng(6))
    assert _face(7) == _face(7) and _face(7) != _face(8)


def test_intensity_zero_is_the_neutral_face() -> None:
    face = _face(2)
    cond = FaceConditionSpec().sample(np.random.default_rng(9))
    neutral = _render(face, "neutral", 0.0, seed=21, conditions=cond)
    for emotion in EMOTIONS:
        assert au_activations(emotion, 0.0, np.random.default_rng(0)) == {}
        frame = _render(face, emotion, 0.0, seed=21, conditions=cond)
        assert frame.tobytes() == neutral.tobytes(), emotion


# --- FACS prototypes -------------------------------------------------------------------------------


def test_prototypes_match_the_emfacs_table() -> None:
    protos = load_facs().prototypes
    base = {e: {au for au, _ in p.aus} for e, p in protos.items()}
    variants = {e: [{au for au, _ in g} for g in p.variants] for e, p in protos.items()}
    optional = {e: {au for au, _, _ in p.optional} for e, p in protos.items()}
    assert base["happiness"] == {6, 12} and optional["happiness"] == {25}
    assert base["sadness"] == {1, 4, 15} and optional["sadness"] == {17}
    assert base["anger"] == {4, 5, 7} and variants["anger"] == [{23}, {24}]
    assert base["fear"] == {1, 2, 4, 5, 7, 20, 26}
    assert variants["disgust"] == [{9, 15, 16}, {10, 17}]
    assert base["surprise"] == {1, 2, 5, 26}
    assert dict(protos["surprise"].aus)[5] == load_facs().letters["B"]  # 5B
    assert base["neutral"] == set() and not variants["neutral"] and not optional["neutral"]


@pytest.mark.parametrize(
    ("emotion", "required"),
    [("happiness", {6, 12}), ("sadness", {1, 4, 15}), ("anger", {4, 5, 7}),
     ("fear", {1, 2, 4, 5, 7, 20, 26}), ("neutral", set())],
)
def test_activations_show_the_prototype(emotion: str, required: set[int]) -> None:
    noise_max = load_facs().variation.noise_max
    for seed in range(20):
        acts = au_activations(emotion, 1.0, np.random.default_rng(seed))
        strong = {au for au, a in acts.items() if a > noise_max}
        assert required <= strong
        assert all(0.0 < a <= 1.0 for a in acts.values())
        assert set(acts) <= set(load_facs().au_list)


def test_variants_vary_per_sample() -> None:
    anger = [au_activations("anger", 1.0, np.random.default_rng(s)) for s in range(40)]
    strong = [{au for au in (23, 24) if a.get(au, 0.0) > 0.3} for a in anger]
    assert all(len(s) == 1 for s in strong)  # exactly one of 23 or 24
    assert {frozenset(s) for s in strong} == {frozenset({23}), frozenset({24})}
    disgust = [au_activations("disgust", 1.0, np.random.default_rng(s)) for s in range(40)]
    assert any(a.get(9, 0) > 0.5 for a in disgust) and any(a.get(10, 0) > 0.5 for a in disgust)
    assert len({tuple(sorted(a.items())) for a in anger}) == 40  # per-sample jitter


def test_activations_scale_with_intensity() -> None:
    full = au_activations("happiness", 1.0, np.random.default_rng(3))
    half = au_activations("happiness", 0.5, np.random.default_rng(3))
    assert half.keys() == full.keys()
    assert all(half[au] == pytest.approx(0.5 * full[au]) for au in full)


def test_au_geometry_directions() -> None:
    def params(au: int) -> dict[str, float]:
        return expression_params({au: 1.0})

    assert params(12)["corner_dy"] < 0 < params(12)["corner_dx"]  # corners up and out
    assert params(15)["corner_dy"] > 0  # corners down
    assert params(1)["brow_inner_dy"] < 0 and params(2)["brow_outer_dy"] < 0  # brows up
    assert params(4)["brow_inner_dy"] > 0 and params(4)["brow_inner_dx"] > 0  # down, together
    assert params(5)["lid_upper"] > 0 and params(26)["jaw_drop"] > 0 and params(25)["lips_part"] > 0


# --- rendered expressions --------------------------------------------------------------------------


def test_expressions_differ_and_grow_with_intensity() -> None:
    for seed in (0, 1):
        face = _face(seed)
        neutral = _render(face, "neutral", 0.0, seed=7)
        mads = [_mad(_render(face, "happiness", i, seed=7), neutral) for i in (0.25, 0.5, 1.0)]
        assert mads[0] < mads[1] < mads[2]
        assert mads[2] > 0.5
    face = _face(0)
    frames = {e: _render(face, e, 1.0, seed=7) for e in EMOTIONS}
    for i, a in enumerate(EMOTIONS):
        for b in EMOTIONS[i + 1:]:
            assert _mad(frames[a], frames[b]) > 0.3, (a, b)


def test_happiness_lifts_the_mouth_corners_region() -> None:
    """A smile brightens the cheeks and darkens the raised corners: the mouth region changes most."""
    face = _face(4)
    neutral = _render(face, "neutral", 0.0, seed=3).astype(float)
    happy = _render(face, "happiness", 1.0, seed=3).astype(float)
    diff = np.abs(happy - neutral)
    lower, upper = diff[95:125, 40:120].mean(), diff[20:55, 40:120].mean()
    assert lower > 2 * upper


def test_face_offset_moves_the_detection_box() -> None:
    face = _face(6)
    centres = []
    for dx in (-0.15, 0.15):
        cond = dataclasses.replace(CLEAN, offset_x=dx, face_scale=0.45)
        box = largest_face(detect_faces(_render(face, "neutral", 0.0, conditions=cond)))
        assert box is not None, f"Haar found no face at offset_x={dx}"
        centres.append(box[0] + box[2] / 2)
    assert centres[1] - centres[0] == pytest.approx(0.3 * 160, abs=8)


def test_haar_detects_clean_frames() -> None:
    rng = np.random.default_rng(2024)
    frames = [
        render_face(_face(500 + i), EMOTIONS[i % 6], float(rng.uniform(0.2, 1.0)), CLEAN, rng)
        for i in range(60)
    ]
    assert haar_detection_rate(frames) >= 0.9


def test_default_conditions_are_harder_but_mostly_detected() -> None:
    spec, rng = FaceConditionSpec(), np.random.default_rng(77)
    frames = [render_face(_face(900 + i), EMOTIONS[i % 6], 0.7, spec.sample(rng), rng) for i in range(60)]
    assert 0.5 <= haar_detection_rate(frames) <= 0.99


def test_capture_conditions_change_the_pixels_as_named() -> None:
    face = _face(8)
    clean = _render(face, "neutral", 0.0).astype(float)
    dim = _render(face, "neutral", 0.0, conditions=dataclasses.replace(CLEAN, illumination=0.5)).astype(float)
    assert dim.mean() == pytest.approx(0.5 * clean.mean(), rel=0.05)
    noisy = _render(face, "neutral", 0.0, conditions=dataclasses.replace(CLEAN, noise_sigma=15.0)).astype(float)
    assert np.std(noisy - clean) == pytest.approx(15.0, rel=0.15)
    blurred = _render(face, "neutral", 0.0, conditions=dataclasses.replace(CLEAN, blur_sigma=3.0)).astype(float)
    def detail(x: np.ndarray) -> float:  # energy of second differences: fine detail
        return float(np.square(np.diff(x, n=2, axis=1)).mean())

    assert detail(blurred) < 0.3 * detail(clean)
    for kind in OCCLUSIONS[1:]:
        cond = dataclasses.replace(CLEAN, occlusion=kind, occlusion_frac=0.35)
        assert _mad(_render(face, "neutral", 0.0, conditions=cond), clean) > 1.0, kind


def test_identity_sampling() -> None:
    faces = [_face(s, sex=("female", "male")[s % 2]) for s in range(40)]
    assert [f.sex for f in faces] == ["female", "male"] * 20
    assert {f.hair_style for f in faces} <= set(HAIR_STYLES)
    jaws = {sex: np.mean([f.jaw_width for f in faces if f.sex == sex]) for sex in ("female", "male")}
    assert jaws["male"] > jaws["female"]
    assert len({f.skin_level for f in faces}) == 40


# --- conditions and validation ---------------------------------------------------------------------


def test_conditions_are_flat_manifest_columns() -> None:
    cond = FaceConditionSpec().sample(np.random.default_rng(1))
    row = dataclasses.asdict(cond)
    assert all(isinstance(v, int | float | str) for v in row.values())
    assert {"occlusion", "yaw_deg", "offset_x", "face_scale", "noise_sigma"} <= set(row)


def test_spec_sampling_follows_its_probabilities() -> None:
    spec = from_mapping(FaceConditionSpec, {"p_occlusion": 0.5, "occlusion_kinds": ["mask"],
                                            "occlusion_weights": [1.0], "yaw_deg": [-5, 5]})
    rng = np.random.default_rng(0)
    conds = [spec.sample(rng) for _ in range(400)]
    occluded = [c for c in conds if c.occlusion != "none"]
    assert 0.4 < len(occluded) / 400 < 0.6
    assert {c.occlusion for c in occluded} == {"mask"}
    assert all(-5 <= c.yaw_deg <= 5 for c in conds)
    assert all(c.occlusion_frac == 0.0 for c in conds if c.occlusion == "none")


def test_validation_names_the_field() -> None:
    face = _face(1)
    with pytest.raises(ConfigError, match="intensity"):
        render_face(face, "happiness", 1.5, CLEAN, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"'joy'.*anger"):
        render_face(face, "joy", 0.5, CLEAN, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"unknown key.*'blurr'"):
        from_mapping(FaceConditionSpec, {"blurr": [0, 1]}, where="face_conditions")
    with pytest.raises(ConfigError, match="yaw_deg"):
        from_mapping(FaceConditionSpec, {"yaw_deg": [30, -30]})
    with pytest.raises(ConfigError, match="occlusion = 'scarf'"):
        FaceConditions(occlusion="scarf", occlusion_frac=0.2)
    with pytest.raises(ConfigError, match="occlusion_frac"):
        FaceConditions(occlusion_frac=0.3)
    with pytest.raises(ConfigError, match="occlusion_weights"):
        FaceConditionSpec(occlusion_weights=(1.0,))
    with pytest.raises(ConfigError, match="face sex"):
        FaceIdentity(sex="robot")
    with pytest.raises(ConfigError, match="face eye_spacing"):
        FaceIdentity(sex="male", eye_spacing=2.0)
    with pytest.raises(ValueError, match="size"):
        _render(face, "neutral", 0.0, size=(16, 16))
    with pytest.raises(ValueError, match="at least one frame"):
        haar_detection_rate([])


def test_facs_table_errors_name_the_entry(tmp_path) -> None:
    text = (resources.files("simulators.corpus") / "data" / "facs.yaml").read_text()
    bad = tmp_path / "facs.yaml"
    bad.write_text(text.replace("{lips_part: 0.05}", "{lip_part: 0.05}"))
    with pytest.raises(ConfigError, match=r"au_geometry\.25.*lip_part"):
        load_facs(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_facs(tmp_path / "missing.yaml")
