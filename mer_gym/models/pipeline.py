"""`mer-gym models train`: corpus → preprocessed arrays → face CNN, speech LSTM, fusion head.

Writes into ``out``: ``face_cnn.keras``, ``speech_lstm.keras``, ``fusion_head.keras``,
``train_config.json`` (the full :class:`~mer_gym.models.train.TrainConfig`) and ``training.json``
(corpus, manifest hash, per-model epochs, best validation loss, wall time and history).
Model cards are written afterwards by :func:`mer_gym.models.cards.write_cards`.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from mer_gym.models.data import FACE_PREP, SPEECH_PREP, corpus_arrays, face_batch, manifest_hash
from mer_gym.models.train import (
    TrainConfig,
    embed,
    speech_variants,
    train_face,
    train_fusion,
    train_speech,
)

FACE_FILE = "face_cnn.keras"
SPEECH_FILE = "speech_lstm.keras"
FUSION_FILE = "fusion_head.keras"
TRAIN_CONFIG = "train_config.json"
TRAINING_LOG = "training.json"


def train_all(
    corpus: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    *,
    n_jobs: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the three models on a generated corpus and save them into ``out``."""
    import keras
    import tensorflow as tf

    corpus, out = Path(corpus), Path(out)
    targets = [out / f for f in (FACE_FILE, SPEECH_FILE, FUSION_FILE)]
    existing = [t.name for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds {', '.join(existing)}: pass overwrite=True (--overwrite) or another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in ("face_cnn", "speech_lstm", "fusion_head"):  # stale cards would fail the sha256 check
        for suffix in (".card.json", ".md"):
            (out / f"{name}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    arrays = corpus_arrays(corpus, n_jobs=n_jobs, progress=progress)
    train, val = arrays.split("train"), arrays.split("val")
    variants = speech_variants(corpus, train, cfg.speech_augment, cfg.seed, n_jobs=n_jobs)
    prep_s = time.perf_counter() - t0
    (out / TRAIN_CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    face, face_info = train_face(train, val, cfg, progress=progress)
    face.save(out / FACE_FILE)
    speech, speech_info = train_speech(train, val, cfg, variants=variants, progress=progress)
    speech.save(out / SPEECH_FILE)

    # The fusion head learns on the frozen embeddings of the same training utterances and frames.
    ef, _ = embed(face, face_batch(train.faces))
    ef_val, _ = embed(face, face_batch(val.faces))
    es, _ = embed(speech, train.speech)
    es_val, _ = embed(speech, val.speech)
    fusion, fusion_info = train_fusion(
        (ef, ef_val), (es, es_val), (train.labels, val.labels), cfg, progress=progress
    )
    fusion.save(out / FUSION_FILE)

    log = {
        "corpus": str(corpus),
        "corpus_name": str(arrays.index["sample_id"].iloc[0]).split("-")[0] if len(arrays) else "",
        "manifest_sha256": manifest_hash(corpus),
        "n_train": len(train),
        "n_val": len(val),
        "n_train_persons": int(train.index["person_id"].nunique()),
        "speech_variants": len(variants),
        "face_preprocessing": _plain(FACE_PREP),
        "speech_preprocessing": _plain(SPEECH_PREP),
        "preprocessing_wall_time_s": round(prep_s, 1),
        "face": face_info,
        "speech": speech_info,
        "fusion": fusion_info,
        "total_wall_time_s": round(time.perf_counter() - t0, 1),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }
    (out / TRAINING_LOG).write_text(json.dumps(log, indent=2) + "\n")
    return log


def _plain(obj: Any) -> Any:
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


def evaluate_dir(
    corpus: str | Path, models_dir: str | Path | None, *, n_jobs: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Evaluate the three models in ``models_dir`` on ``corpus``' held-out identities and write
    their cards (the training log and config are read from the same folder)."""
    from mer_gym.models.cards import write_cards
    from mer_gym.models.evaluate import evaluate_all
    from mer_gym.models.frozen import MODEL_NAMES, card_path, default_dir, load_model

    models_dir = Path(models_dir) if models_dir is not None else default_dir()
    for f in (TRAIN_CONFIG, TRAINING_LOG):
        if not (models_dir / f).is_file():
            raise FileNotFoundError(
                f"{models_dir / f} not found: evaluate a folder written by `mer-gym models train`"
            )
    # A carded model must match its card; a freshly trained one has no card yet.
    models = {
        name: load_model(name, models_dir, verify_hash=card_path(name, models_dir).is_file())
        for name in MODEL_NAMES
    }
    evaluation = evaluate_all(corpus, models, n_jobs=n_jobs, progress=progress)
    write_cards(
        models_dir,
        evaluation=evaluation,
        training=json.loads((models_dir / TRAINING_LOG).read_text()),
        train_config=json.loads((models_dir / TRAIN_CONFIG).read_text()),
    )
    return evaluation
