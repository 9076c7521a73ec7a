"""Held-out evaluation of the trained models, overall and per capture condition.

The test split of a generated corpus holds identities never seen in training, captured under
conditions drawn from the preset. To measure each condition on its own, :func:`condition_arrays`
re-renders exactly the same test moments (same person, emotion, intensity, repetition) under one
fixed condition, e.g. every test face in low light or every test utterance at 0 dB SNR. Nothing is
written into the corpus except a cache of the preprocessed arrays.

Metrics come from scikit-learn: accuracy, macro-F1, per-class precision / recall / F1 and the
confusion matrix (rows: true label, columns: predicted, in :data:`mer_gym.labels.EMOTIONS` order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from mer_gym.labels import EMOTIONS
from mer_gym.models.data import (
    FACE_PREP,
    SPEECH_PREP,
    Arrays,
    config_key,
    corpus_arrays,
    face_batch,
    load_npz,
    manifest_hash,
)
from simulators.corpus.faces import FaceConditions
from simulators.corpus.persons import sample_people
from simulators.corpus.speech import SpeechConditions
from simulators.corpus.writer import PRESET, generate_sample, load_preset

# Named capture conditions for the per-condition rows of the model cards (D: chosen to span the
# ranges of the default preset and the situations the paper names: low light, occlusion, noise).
FACE_CONDITIONS: dict[str, FaceConditions] = {
    "clean": FaceConditions(),
    "low_light": FaceConditions(illumination=0.35),
    "occluded": FaceConditions(occlusion="hand", occlusion_frac=0.35),
    "pose_30deg": FaceConditions(yaw_deg=30.0),
    "blur": FaceConditions(blur_sigma=2.5),
}
SPEECH_CONDITIONS: dict[str, SpeechConditions] = {
    "clean": SpeechConditions(),
    "snr_20db": SpeechConditions(noise_type="babble", snr_db=20.0),
    "snr_10db": SpeechConditions(noise_type="babble", snr_db=10.0),
    "snr_0db": SpeechConditions(noise_type="babble", snr_db=0.0),
    "reverb": SpeechConditions(rt60_s=0.8, drr_db=3.0),
    "phone": SpeechConditions(phone_band=True),
}
FUSION_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Face/speech condition pairs on which the fusion head is scored at every weight.
FUSION_PAIRS: tuple[tuple[str, str], ...] = (
    ("clean", "clean"),
    ("low_light", "clean"),
    ("occluded", "clean"),
    ("clean", "snr_0db"),
    ("clean", "snr_10db"),
    ("low_light", "snr_10db"),
)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class P/R/F1/support and confusion matrix of softmax ``proba``."""
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[1] != len(EMOTIONS) or len(proba) != len(y_true):
        raise ValueError(
            f"proba has shape {proba.shape}: expected ({len(y_true)}, {len(EMOTIONS)}) softmax rows"
        )
    if not np.all(np.isfinite(proba)):
        raise ValueError("proba holds NaN or inf: the model's outputs are broken (check its inputs)")
    y_pred = proba.argmax(axis=1)
    labels = list(range(len(EMOTIONS)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            EMOTIONS[i]: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i in labels
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _render_person(preset, person, face_cond, speech_cond) -> list[tuple]:
    n = getattr(preset.samples_per_emotion, person.split)
    out = []
    for emotion in preset.emotions:
        for k in range(n):
            frame, wave, rows = generate_sample(
                preset, person, emotion, k, face_conditions=face_cond, speech_conditions=speech_cond
            )
            face = FACE_PREP(frame, name=rows[0]["sample_id"])
            speech = SPEECH_PREP(wave, preset.sample_rate, name=rows[1]["sample_id"])
            out.append(
                (
                    rows[0]["sample_id"],
                    np.round(face.array[..., 0] * 255.0).astype(np.uint8),
                    face.detected,
                    speech.features,
                    speech.n_frames,
                )
            )
    return out


def condition_arrays(
    corpus: str | Path,
    face_condition: str = "clean",
    speech_condition: str = "clean",
    *,
    split: str = "test",
    n_jobs: int = 1,
    cache: bool = True,
    extra_face: dict[str, FaceConditions] | None = None,
    extra_speech: dict[str, SpeechConditions] | None = None,
) -> Arrays:
    """The ``split`` samples of a generated corpus re-rendered under one named face condition
    (:data:`FACE_CONDITIONS`, or ``extra_face``) and one named speech condition
    (:data:`SPEECH_CONDITIONS`, or ``extra_speech``)."""
    faces = {**FACE_CONDITIONS, **(extra_face or {})}
    voices = {**SPEECH_CONDITIONS, **(extra_speech or {})}
    if face_condition not in faces:
        raise KeyError(f"unknown face condition {face_condition!r}: expected one of {', '.join(faces)}")
    if speech_condition not in voices:
        raise KeyError(f"unknown speech condition {speech_condition!r}: expected one of {', '.join(voices)}")
    corpus = Path(corpus)
    base = corpus_arrays(corpus, progress=False).split(split)
    fc, sc = faces[face_condition], voices[speech_condition]
    key = config_key(manifest_hash(corpus), split, fc, sc, FACE_PREP, SPEECH_PREP)
    path = corpus / "conditions" / f"{split}-{face_condition}-{speech_condition}-{key}.npz"
    cached = load_npz(path, base.index) if cache else None
    if cached is not None:
        return cached
    preset = load_preset(corpus / PRESET)
    people = [
        p
        for p in sample_people(preset.seed, preset.persons.as_dict(), preset.expressivity)
        if p.split == split
    ]
    results = Parallel(n_jobs=n_jobs)(delayed(_render_person)(preset, p, fc, sc) for p in people)
    by_id = {r[0]: r for person in results for r in person}
    missing = [s for s in base.index["sample_id"] if s not in by_id]
    if missing:
        raise ValueError(
            f"{corpus}: {len(missing)} {split} samples (e.g. {missing[0]}) cannot be re-rendered from "
            f"{PRESET}: the corpus and its preset disagree; regenerate it with `mer-gym corpus`"
        )
    rows = [by_id[s] for s in base.index["sample_id"]]
    arrays = Arrays(
        base.index,
        np.stack([r[1] for r in rows]),
        np.array([r[2] for r in rows], bool),
        np.stack([r[3] for r in rows]),
        np.array([r[4] for r in rows], np.int32),
    )
    if cache:
        path.parent.mkdir(exist_ok=True)
        arrays.save_npz(path)
    return arrays


def predict(model, arrays: Arrays, modality: str, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, softmax) of the face CNN or speech LSTM on ``arrays``."""
    from mer_gym.models.train import embed

    if modality == "face":
        return embed(model, face_batch(arrays.faces), batch_size)
    if modality == "speech":
        return embed(model, arrays.speech, batch_size)
    raise ValueError(f"modality = {modality!r}: expected 'face' or 'speech'")


def fusion_proba(fusion, e_face: np.ndarray, e_speech: np.ndarray, w_face: float) -> np.ndarray:
    w = np.full((len(e_face), 1), w_face, np.float32)
    return np.asarray(fusion.predict([e_face, e_speech, w], batch_size=1024, verbose=0))


def evaluate_all(
    corpus: str | Path, models: dict[str, Any], *, n_jobs: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Score the face, speech and fusion models on the held-out test identities.

    Returns ``{"face": {...}, "speech": {...}, "fusion": {...}, "agreement": {...}}`` where each
    unimodal entry holds ``test`` (conditions as sampled by the preset) and ``conditions`` (one
    entry per named condition), and the fusion entry holds the same per fusion weight and per
    face/speech condition pair.
    """
    from tqdm.auto import tqdm

    corpus = Path(corpus)
    test = corpus_arrays(corpus, progress=False).split("test")
    y = test.labels
    face, speech, fusion = models["face_cnn"], models["speech_lstm"], models["fusion_head"]
    out: dict[str, Any] = {"face": {"conditions": {}}, "speech": {"conditions": {}}, "fusion": {}}
    ef, pf = predict(face, test, "face")
    es, ps = predict(speech, test, "speech")
    out["face"]["test"] = classification_metrics(y, pf)
    out["speech"]["test"] = classification_metrics(y, ps)
    out["face"]["test"]["face_detected"] = float(test.face_detected.mean())

    embeddings: dict[tuple[str, str], np.ndarray] = {}
    jobs = [("face", c) for c in FACE_CONDITIONS] + [("speech", c) for c in SPEECH_CONDITIONS]
    for modality, cond in tqdm(jobs, desc="conditions", disable=not progress):
        arr = condition_arrays(
            corpus,
            cond if modality == "face" else "clean",
            cond if modality == "speech" else "clean",
            n_jobs=n_jobs,
        )
        e, p = predict(face if modality == "face" else speech, arr, modality)
        embeddings[(modality, cond)] = e
        metrics = classification_metrics(y, p)
        if modality == "face":
            metrics["face_detected"] = float(arr.face_detected.mean())
        out[modality]["conditions"][cond] = metrics

    out["fusion"]["test"] = {
        f"{w:g}": classification_metrics(y, fusion_proba(fusion, ef, es, w)) for w in FUSION_WEIGHTS
    }
    out["fusion"]["condition_pairs"] = {
        f"{fc}+{sc}": {
            f"{w:g}": classification_metrics(
                y, fusion_proba(fusion, embeddings[("face", fc)], embeddings[("speech", sc)], w)
            )
            for w in FUSION_WEIGHTS
        }
        for fc, sc in FUSION_PAIRS
    }
    face_right = pf.argmax(1) == y
    speech_right = ps.argmax(1) == y
    out["agreement"] = {
        "both_right": float(np.mean(face_right & speech_right)),
        "only_face_right": float(np.mean(face_right & ~speech_right)),
        "only_speech_right": float(np.mean(~face_right & speech_right)),
        "both_wrong": float(np.mean(~face_right & ~speech_right)),
    }
    return out


def headline_rows(evaluation: dict[str, Any]) -> pd.DataFrame:
    """One row per (model, condition): accuracy and macro-F1 in percent."""
    rows = []
    for modality in ("face", "speech"):
        ev = evaluation[modality]
        rows.append((modality, "test (sampled)", ev["test"]["accuracy"], ev["test"]["macro_f1"]))
        for cond, m in ev["conditions"].items():
            rows.append((modality, cond, m["accuracy"], m["macro_f1"]))
    for pair, by_w in evaluation["fusion"]["condition_pairs"].items():
        m = by_w["0.5"]
        rows.append(("fusion w=0.5", pair, m["accuracy"], m["macro_f1"]))
    m = evaluation["fusion"]["test"]["0.5"]
    rows.append(("fusion w=0.5", "test (sampled)", m["accuracy"], m["macro_f1"]))
    df = pd.DataFrame(rows, columns=["model", "condition", "accuracy", "macro_f1"])
    df[["accuracy", "macro_f1"]] = (df[["accuracy", "macro_f1"]] * 100).round(1)
    return df


__all__ = [
    "FACE_CONDITIONS",
    "FUSION_PAIRS",
    "FUSION_WEIGHTS",
    "SPEECH_CONDITIONS",
    "classification_metrics",
    "condition_arrays",
    "evaluate_all",
    "headline_rows",
]
