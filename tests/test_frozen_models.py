"""The models shipped in frozen_models/: hashes, parameter counts, cards, and a forward pass on a
freshly generated sample (CI never retrains them)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_gym.labels import EMOTIONS
from mer_gym.models.cards import edge_table, headline_table
from mer_gym.models.data import corpus_arrays, face_batch, file_sha256
from mer_gym.models.frozen import (
    MODEL_NAMES,
    default_dir,
    load_model,
    model_path,
    read_card,
)

EXPECTED_PARAMS = {"face_cnn": 128_134, "speech_lstm": 131_206, "fusion_head": 33_670}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shipped_model_matches_its_card(name):
    card = read_card(name)
    assert file_sha256(model_path(name)) == card["sha256"]
    model = load_model(name)
    assert model.count_params() == card["params"] == EXPECTED_PARAMS[name]
    assert card["classes"] == list(EMOTIONS)
    assert card["corpus"]["manifest_sha256"]
    assert card["train_config"]["seed"] == 0
    ev = card["evaluation"]
    if name == "fusion_head":
        assert set(ev["test"]) == {"0", "0.25", "0.5", "0.75", "1"}
    else:
        assert {"clean", "low_light", "occluded"} <= set(ev["conditions"]) or {
            "clean",
            "snr_0db",
        } <= set(ev["conditions"])
        assert len(ev["test"]["confusion_matrix"]) == len(EMOTIONS)
        assert (default_dir() / f"{name}.md").is_file()


def test_shipped_models_run_on_a_generated_sample(tiny_corpus):
    test = corpus_arrays(tiny_corpus, progress=False).split("test")
    face, speech, head = (load_model(n) for n in MODEL_NAMES)
    pf = face.predict(face_batch(test.faces[:4]), verbose=0)
    ps = speech.predict(test.speech[:4], verbose=0)
    for p in (pf, ps):
        assert p.shape == (4, len(EMOTIONS))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    from mer_gym.models.architectures import embedding_model

    ef, _ = embedding_model(face).predict(face_batch(test.faces[:4]), verbose=0)
    es, _ = embedding_model(speech).predict(test.speech[:4], verbose=0)
    fused = head.predict([ef, es, np.full((4, 1), 0.5, np.float32)], verbose=0)
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-5)


def test_shipped_edge_exports_match_their_cards():
    from mer_gym.models.export import TFLiteModel

    for name in ("face_cnn", "speech_lstm"):
        edge = read_card(name)["edge"]
        for fmt in ("float32", "int8"):
            path = default_dir() / edge[fmt]["file"]
            assert file_sha256(path) == edge[fmt]["sha256"]
            assert TFLiteModel(path).quantization == fmt


def test_readme_tables_come_from_the_cards():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert headline_table() in readme
    assert edge_table() in readme
