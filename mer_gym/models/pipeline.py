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


STEPS = ("face", "speech", "fusion")


def train_all(
    corpus: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    *,
    steps: tuple[str, ...] = STEPS,
    n_jobs: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the models named by ``steps`` on a generated corpus and save them into ``out``.

    By default all three are trained in turn. ``steps`` lets the two unimodal networks train in
    separate processes (e.g. one per core) into the same folder, and ``("fusion",)`` then trains
    the head on the embeddings of the face and speech models already there. ``training.json``
    accumulates the log of every step.
    """
    import keras
    import tensorflow as tf

    from mer_gym.models.frozen import load_model

    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise ValueError(f"steps = {steps!r}: expected a non-empty subset of {STEPS}")
    corpus, out = Path(corpus), Path(out)
    files = {"face": FACE_FILE, "speech": SPEECH_FILE, "fusion": FUSION_FILE}
    existing = [files[s] for s in steps if (out / files[s]).exists()]
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
    config_path = out / TRAIN_CONFIG
    if config_path.is_file() and set(steps) != set(STEPS):
        previous = json.loads(config_path.read_text())
        if previous != cfg.to_dict():
            raise ValueError(
                f"{config_path} holds another training config: train the remaining steps with the same "
                "--config/--seed, or all steps into a fresh --out"
            )
    config_path.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    log: dict[str, Any] = {}

    if "face" in steps:
        face, log["face"] = train_face(train, val, cfg, progress=progress)
        face.save(out / FACE_FILE)
    if "speech" in steps:
        variants = speech_variants(corpus, train, cfg.speech_augment, cfg.seed, n_jobs=n_jobs)
        log["speech_variants"] = len(variants)
        speech, log["speech"] = train_speech(train, val, cfg, variants=variants, progress=progress)
        speech.save(out / SPEECH_FILE)
    if "fusion" in steps:
        face = face if "face" in steps else load_model("face_cnn", out, verify_hash=False)
        speech = speech if "speech" in steps else load_model("speech_lstm", out, verify_hash=False)
        # The head learns on the frozen embeddings of the same training frames and utterances.
        ef, _ = embed(face, face_batch(train.faces))
        ef_val, _ = embed(face, face_batch(val.faces))
        es, _ = embed(speech, train.speech)
        es_val, _ = embed(speech, val.speech)
        fusion, log["fusion"] = train_fusion(
            (ef, ef_val), (es, es_val), (train.labels, val.labels), cfg, progress=progress
        )
        fusion.save(out / FUSION_FILE)

    # Re-read just before writing: another process may have finished its step meanwhile.
    log_path = out / TRAINING_LOG
    previous: dict[str, Any] = json.loads(log_path.read_text()) if log_path.is_file() else {}
    walls = {**previous.get("step_wall_time_s", {}), ",".join(steps): round(time.perf_counter() - t0, 1)}
    log = {**previous, **log}
    log.update(
        {
            "corpus": str(corpus),
            "manifest_sha256": manifest_hash(corpus),
            "n_train": len(train),
            "n_val": len(val),
            "n_train_persons": int(train.index["person_id"].nunique()),
            "face_preprocessing": _plain(FACE_PREP),
            "speech_preprocessing": _plain(SPEECH_PREP),
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "numpy": np.__version__,
            },
        }
    )
    log["step_wall_time_s"] = walls
    log["total_wall_time_s"] = round(sum(walls.values()), 1)
    tmp = log_path.with_name(log_path.name + ".partial")
    tmp.write_text(json.dumps(log, indent=2) + "\n")
    tmp.replace(log_path)
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


def export_dir(
    corpus: str | Path,
    models_dir: str | Path | None,
    *,
    latency_samples: int = 200,
    progress: bool = True,
) -> dict[str, Any]:
    """Export the face CNN and speech LSTM of ``models_dir`` to TFLite (float32 and int8) beside
    them, score every export on the held-out test split, time single-sample inference and write
    the results into the cards' ``edge`` sections.

    Latency is the median (and 95th percentile) of ``latency_samples`` single-sample calls on one
    thread, after 20 warm-up calls, on this machine.
    """
    from tqdm.auto import tqdm

    from mer_gym.models.cards import add_card_section
    from mer_gym.models.evaluate import classification_metrics
    from mer_gym.models.export import MODEL_FOR_KIND, TFLiteModel, export_all
    from mer_gym.models.frozen import default_dir, read_card

    models_dir = Path(models_dir) if models_dir is not None else default_dir()
    arrays = corpus_arrays(corpus, progress=False)
    files = export_all(models_dir, models_dir, arrays)
    test = arrays.split("test")
    inputs = {"face": face_batch(test.faces), "speech": test.speech}
    edge: dict[str, dict[str, Any]] = {}
    for info in tqdm(files.values(), desc="edge exports", disable=not progress):
        kind = info["kind"]
        name = MODEL_FOR_KIND[kind]
        keras_acc = read_card(name, models_dir)["evaluation"]["test"]["accuracy"]
        model = TFLiteModel(models_dir / info["file"], expected_sha256=info.get("sha256"))
        _, proba = model.predict(inputs[kind])
        metrics = classification_metrics(test.labels, proba)
        one = inputs[kind][:1]
        for _ in range(20):
            model.predict(one)
        times = []
        for i in range(latency_samples):
            x = inputs[kind][i % len(test) : i % len(test) + 1]
            t0 = time.perf_counter()
            model.predict(x)
            times.append((time.perf_counter() - t0) * 1000)
        edge.setdefault(name, {})[info["quantization"]] = {
            "file": info["file"],
            "sha256": info["sha256"],
            "size_kib": round(info["size_bytes"] / 1024, 1),
            "accuracy": round(100 * metrics["accuracy"], 2),
            "macro_f1": round(100 * metrics["macro_f1"], 2),
            "accuracy_change_points": round(100 * (metrics["accuracy"] - keras_acc), 2),
            "latency_ms_median": round(float(np.median(times)), 2),
            "latency_ms_p95": round(float(np.percentile(times, 95)), 2),
            "max_abs_diff_softmax_vs_keras": info["max_abs_diff_softmax"],
        }
    for name, formats in edge.items():
        keras_card = read_card(name, models_dir)
        formats = {
            "keras": {
                "file": keras_card["file"],
                "size_kib": round(keras_card["size_bytes"] / 1024, 1),
                "accuracy": round(100 * keras_card["evaluation"]["test"]["accuracy"], 2),
                "accuracy_change_points": 0.0,
            },
            **formats,
        }
        add_card_section(models_dir, name, "edge", formats)
    return edge
