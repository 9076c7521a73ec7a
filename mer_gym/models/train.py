"""Training of the face CNN, the speech LSTM and the fusion head (paper §6.1).

Protocol (P: the paper; D: our choice where the paper is silent):

* Adam, batch 32, L2 1e-4 on the dense kernels, dropout 0.4 (face head) and 0.3 (LSTMs), sparse
  categorical cross-entropy, early stopping on validation loss with the best weights restored (P).
* Learning rate 1e-3, not the paper's 1e-4 (D, measured): the paper trained 200/150 epochs on
  FER-2013-sized data on a GPU; on the default corpus (3,456 training samples, 108 steps an epoch)
  at 1e-4 neither network left chance level within three epochs, and the hour of 2-core CPU time
  allows about 35 face epochs. ``FitConfig.learning_rate`` restores the paper's value.
* Patience and the epoch caps are D, chosen so that the default corpus trains in about an hour
  on a 2-core CPU.
* Subject-independent splits: the corpus' ``train``/``val``/``test`` persons are disjoint (P: the
  paper's 80/20 split; ours is by identity).
* Augmentation (P names them; parameters D): faces get a horizontal flip, a random crop (shift of
  up to ``crop_px`` pixels, reflect-padded) and a brightness/contrast jitter, drawn per batch;
  utterances get ``copies`` precomputed variants with a pitch shift (``librosa.effects.pitch_shift``)
  and additive white noise at a random SNR.
* The fusion head is trained on the frozen embeddings with ``w_face ~ U(0, 1)`` per sample and,
  with probability ``p_modality_dropout``, a whole modality dropped (``w_face`` = 0 or 1), so that
  every weight the agent can choose yields a meaningful softmax.

Determinism: :func:`seed_everything` seeds Python, NumPy and TensorFlow and turns on TensorFlow's
deterministic ops, so one seed gives the same weights bit for bit on one machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import soundfile as sf
from joblib import Parallel, delayed

from mer_gym.config import ConfigError, check_range, from_mapping, parse_yaml
from mer_gym.models.architectures import (
    build_face_cnn,
    build_fusion_head,
    build_speech_lstm,
    embedding_model,
)
from mer_gym.models.data import SPEECH_PREP, Arrays, config_key, face_batch


@dataclass(frozen=True)
class FitConfig:
    """Optimizer and stopping rule shared by the three models.

    Attributes:
        learning_rate: Adam step size. 1e-4 (P).
        batch_size: 32 (P).
        l2: L2 weight on dense kernels. 1e-4 (P).
        max_epochs: cap on epochs (D).
        patience: epochs without a better validation loss before stopping (D).
    """

    learning_rate: float = 1e-4
    batch_size: int = 32
    l2: float = 1e-4
    max_epochs: int = 30
    patience: int = 5

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate, 1e-7, 1.0)
        check_range("l2", self.l2, 0.0, 1.0)
        for name in ("batch_size", "max_epochs", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} = {v!r}: expected an integer >= 1")


@dataclass(frozen=True)
class FaceAugment:
    """Per-batch face augmentation (D parameters).

    Attributes:
        flip: probability of a horizontal flip.
        crop_px: largest shift of the random crop, pixels.
        brightness: multiplicative brightness range; contrast: contrast-gain range about the mean.
    """

    flip: float = 0.5
    crop_px: int = 8
    brightness: tuple[float, float] = (0.75, 1.25)
    contrast: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        check_range("flip", self.flip, 0.0, 1.0)
        if isinstance(self.crop_px, bool) or not isinstance(self.crop_px, int) or not 0 <= self.crop_px <= 32:
            raise ConfigError(f"crop_px = {self.crop_px!r}: expected an integer in [0, 32]")
        for name in ("brightness", "contrast"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi <= 4.0:
                raise ConfigError(f"{name} = {getattr(self, name)!r}: expected 0 < low <= high <= 4")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a float32 (N, H, W, 1) batch in [0, 1]; returns a new array."""
        n, h, w, _ = x.shape
        out = np.empty_like(x)
        p = self.crop_px
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect") if p else x
        dy = rng.integers(0, 2 * p + 1, n)
        dx = rng.integers(0, 2 * p + 1, n)
        flips = rng.random(n) < self.flip
        gain = rng.uniform(*self.brightness, n).astype(np.float32)
        contrast = rng.uniform(*self.contrast, n).astype(np.float32)
        for i in range(n):
            img = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
            if flips[i]:
                img = img[:, ::-1]
            mean = img.mean()
            out[i] = (img - mean) * contrast[i] + mean * gain[i]
        return np.clip(out, 0.0, 1.0, out=out)


@dataclass(frozen=True)
class SpeechAugment:
    """Precomputed utterance variants (D parameters).

    Attributes:
        copies: augmented variants per training utterance (0: none).
        pitch_semitones: pitch-shift range.
        snr_db: SNR range of the added white noise.
    """

    copies: int = 1
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    snr_db: tuple[float, float] = (10.0, 30.0)

    def __post_init__(self) -> None:
        if isinstance(self.copies, bool) or not isinstance(self.copies, int) or not 0 <= self.copies <= 8:
            raise ConfigError(f"copies = {self.copies!r}: expected an integer in [0, 8]")
        lo, hi = self.pitch_semitones
        if not -12.0 <= lo <= hi <= 12.0:
            raise ConfigError(f"pitch_semitones = {self.pitch_semitones!r}: expected -12 <= low <= high <= 12")
        lo, hi = self.snr_db
        if not -10.0 <= lo <= hi <= 80.0:
            raise ConfigError(f"snr_db = {self.snr_db!r}: expected -10 <= low <= high <= 80")


@dataclass(frozen=True)
class FusionTraining:
    """How the fusion head sees the weights (D).

    Attributes:
        p_modality_dropout: probability that a sample drops a whole modality (w_face = 0 or 1).
        repeats: weight draws per training sample per epoch.
    """

    p_modality_dropout: float = 0.15
    repeats: int = 4

    def __post_init__(self) -> None:
        check_range("p_modality_dropout", self.p_modality_dropout, 0.0, 1.0)
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigError(f"repeats = {self.repeats!r}: expected an integer >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained models; written beside them as ``train_config.json``."""

    seed: int = 0
    face: FitConfig = field(
        default_factory=lambda: FitConfig(learning_rate=1e-3, max_epochs=20, patience=5)
    )
    speech: FitConfig = field(
        default_factory=lambda: FitConfig(learning_rate=1e-3, max_epochs=60, patience=8)
    )
    fusion: FitConfig = field(
        default_factory=lambda: FitConfig(learning_rate=1e-3, max_epochs=60, patience=6)
    )
    face_augment: FaceAugment = field(default_factory=FaceAugment)
    speech_augment: SpeechAugment = field(default_factory=SpeechAugment)
    fusion_training: FusionTraining = field(default_factory=FusionTraining)
    face_dropout: float = 0.4
    speech_dropout: float = 0.3

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed = {self.seed!r}: expected an integer >= 0")
        check_range("face_dropout", self.face_dropout, 0.0, 0.95)
        check_range("speech_dropout", self.speech_dropout, 0.0, 0.95)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML/JSON file (or defaults), then top-level ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"training config {p} not found")
        data = parse_yaml(p.read_text(), where=str(p)) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(TrainConfig, data, where="training config")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# ---------------------------------------------------------------------------------------------
# Batches


class FaceBatches(keras.utils.PyDataset):
    """Shuffled, augmented face batches; epoch ``e`` uses generator (seed, e)."""

    def __init__(
        self,
        faces_u8: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        augment: FaceAugment | None,
        seed: int,
    ) -> None:
        super().__init__()
        self.faces, self.labels = faces_u8, labels
        self.batch_size, self.augment, self.seed = batch_size, augment, seed
        self.epoch = 0
        self._order = self._shuffle()

    def _shuffle(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        x = face_batch(self.faces[idx])
        if self.augment is not None:
            x = self.augment(x, np.random.default_rng([self.seed, self.epoch, i]))
        return x, self.labels[idx]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._shuffle()


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over epochs showing the latest losses and accuracies."""

    def __init__(self, desc: str, total: int, enabled: bool = True) -> None:
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="epoch", disable=not enabled)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k != "learning_rate"})
        self.bar.update()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.bar.close()


def _compile(model: keras.Model, fit: FitConfig) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(fit.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def _fit(model, train, val, fit: FitConfig, desc: str, progress: bool, **kw) -> dict[str, Any]:
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=fit.patience, restore_best_weights=True
    )
    t0 = time.perf_counter()
    hist = model.fit(
        train if not isinstance(train, tuple) else train[0],
        None if not isinstance(train, tuple) else train[1],
        validation_data=val,
        epochs=fit.max_epochs,
        callbacks=[stop, ProgressBar(desc, fit.max_epochs, progress)],
        verbose=0,
        **kw,
    )
    wall = time.perf_counter() - t0
    losses = hist.history["val_loss"]
    return {
        "epochs_run": len(losses),
        "best_epoch": int(np.argmin(losses)) + 1,
        "best_val_loss": float(np.min(losses)),
        "wall_time_s": round(wall, 1),
        "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
    }


# ---------------------------------------------------------------------------------------------
# Face and speech


def train_face(
    train: Arrays, val: Arrays, cfg: TrainConfig, *, progress: bool = True
) -> tuple[keras.Model, dict[str, Any]]:
    """Train the Table 5 CNN on ``train`` (augmented), early-stopped on ``val``."""
    _require(train, "faces", "face")
    seed_everything(cfg.seed)
    model = build_face_cnn(l2=cfg.face.l2, dropout=cfg.face_dropout)
    _compile(model, cfg.face)
    batches = FaceBatches(train.faces, train.labels, cfg.face.batch_size, cfg.face_augment, cfg.seed)
    val_data = (face_batch(val.faces), val.labels)
    info = _fit(model, batches, val_data, cfg.face, "face CNN", progress)
    return model, info


def _augment_one(wave: np.ndarray, sr: int, semitones: float, snr_db: float, seed: int) -> np.ndarray:
    import librosa

    shifted = librosa.effects.pitch_shift(wave, sr=sr, n_steps=semitones)
    rng = np.random.default_rng(seed)
    power = float(np.mean(shifted**2)) or 1e-12
    noise = rng.standard_normal(len(shifted)) * math.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(shifted + noise, -1.0, 1.0).astype(np.float32)


def _augment_chunk(root: Path, jobs: list[tuple[str, float, float, int]]) -> np.ndarray:
    out = np.empty((len(jobs), SPEECH_PREP.max_frames, SPEECH_PREP.n_features), np.float32)
    for i, (rel, semis, snr, seed) in enumerate(jobs):
        wave, sr = sf.read(root / rel, dtype="float32")
        out[i] = SPEECH_PREP(_augment_one(wave, sr, semis, snr, seed), sr, name=rel).features
    return out


def speech_variants(
    root: str | Path, train: Arrays, aug: SpeechAugment, seed: int, *, n_jobs: int = 1, cache: bool = True
) -> np.ndarray:
    """``aug.copies`` augmented MFCC variants of every training utterance, stacked copy-major
    (shape ``(copies * N, 120, 13)``), cached beside the corpus."""
    root = Path(root)
    if aug.copies == 0:
        return np.zeros((0, SPEECH_PREP.max_frames, SPEECH_PREP.n_features), np.float32)
    key = config_key(train.index["sample_id"].tolist(), aug, seed, SPEECH_PREP)
    path = root / f"speech-aug-{key}.npy"
    if cache and path.is_file():
        return np.load(path, allow_pickle=False)
    rng = np.random.default_rng([seed, 7])
    jobs = []
    for c in range(aug.copies):
        for j, rel in enumerate(train.index["speech_path"]):
            jobs.append(
                (rel, float(rng.uniform(*aug.pitch_semitones)), float(rng.uniform(*aug.snr_db)), seed * 1_000_003 + c * 100_000 + j)
            )
    chunks = [jobs[i : i + 64] for i in range(0, len(jobs), 64)]
    from tqdm.auto import tqdm

    gen = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_augment_chunk)(root, c) for c in chunks)
    out = np.concatenate(list(tqdm(gen, total=len(chunks), desc="speech augmentation", unit="chunk")))
    if cache:
        tmp = path.with_name(path.name + ".partial.npy")
        np.save(tmp, out)
        tmp.replace(path)
    return out


def train_speech(
    train: Arrays,
    val: Arrays,
    cfg: TrainConfig,
    *,
    variants: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[keras.Model, dict[str, Any]]:
    """Train the Table 6 LSTM on ``train`` plus its augmented ``variants``, early-stopped on ``val``."""
    _require(train, "speech", "speech")
    seed_everything(cfg.seed)
    model = build_speech_lstm(l2=cfg.speech.l2, dropout=cfg.speech_dropout)
    _compile(model, cfg.speech)
    x, y = train.speech, train.labels
    if variants is not None and len(variants):
        copies = len(variants) // len(y)
        x = np.concatenate([x, variants])
        y = np.concatenate([y] * (copies + 1))
    info = _fit(
        model, (x, y), (val.speech, val.labels), cfg.speech, "speech LSTM", progress,
        batch_size=cfg.speech.batch_size, shuffle=True,
    )
    return model, info


# ---------------------------------------------------------------------------------------------
# Fusion


def embed(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, softmax) of a face CNN or speech LSTM over ``x`` (inference mode)."""
    emb_model = embedding_model(model)
    e, p = emb_model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(e, np.float32), np.asarray(p, np.float32)


def draw_weights(n: int, p_drop: float, rng: np.random.Generator) -> np.ndarray:
    """``w_face`` per sample: U(0, 1), or 0/1 (a dropped modality) with probability ``p_drop``."""
    w = rng.random(n)
    drop = rng.random(n) < p_drop
    w[drop] = rng.integers(0, 2, int(drop.sum()))
    return w.astype(np.float32)[:, None]


def train_fusion(
    face_emb: tuple[np.ndarray, np.ndarray],
    speech_emb: tuple[np.ndarray, np.ndarray],
    labels: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    *,
    progress: bool = True,
) -> tuple[keras.Model, dict[str, Any]]:
    """Train the §6.3 head on (train, val) embeddings with random fusion weights."""
    seed_everything(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 3])
    ft = cfg.fusion_training
    (ef, ef_val), (es, es_val), (y, y_val) = face_emb, speech_emb, labels
    reps = ft.repeats
    x_train = [np.tile(ef, (reps, 1)), np.tile(es, (reps, 1)), draw_weights(len(y) * reps, ft.p_modality_dropout, rng)]
    # Validation at a fixed spread of weights, so early stopping watches every weight at once.
    grid = np.linspace(0.0, 1.0, 5, dtype=np.float32)
    x_val = [
        np.tile(ef_val, (len(grid), 1)),
        np.tile(es_val, (len(grid), 1)),
        np.repeat(grid, len(y_val))[:, None],
    ]
    model = build_fusion_head(l2=cfg.fusion.l2)
    _compile(model, cfg.fusion)
    info = _fit(
        model, (x_train, np.tile(y, reps)), (x_val, np.tile(y_val, len(grid))), cfg.fusion,
        "fusion head", progress, batch_size=cfg.fusion.batch_size, shuffle=True,
    )
    return model, info


def _require(arrays: Arrays, attr: str, what: str) -> None:
    if getattr(arrays, attr) is None or len(arrays) == 0:
        raise ValueError(f"no {what} samples to train on: check the corpus split")

