"""Shared fixtures: a tiny generated corpus and a folder of small, untrained (random-weight) models
with cards, so tests of loading, export and the embedding bank never need the shipped models'
training run."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` preset (10 persons, 120 paired samples) written once per session."""
    from simulators.corpus.writer import load_preset, write_corpus

    out = tmp_path_factory.mktemp("corpus") / "tiny"
    write_corpus(load_preset("tiny"), out, n_jobs=1, progress=False)
    return out


@pytest.fixture(scope="session")
def random_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """face_cnn / speech_lstm / fusion_head with seeded random weights, saved with cards."""
    import keras

    from mer_gym.models.architectures import build_face_cnn, build_fusion_head, build_speech_lstm
    from mer_gym.models.frozen import write_card

    out = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    for name, build in (
        ("face_cnn", build_face_cnn),
        ("speech_lstm", build_speech_lstm),
        ("fusion_head", build_fusion_head),
    ):
        build().save(out / f"{name}.keras")
        write_card(name, out, {"note": "random weights (test fixture)"})
    return out
