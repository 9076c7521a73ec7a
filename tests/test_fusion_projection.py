"""The fusion head as numpy projections (mer_gym.models.fusion) against the Keras head itself."""

from __future__ import annotations

import numpy as np
import pytest

from mer_gym.models.fusion import FusionProjection, check_w_face, softmax


@pytest.fixture(scope="module")
def heads(random_models_dir):
    """The fixture's random fusion head, and a seeded one with weights x4 (peaked softmax)."""
    import keras

    from mer_gym.models.architectures import build_fusion_head
    from mer_gym.models.frozen import load_model

    keras.utils.set_random_seed(7)
    sharp = build_fusion_head()
    sharp.set_weights([4.0 * w for w in sharp.get_weights()])
    return {"fixture": load_model("fusion_head", random_models_dir), "sharp": sharp}


def embeddings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    e_face = rng.normal(0.0, 1.5, (n, 128)).astype(np.float32)  # BN output: any sign
    e_speech = np.maximum(rng.normal(0.5, 1.5, (n, 128)), 0).astype(np.float32)  # ReLU output
    return e_face, e_speech


@pytest.mark.parametrize("which", ["fixture", "sharp"])
@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_fused_softmax_equals_keras_head(heads, which, w):
    model = heads[which]
    e_face, e_speech = embeddings(64)
    want = model.predict([e_face, e_speech, np.full((64, 1), w, np.float32)], verbose=0)
    proj = FusionProjection.from_model(model)
    p_face, p_speech = proj.project(e_face, e_speech)
    got = proj.fused_softmax(p_face, p_speech, w)
    assert got.shape == (64, 6) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)
    if which == "sharp":
        assert got.max() > 0.5  # the comparison is not between two near-uniform outputs


def test_per_sample_weights_and_single_sample(heads):
    model = heads["sharp"]
    e_face, e_speech = embeddings(50, seed=1)
    w = np.random.default_rng(2).random(50).astype(np.float32)
    want = model.predict([e_face, e_speech, w[:, None]], verbose=0)
    proj = FusionProjection.from_model(model)
    p_face, p_speech = proj.project(e_face, e_speech)
    np.testing.assert_allclose(proj.fused_softmax(p_face, p_speech, w), want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(proj.fused_softmax(p_face, p_speech, w[:, None]), want, atol=1e-5, rtol=0)
    one = proj.fused_softmax(p_face[3], p_speech[3], float(w[3]))
    assert one.shape == (6,)
    np.testing.assert_allclose(one, want[3], atol=1e-5, rtol=0)


def test_split_of_the_kernel(heads):
    model = heads["fixture"]
    proj = FusionProjection.from_model(model)
    w1, b1 = model.get_layer("dense128").get_weights()
    w2, b2 = model.get_layer("softmax").get_weights()
    np.testing.assert_array_equal(proj.W_face, w1[:128])
    np.testing.assert_array_equal(proj.W_speech, w1[128:])
    np.testing.assert_array_equal(proj.b1, b1)
    np.testing.assert_array_equal(proj.W2, w2)
    np.testing.assert_array_equal(proj.b2, b2)
    assert proj.embedding_dim == 128 and proj.n_classes == 6
    assert not proj.W_face.flags.writeable


@pytest.mark.parametrize("bad", [float("nan"), -0.01, 1.5, float("inf"), "heavy", None])
def test_bad_scalar_weight_names_value_and_range(heads, bad):
    proj = FusionProjection.from_model(heads["fixture"])
    p = np.zeros((2, 128), np.float32)
    with pytest.raises(ValueError, match=r"w_face = .*\[0, 1\]"):
        proj.fused_softmax(p, p, bad)


def test_bad_weight_arrays(heads):
    proj = FusionProjection.from_model(heads["fixture"])
    p = np.zeros((3, 128), np.float32)
    with pytest.raises(ValueError, match=r"w_face\[1\] = nan .*\[0, 1\]"):
        proj.fused_softmax(p, p, np.array([0.2, np.nan, 0.4]))
    with pytest.raises(ValueError, match=r"w_face\[2\] = 2\.0"):
        proj.fused_softmax(p, p, [0.2, 0.3, 2.0])
    with pytest.raises(ValueError, match="shape"):
        proj.fused_softmax(p, p, [0.2, 0.3])
    with pytest.raises(ValueError, match="pass a scalar"):
        proj.fused_softmax(p[0], p[0], [0.2])
    with pytest.raises(ValueError, match="same shape"):
        proj.fused_softmax(p, p[:2], 0.5)
    with pytest.raises(ValueError, match=r"\(N, 128\)"):
        proj.project(np.zeros((3, 64)), np.zeros((3, 128)))
    assert check_w_face(1) == 1.0 and check_w_face(np.float32(0.25)) == 0.25


def test_from_model_rejects_other_models_and_bad_arrays(random_models_dir):
    from mer_gym.models.frozen import load_model

    with pytest.raises(ValueError, match="not a fusion head"):
        FusionProjection.from_model(load_model("speech_lstm", random_models_dir))
    z = np.zeros
    with pytest.raises(ValueError, match="shape"):
        FusionProjection(z((128, 128)), z((128, 64)), z(128), z((128, 6)), z(6))
    with pytest.raises(ValueError, match="NaN"):
        FusionProjection(z((128, 128)), z((128, 128)), np.full(128, np.nan), z((128, 6)), z(6))


def test_softmax_is_stable_for_huge_logits():
    out = softmax(np.array([[1e4, 0.0, -1e4], [800.0, 800.0, 800.0]]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
