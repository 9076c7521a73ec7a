"""Tests for mer_gym.preprocessing.face: Eq. 1 against OpenCV, input rules, crop, fallback, config."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mer_gym.config import ConfigError, from_mapping
from mer_gym.preprocessing import face as face_mod
from mer_gym.preprocessing.face import (
    FacePreprocessor,
    centre_crop_box,
    equalize_histogram,
    square_crop_box,
    to_gray_uint8,
)


def drawn_face(height: int = 240, width: int = 320, cx: int = 160, cy: int = 120) -> np.ndarray:
    """A hand-drawn frontal face (dark hair, bright skin, dark brows/eyes/mouth) on a grey ground.

    OpenCV's Haar frontal-face cascade fires on it (checked in test_haar_finds_the_drawn_face).
    """
    img = np.full((height, width), 90, np.uint8)
    cv2.ellipse(img, (cx, cy - 5), (62, 80), 0, 0, 360, 30, -1)  # hair / head outline
    cv2.ellipse(img, (cx, cy + 8), (52, 68), 0, 0, 360, 200, -1)  # skin
    for side in (-1, 1):
        cv2.ellipse(img, (cx + side * 22, cy - 12), (13, 4), 0, 0, 360, 60, -1)  # brow
        cv2.ellipse(img, (cx + side * 22, cy - 2), (11, 6), 0, 0, 360, 40, -1)  # eye
    cv2.ellipse(img, (cx, cy + 18), (5, 12), 0, 0, 360, 170, -1)  # nose
    cv2.ellipse(img, (cx, cy + 40), (18, 5), 0, 0, 360, 70, -1)  # mouth
    return cv2.GaussianBlur(img, (0, 0), 2.0)


def _random_images(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    images = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(1, 90, size=2))
        kind = i % 4
        if kind == 0:
            img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif kind == 1:  # narrow range: cdf_min well above 0
            low = int(rng.integers(0, 250))
            img = rng.integers(low, min(low + 20, 256), (h, w), dtype=np.uint8)
        elif kind == 2:  # constant: M·N == cdf_min
            img = np.full((h, w), int(rng.integers(0, 256)), np.uint8)
        else:  # skewed
            img = (rng.beta(2.0, 5.0, (h, w)) * 255).astype(np.uint8)
        images.append(img)
    return images


# --- Eq. 1 -----------------------------------------------------------------------------------------


def test_equalize_matches_opencv_within_one_level():
    rng = np.random.default_rng(7)
    identical = 0
    images = _random_images(rng, 200)
    for img in images:
        ours = equalize_histogram(img).astype(int)
        ref = cv2.equalizeHist(img).astype(int)
        assert np.abs(ours - ref).max() <= 1
        identical += bool(np.array_equal(ours, ref))
    assert identical >= 0.95 * len(images)


def test_equalize_hand_computed_example():
    img = np.array([[0, 0], [1, 2]], np.uint8)
    # cdf = 2, 3, 4; cdf_min = 2; M·N = 4: H = round((cdf − 2) / 2 · 255) = 0, round(127.5) = 128, 255
    np.testing.assert_array_equal(equalize_histogram(img), [[0, 0], [128, 255]])


@pytest.mark.parametrize("value", [0, 17, 255])
def test_equalize_constant_image_is_unchanged_like_opencv(value):
    img = np.full((5, 7), value, np.uint8)
    out = equalize_histogram(img)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(out, cv2.equalizeHist(img))
    assert out is not img


def test_equalize_stretches_to_full_range_and_leaves_input_alone():
    img = np.array([[100, 101], [102, 103]], np.uint8)
    before = img.copy()
    out = equalize_histogram(img)
    assert out.min() == 0 and out.max() == 255
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 3), np.uint8), np.zeros((0, 4), np.uint8)]
)
def test_equalize_rejects_non_uint8_gray(bad):
    with pytest.raises(ValueError, match="2-D uint8"):
        equalize_histogram(bad)


# --- input conversion ------------------------------------------------------------------------------


def test_bgr_and_bgra_are_converted_with_opencv():
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_gray_uint8(bgr), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    bgra = np.concatenate([bgr, np.full((30, 40, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_gray_uint8(bgra), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def test_single_channel_is_squeezed():
    img = np.arange(30 * 40, dtype=np.uint8).reshape(30, 40, 1)
    np.testing.assert_array_equal(to_gray_uint8(img), img[:, :, 0])


def test_dtype_rules():
    np.testing.assert_array_equal(
        to_gray_uint8(np.array([[0, 257, 65535]], np.uint16)), [[0, 1, 255]]
    )
    np.testing.assert_array_equal(
        to_gray_uint8(np.array([[0.0, 0.5, 1.0]], np.float64)), [[0, 128, 255]]
    )
    np.testing.assert_array_equal(to_gray_uint8(np.array([[0, 9, 255]], np.int64)), [[0, 9, 255]])


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.array([[0.0, 2.0]]), "divide 0..255 data by 255"),
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.array([[0, 300]], np.int64), "0..255"),
        (np.zeros((3, 3), bool), "unsupported dtype"),
        (np.zeros((0, 5), np.uint8), "empty"),
        (np.zeros((4, 4, 2), np.uint8), "unsupported image shape"),
        ([[0, 1]], "numpy array"),
    ],
)
def test_bad_images_are_rejected_with_the_name(image, message):
    with pytest.raises(ValueError, match=message) as info:
        to_gray_uint8(image, name="frame_07.png")
    assert "frame_07.png" in str(info.value)


def test_too_small_image_names_shape_and_fix():
    with pytest.raises(ValueError, match=r"\(20, 50\).*min_input_size"):
        FacePreprocessor()(np.zeros((20, 50), np.uint8))
    out = FacePreprocessor(min_input_size=8, detect=False)(np.zeros((20, 50), np.uint8))
    assert out.array.shape == (112, 112, 1)


# --- crop geometry ---------------------------------------------------------------------------------


def test_square_crop_box_adds_margin_around_centre():
    assert square_crop_box((100, 50, 40, 40), 0.25, (480, 640)) == (90, 40, 60, 60)


def test_square_crop_box_is_shifted_inside_the_frame_not_clipped():
    x, y, w, h = square_crop_box((0, 0, 40, 40), 0.25, (480, 640))
    assert (x, y, w, h) == (0, 0, 60, 60)
    x, y, w, h = square_crop_box((600, 440, 40, 40), 0.5, (480, 640))
    assert (w, h) == (80, 80) and x + w == 640 and y + h == 480
    # a box larger than the frame shrinks to the frame's shorter side
    assert square_crop_box((0, 0, 100, 100), 1.0, (120, 200))[2:] == (120, 120)


def test_centre_crop_box():
    assert centre_crop_box((100, 200), 0.8) == (60, 10, 80, 80)
    assert centre_crop_box((48, 48), 1.0) == (0, 0, 48, 48)


# --- the pipeline ----------------------------------------------------------------------------------


def test_haar_finds_the_drawn_face():
    frame = drawn_face(300, 400, cx=120, cy=160)
    result = FacePreprocessor()(frame)
    assert result.detected
    x, y, w, h = result.box
    assert w == h
    assert x < 120 < x + w and y < 160 < y + h  # the crop contains the face centre
    assert 100 <= w <= 220  # about the face's size plus margin, not the whole frame
    assert result.array.shape == (112, 112, 1) and result.array.dtype == np.float32


def test_crop_uses_the_largest_detected_box(monkeypatch):
    boxes = np.array([[10, 10, 30, 30], [200, 100, 80, 80], [5, 150, 50, 50]], np.int64)
    monkeypatch.setattr(face_mod, "detect_faces", lambda gray, params: boxes)
    prep = FacePreprocessor(margin=0.25)
    result = prep(np.zeros((240, 320), np.uint8))
    assert result.detected
    assert result.box == (180, 80, 120, 120)


def test_output_is_the_equalized_crop_resized_with_inter_area(monkeypatch):
    rng = np.random.default_rng(3)
    frame = rng.integers(40, 120, (240, 320), dtype=np.uint8)
    monkeypatch.setattr(face_mod, "detect_faces", lambda gray, params: np.array([[50, 40, 150, 150]]))
    result = FacePreprocessor(margin=0.0)(frame)
    crop = frame[40:190, 50:200]
    expected = cv2.resize(cv2.equalizeHist(crop), (112, 112), interpolation=cv2.INTER_AREA)
    got = np.round(result.array[:, :, 0] * 255.0).astype(int)
    assert np.abs(got - expected.astype(int)).max() <= 1
    assert result.array.min() >= 0.0 and result.array.max() <= 1.0


def test_small_frames_are_enlarged_and_equalize_can_be_off():
    frame = np.tile(np.arange(48, dtype=np.uint8) * 2, (48, 1))
    result = FacePreprocessor(detect=False, fallback_fraction=1.0, equalize=False)(frame)
    expected = cv2.resize(frame, (112, 112), interpolation=cv2.INTER_LINEAR) / 255.0
    np.testing.assert_allclose(result.array[:, :, 0], expected, atol=1e-6)
    assert result.box == (0, 0, 48, 48) and not result.detected


def test_batch_counts_fallbacks():
    blank = np.full((240, 320), 128, np.uint8)
    frames = [drawn_face(), blank, drawn_face()[:, :, None], cv2.cvtColor(blank, cv2.COLOR_GRAY2BGR)]
    out = FacePreprocessor().batch(frames)
    assert out.arrays.shape == (4, 112, 112, 1) and out.arrays.dtype == np.float32
    np.testing.assert_array_equal(out.detected, [True, False, True, False])
    assert out.n_fallback == 2
    np.testing.assert_array_equal(out.boxes[1], centre_crop_box((240, 320), 0.8))


def test_detect_off_always_falls_back():
    out = FacePreprocessor(detect=False).batch([drawn_face(), drawn_face()])
    assert out.n_fallback == 2


def test_batch_errors_name_the_frame_and_empty_batch_has_shape():
    with pytest.raises(ValueError, match=r"images\[1\]"):
        FacePreprocessor().batch([drawn_face(), np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match=r"b\.png"):
        FacePreprocessor().batch([drawn_face(), np.zeros((10, 10), np.uint8)], names=["a.png", "b.png"])
    empty = FacePreprocessor().batch([])
    assert empty.arrays.shape == (0, 112, 112, 1) and empty.n_fallback == 0


def test_deterministic():
    frames = [drawn_face(), np.random.default_rng(5).integers(0, 256, (100, 90, 3), dtype=np.uint8)]
    a, b = FacePreprocessor().batch(frames), FacePreprocessor().batch(frames)
    assert np.array_equal(a.arrays, b.arrays) and np.array_equal(a.boxes, b.boxes)


# --- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"size": 0}, "size"),
        ({"margin": -0.1}, "margin"),
        ({"fallback_fraction": 0.0}, "fallback_fraction"),
        ({"fallback_fraction": 1.5}, "fallback_fraction"),
        ({"equalize": "yes"}, "equalize"),
        ({"min_input_size": 2.5}, "min_input_size"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        FacePreprocessor(**kwargs)


@pytest.mark.parametrize(
    ("haar", "field"),
    [({"scale_factor": 1.0}, "scale_factor"), ({"min_size_frac": 0.0}, "min_size_frac"), ({"min_neighbors": -1}, "min_neighbors")],
)
def test_bad_haar_params_name_the_field(haar, field):
    with pytest.raises(ConfigError, match=rf"face.haar: haar\.{field}"):
        from_mapping(FacePreprocessor, {"haar": haar}, where="face")


def test_from_mapping_builds_nested_haar_and_rejects_unknown_keys():
    prep = from_mapping(FacePreprocessor, {"margin": 0.2, "haar": {"min_neighbors": 6}}, where="face")
    assert prep.margin == 0.2 and prep.haar.min_neighbors == 6 and prep.haar.scale_factor == 1.1
    with pytest.raises(ConfigError, match="marign"):
        from_mapping(FacePreprocessor, {"marign": 0.2}, where="face")
