"""The paper's architectures, training path, evaluation metrics and sha256-checked loading."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from mer_gym.config import ConfigError
from mer_gym.models.architectures import (
    FACE_TABLE5,
    SPEECH_TABLE6,
    build_face_cnn,
    build_fusion_head,
    build_speech_lstm,
    embedding_model,
    param_counts,
)
from mer_gym.models.evaluate import classification_metrics
from mer_gym.models.frozen import FrozenModelError, load_model, read_card, verify
from mer_gym.models.train import FaceAugment, TrainConfig, draw_weights, load_train_config

# --- Table 5 / Table 6 -------------------------------------------------------------------------


def test_face_cnn_matches_table5_row_by_row():
    model = build_face_cnn(7)
    assert param_counts(model) == FACE_TABLE5
    assert sum(FACE_TABLE5.values()) == 128_391  # the printed 128,395 misadds by 4
    assert model.count_params() == 128_391


def test_face_cnn_output_shapes_follow_table5():
    model = build_face_cnn(7)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers[1:]}
    assert shapes["conv1"] == (110, 110, 32)
    assert shapes["pool1"] == (55, 55, 32)
    assert shapes["conv2"] == (53, 53, 64)
    assert shapes["pool2"] == (26, 26, 64)
    assert shapes["conv3"] == (24, 24, 128)
    assert shapes["face_embedding"] == (128,)
    assert shapes["dense256"] == (256,)
    assert shapes["softmax"] == (7,)


def test_speech_lstm_matches_table6_row_by_row():
    model = build_speech_lstm(7)
    assert param_counts(model) == SPEECH_TABLE6
    assert model.count_params() == 131_335


def test_six_class_models_change_only_the_softmax_rows():
    assert build_face_cnn(6).count_params() == 128_391 - 1_799 + 1_542
    assert build_speech_lstm(6).count_params() == 131_335 - 903 + 774
    assert build_fusion_head(6).count_params() == 256 * 128 + 128 + 128 * 6 + 6


@pytest.mark.parametrize("bad", [1, 0, 2.5, True, "6"])
def test_builders_reject_bad_class_counts(bad):
    with pytest.raises(ValueError, match="n_classes"):
        build_face_cnn(bad)


def test_embedding_models_expose_128d_embeddings_and_softmax():
    keras.utils.set_random_seed(0)
    face = embedding_model(build_face_cnn())
    emb, proba = face.predict(np.random.default_rng(0).random((2, 112, 112, 1), np.float32), verbose=0)
    assert emb.shape == (2, 128) and proba.shape == (2, 6)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    speech = embedding_model(build_speech_lstm())
    emb, proba = speech.predict(np.random.default_rng(1).standard_normal((2, 120, 13)).astype("float32"), verbose=0)
    assert emb.shape == (2, 128) and proba.shape == (2, 6)
    with pytest.raises(ValueError, match="no 'face_embedding'"):
        embedding_model(build_fusion_head())


def test_masking_ignores_the_zero_padded_tail():
    """A 40-frame utterance padded to 120 gives the same output as the same weights on 40 frames."""
    keras.utils.set_random_seed(0)
    full = build_speech_lstm()
    short = build_speech_lstm(frames=40)
    short.set_weights(full.get_weights())
    x = np.zeros((1, 120, 13), np.float32)
    x[0, :40] = np.random.default_rng(0).standard_normal((40, 13))
    np.testing.assert_allclose(
        full.predict(x, verbose=0), short.predict(x[:, :40], verbose=0), rtol=1e-5, atol=1e-6
    )


def test_fusion_weight_one_ignores_speech_and_zero_ignores_face():
    keras.utils.set_random_seed(0)
    head = build_fusion_head()
    rng = np.random.default_rng(0)
    ef, es, es2 = (rng.random((4, 128), np.float32) for _ in range(3))
    ones, zeros = np.ones((4, 1), np.float32), np.zeros((4, 1), np.float32)
    np.testing.assert_allclose(
        head.predict([ef, es, ones], verbose=0), head.predict([ef, es2, ones], verbose=0), atol=1e-6
    )
    np.testing.assert_allclose(
        head.predict([es2, es, zeros], verbose=0), head.predict([ef, es, zeros], verbose=0), atol=1e-6
    )
    half = head.predict([ef, es, ones / 2], verbose=0)
    assert not np.allclose(half, head.predict([ef, es2, ones / 2], verbose=0))


# --- training pieces -----------------------------------------------------------------------------


def test_face_augment_stays_in_range_and_is_seeded():
    x = np.random.default_rng(0).random((5, 112, 112, 1), np.float32)
    aug = FaceAugment()
    a = aug(x, np.random.default_rng(1))
    b = aug(x, np.random.default_rng(1))
    assert a.shape == x.shape and a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, x)


def test_face_augment_flip_only_mirrors():
    x = np.random.default_rng(0).random((3, 16, 16, 1), np.float32)
    aug = FaceAugment(flip=1.0, crop_px=0, brightness=(1.0, 1.0), contrast=(1.0, 1.0))
    np.testing.assert_allclose(aug(x, np.random.default_rng(0)), x[:, :, ::-1], atol=1e-6)


def test_fusion_weights_cover_the_interval_and_drop_modalities():
    w = draw_weights(10_000, 0.2, np.random.default_rng(0))
    assert w.shape == (10_000, 1) and w.min() == 0.0 and w.max() == 1.0
    dropped = np.mean((w == 0.0) | (w == 1.0))
    assert 0.17 < dropped < 0.23
    assert 0.4 < np.mean(w[(w > 0) & (w < 1)]) < 0.6


def test_train_config_rejects_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("face: {learning_rat: 0.001}\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        load_train_config(path)
    path.write_text("speech: {batch_size: 0}\n")
    with pytest.raises(ConfigError, match="batch_size"):
        load_train_config(path)
    assert load_train_config(None, seed=3).seed == 3
    assert TrainConfig().face.learning_rate == 1e-3 and TrainConfig().face.batch_size == 32


# --- metrics ------------------------------------------------------------------------------------


def test_classification_metrics_on_a_known_case():
    y = np.array([0, 0, 1, 2, 5, 5])
    proba = np.eye(6)[[0, 1, 1, 2, 5, 0]]
    m = classification_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"][0][:2] == [1, 1]
    assert m["per_class"]["anger"]["recall"] == pytest.approx(0.5)
    assert m["per_class"]["disgust"]["precision"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics(y, np.full((6, 6), np.nan))
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(y, proba[:, :5])


# --- loading ------------------------------------------------------------------------------------


def test_load_model_checks_the_card_hash(random_models_dir, tmp_path):
    model = load_model("face_cnn", random_models_dir)
    assert model.count_params() == read_card("face_cnn", random_models_dir)["params"]
    copy = tmp_path / "models"
    shutil.copytree(random_models_dir, copy)
    with open(copy / "face_cnn.keras", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(FrozenModelError, match="sha256"):
        load_model("face_cnn", copy)
    (copy / "speech_lstm.card.json").unlink()
    with pytest.raises(FrozenModelError, match="card"):
        verify("speech_lstm", copy)
    (copy / "fusion_head.card.json").write_text("{not json")
    with pytest.raises(FrozenModelError, match="JSON"):
        load_model("fusion_head", copy)
    with pytest.raises(FrozenModelError, match="unknown model"):
        load_model("face", copy)


# --- train from scratch -------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_train_from_scratch_writes_models_config_and_cards(tiny_corpus, tmp_path):
    from mer_gym.cli import main
    from mer_gym.models.pipeline import train_all

    cfg = load_train_config(
        None,
        face={"max_epochs": 1},
        speech={"max_epochs": 1},
        fusion={"max_epochs": 1},
        speech_augment={"copies": 1},
    )
    out = tmp_path / "models"
    # The unimodal models in separate calls (as `make models` runs them, one process per core),
    # then the head on their embeddings; the log accumulates every step.
    train_all(tiny_corpus, out, cfg, steps=("speech",), progress=False)
    train_all(tiny_corpus, out, cfg, steps=("face",), progress=False)
    log = train_all(tiny_corpus, out, cfg, steps=("fusion",), progress=False)
    for name in ("face_cnn", "speech_lstm", "fusion_head"):
        assert (out / f"{name}.keras").is_file()
    assert json.loads((out / "train_config.json").read_text()) == cfg.to_dict()
    assert log["face"]["epochs_run"] == 1 and log["speech"]["epochs_run"] == 1
    assert log["n_train"] == 48 and set(log["step_wall_time_s"]) == {"speech", "face", "fusion"}
    with pytest.raises(FileExistsError, match="overwrite"):
        train_all(tiny_corpus, out, cfg, progress=False)
    with pytest.raises(ValueError, match="another training config"):
        train_all(tiny_corpus, out, load_train_config(None, seed=1), steps=("face",), overwrite=True)
    with pytest.raises(ValueError, match="subset"):
        train_all(tiny_corpus, out, cfg, steps=("faces",), overwrite=True)

    assert main(["models", "evaluate", "--corpus", str(tiny_corpus), "--models-dir", str(out), "--quiet"]) == 0
    card = read_card("face_cnn", out)
    assert card["params"] == 128_134
    assert set(card["evaluation"]["conditions"]) >= {"clean", "low_light", "occluded"}
    assert read_card("speech_lstm", out)["evaluation"]["conditions"]["snr_0db"]["n"] == 24
    assert (out / "fusion_head.md").read_text().startswith("# Model card: fusion_head")
    load_model("fusion_head", out)  # the fresh card matches the file


@pytest.mark.slow
def test_training_is_deterministic(tiny_corpus):
    from mer_gym.models.data import corpus_arrays
    from mer_gym.models.train import train_face

    arrays = corpus_arrays(tiny_corpus, progress=False)
    cfg = load_train_config(None, face={"max_epochs": 1})
    a, _ = train_face(arrays.split("train"), arrays.split("val"), cfg, progress=False)
    b, _ = train_face(arrays.split("train"), arrays.split("val"), cfg, progress=False)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
