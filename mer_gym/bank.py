"""`mer-gym embed`: the embedding bank, the frozen models' outputs per sample, replayed by the gym.

A bank holds, for every paired sample of a corpus (generated, or a real audio-visual corpus):

* the index: ids (``sample_id``, ``person_id``), ``label``/``label_index``, ``split``, the capture
  conditions (``face_*``, ``speech_*``), ``face_detected`` and ``speech_frames``;
* the 128-d face and speech embeddings and the face CNN's and speech LSTM's own softmax;
* the fusion head's per-sample projections ``face_proj = e_face @ W_face`` and
  ``speech_proj = e_speech @ W_speech`` and the head's remaining weights
  (:class:`~mer_gym.models.fusion.FusionProjection`), so that :meth:`EmbeddingBank.fused_softmax`
  gives the fused prediction at any face weight with numpy alone (microseconds per sample; no
  TensorFlow is imported to load or use a bank).

On disk a bank is a folder::

    arrays.npz      the arrays above (float32, or float16 with --float16) and the head's weights
    index.parquet   one row per sample, in the arrays' order
    meta.json       format, cache key, model sha256s, source corpus, dtype, build timing, and
                    the sha256 of arrays.npz and index.parquet (checked on every load)

:func:`build_bank` caches: the key hashes the three models' sha256s (from their cards), the corpus
manifest's sha256, the preprocessing configuration and the storage dtype; a bank whose
``meta.json`` holds the same key is loaded, anything else is rebuilt. Banks are written to
``<out>.partial`` and renamed into place, so a crash never leaves a half-written bank at ``out``.

>>> bank = build_bank("runs/corpus-default")                  # doctest: +SKIP
>>> rows = bank.user_rows(bank.persons[0])                    # doctest: +SKIP
>>> bank.fused_softmax(rows[0], w_face=0.3)                   # doctest: +SKIP  -> (6,) float64
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mer_gym.labels import EMOTIONS
from mer_gym.models.fusion import FusionProjection, check_classes

if TYPE_CHECKING:
    import argparse

    from mer_gym.datasets import FaceRecord, SpeechRecord
    from mer_gym.models.data import Arrays

BANK_FORMAT = 1
"""Version of the on-disk layout; part of the cache key."""
ARRAYS_FILE = "arrays.npz"
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"
DTYPES = ("float32", "float16")
"""Storage dtypes of the per-sample arrays (the head's weights are always float32)."""
SAMPLE_ARRAYS = (
    "face_embedding",
    "speech_embedding",
    "face_softmax",
    "speech_softmax",
    "face_proj",
    "speech_proj",
)
PROJECTION_ARRAYS = ("W_face", "W_speech", "b1", "W2", "b2")
REQUIRED_COLUMNS = ("sample_id", "person_id", "label", "label_index")
SHA256_KEY = "files_sha256"
"""meta.json field: file name → sha256 of ``arrays.npz`` and ``index.parquet``, checked on load."""
AV_DATASETS = {"ravdess": ("ravdess_faces", "ravdess_speech"), "cremad": ("cremad_faces", "cremad_speech")}
"""Real audio-visual corpora :func:`build_bank_from_dataset` pairs: name → (face, speech) loader."""
_MEDIA_SUFFIXES = (".wav", ".mp4", ".flv")
_CHUNK_SAMPLES = 2048


class BankError(ValueError):
    """An embedding bank on disk is missing, corrupt or inconsistent, or cannot be built."""


def _rebuild_hint(directory: Path) -> str:
    return (
        f"rebuild it: `mer-gym embed --corpus <corpus> --out {directory} --force` "
        "(or delete the folder)"
    )


def check_dtype(dtype: Any) -> str:
    """The canonical storage dtype name (``"float32"`` or ``"float16"``) of ``dtype``."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype = {dtype!r}: expected one of {', '.join(DTYPES)}")
    return name


# ---------------------------------------------------------------------------------------------
# The bank


@dataclass(frozen=True, eq=False)
class EmbeddingBank:
    """The frozen models' per-sample outputs, with what makes fusion cheap.

    Attributes:
        index: one row per sample (``sample_id``, ``person_id``, ``label``, ``label_index``, and for
            generated corpora ``split``, the ``face_*``/``speech_*`` conditions, ``face_detected``,
            ``speech_frames``), rows numbered 0..N-1 in the arrays' order.
        face_embedding: (N, 128) face CNN embeddings (global-average-pooling output).
        speech_embedding: (N, 128) speech LSTM embeddings (Dense-128 output).
        face_softmax: (N, 6) the face CNN's own prediction, classes in
            :data:`mer_gym.labels.EMOTIONS` order.
        speech_softmax: (N, 6) the speech LSTM's own prediction.
        face_proj: (N, 128) ``face_embedding @ W_face`` (the head's face half of ``W1``).
        speech_proj: (N, 128) ``speech_embedding @ W_speech``.
        projection: the fusion head's weights (float32).
        meta: JSON-able facts: ``format``, ``key``, ``dtype``, ``models`` (sha256 per model),
            ``source`` (corpus or dataset, with its hash), ``timing`` (build seconds, samples/s).
        from_cache: True when :func:`build_bank` loaded this bank instead of building it (not saved).

    The six per-sample arrays share one dtype, float32 or float16 (storage); arithmetic on them
    (:meth:`fused_softmax`) upcasts. They are made read-only: a bank is a frozen record of what
    the frozen models said.
    """

    index: pd.DataFrame
    face_embedding: np.ndarray
    speech_embedding: np.ndarray
    face_softmax: np.ndarray
    speech_softmax: np.ndarray
    face_proj: np.ndarray
    speech_proj: np.ndarray
    projection: FusionProjection
    meta: dict[str, Any]
    from_cache: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise BankError("inconsistent embedding bank: " + "; ".join(problems))
        for name in SAMPLE_ARRAYS:
            getattr(self, name).setflags(write=False)

    def _problems(self) -> list[str]:
        out: list[str] = []
        if not isinstance(self.index, pd.DataFrame):
            return [f"index is a {type(self.index).__name__}, expected a pandas DataFrame"]
        n = len(self.index)
        missing = [c for c in REQUIRED_COLUMNS if c not in self.index.columns]
        if missing:
            out.append(f"index lacks column(s) {', '.join(missing)}")
        h, c = self.projection.b1.shape[0], self.projection.n_classes
        widths = {
            "face_embedding": self.projection.embedding_dim,
            "speech_embedding": self.projection.embedding_dim,
            "face_softmax": c,
            "speech_softmax": c,
            "face_proj": h,
            "speech_proj": h,
        }
        dtypes = set()
        for name, width in widths.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray):
                out.append(f"{name} is a {type(a).__name__}, expected a numpy array")
                continue
            if a.shape != (n, width):
                out.append(f"{name} has shape {a.shape}, expected ({n}, {width})")
            if a.dtype.name not in DTYPES:
                out.append(f"{name} has dtype {a.dtype}, expected one of {', '.join(DTYPES)}")
            dtypes.add(a.dtype.name)
        if len(dtypes) > 1:
            out.append(f"the per-sample arrays mix dtypes {sorted(dtypes)}")
        if not isinstance(self.meta, dict):
            out.append(f"meta is a {type(self.meta).__name__}, expected a dict")
        return out

    # ---- basic facts ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.index)

    @property
    def dtype(self) -> str:
        """Storage dtype of the per-sample arrays, ``"float32"`` or ``"float16"``."""
        return self.face_proj.dtype.name

    @property
    def labels(self) -> np.ndarray:
        """int64 (N,) true class per sample (index into :data:`mer_gym.labels.EMOTIONS`)."""
        return self.index["label_index"].to_numpy(np.int64)

    @property
    def persons(self) -> list[str]:
        """Sorted distinct ``person_id`` values."""
        return sorted(self.index["person_id"].astype(str).unique().tolist())

    @property
    def nbytes(self) -> int:
        """Bytes of the per-sample arrays in memory."""
        return sum(getattr(self, name).nbytes for name in SAMPLE_ARRAYS)

    # ---- fusion -------------------------------------------------------------------------------

    def fused_softmax(
        self, rows: int | Sequence[int] | np.ndarray | slice | None, w_face: float | np.ndarray
    ) -> np.ndarray:
        """The fusion head's prediction for bank rows at face weight ``w_face`` (numpy only).

        Args:
            rows: One row number (gives shape (6,)), row numbers or a boolean mask or slice
                (gives (n, 6)), or None for every row.
            w_face: Face weight in [0, 1] (``w_speech = 1 - w_face``): a scalar, or one weight per
                selected row.

        Returns:
            float64 probabilities over :data:`mer_gym.labels.EMOTIONS`; equal to the Keras head's
            ``predict([e_face, e_speech, w_face])`` up to float32 rounding (float16 banks: ~1e-3).

        Raises:
            ValueError: NaN or out-of-range ``w_face`` (the message names the value and [0, 1]).
            IndexError: A row outside the bank.
        """
        if rows is None:
            rows = slice(None)
        elif isinstance(rows, int | np.integer):
            rows = int(rows)
            if not -len(self) <= rows < len(self):
                raise IndexError(f"row {rows} is outside the bank's {len(self)} rows")
        return self.projection.fused_softmax(self.face_proj[rows], self.speech_proj[rows], w_face)

    # ---- selection ----------------------------------------------------------------------------

    def select(self, mask: np.ndarray | Sequence[bool] | Sequence[int] | pd.Series) -> EmbeddingBank:
        """A bank of the rows where boolean ``mask`` is true, or of the given row numbers (in
        that order); the index is renumbered from 0 and ``meta`` copied."""
        sel = np.asarray(mask)
        if sel.dtype == bool:
            if sel.shape != (len(self),):
                raise ValueError(f"mask has shape {sel.shape}, expected ({len(self)},)")
        elif sel.size == 0:
            sel = np.zeros(0, np.int64)
        elif not np.issubdtype(sel.dtype, np.integer) or sel.ndim != 1:
            raise ValueError(
                f"select() takes a boolean mask of shape ({len(self)},) or 1-D row numbers, "
                f"got {sel.dtype} with shape {sel.shape}"
            )
        arrays = {name: getattr(self, name)[sel] for name in SAMPLE_ARRAYS}
        return EmbeddingBank(
            index=self.index.iloc[sel].reset_index(drop=True),
            projection=self.projection,
            meta=json.loads(json.dumps(self.meta)),
            **arrays,
        )

    def user_rows(self, person_id: str) -> np.ndarray:
        """int64 row numbers of one person's samples, in bank order (no copy of the arrays).

        Raises:
            KeyError: ``person_id`` is not in the bank (the message lists some that are).
        """
        ids = self.index["person_id"].astype(str).to_numpy()
        rows = np.flatnonzero(ids == str(person_id))
        if rows.size == 0:
            known = self.persons
            shown = ", ".join(known[:8]) + (f", … ({len(known)} in all)" if len(known) > 8 else "")
            raise KeyError(f"person_id {person_id!r} is not in this bank; it holds {shown}")
        return rows.astype(np.int64)

    def user(self, person_id: str) -> EmbeddingBank:
        """The bank of one person's samples (see :meth:`user_rows`)."""
        return self.select(self.user_rows(person_id))

    def astype(self, dtype: Any) -> EmbeddingBank:
        """The same bank stored as ``dtype`` (``"float16"`` or ``"float32"``); the cache key follows."""
        name = check_dtype(dtype)
        meta = json.loads(json.dumps(self.meta))
        meta["dtype"] = name
        if "content_key" in meta:
            meta["key"] = bank_key(meta["content_key"], name)
        arrays = {k: getattr(self, k).astype(name) for k in SAMPLE_ARRAYS}
        return EmbeddingBank(index=self.index, projection=self.projection, meta=meta, **arrays)

    def summary(self) -> str:
        """One paragraph: samples, persons, labels, dtype, source, throughput at build time."""
        meta = self.meta
        src = meta.get("source", {})
        where = src.get("path") or src.get("root") or "arrays"
        timing = meta.get("timing", {})
        parts = [
            f"embedding bank of {len(self):,} samples from {len(self.persons)} persons "
            f"({where}), stored as {self.dtype} ({self.nbytes / 1e6:.1f} MB of arrays)"
        ]
        if "face_detected" in self.index:
            parts.append(f"faces detected {float(self.index['face_detected'].mean()):.1%}")
        if timing:
            parts.append(
                f"built in {timing.get('total_s', timing.get('build_s', float('nan'))):.1f} s "
                f"(inference batch size {timing.get('batch_size')}): "
                f"face CNN {timing.get('face_cnn_samples_per_s', 0):,.0f} "
                f"samples/s, speech LSTM {timing.get('speech_lstm_samples_per_s', 0):,.0f} samples/s"
            )
        return "; ".join(parts) + "."

    # ---- persistence --------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the bank into ``directory`` atomically (via ``<directory>.partial``).

        An existing bank there is replaced; a non-empty folder that is not a bank is refused.

        Raises:
            FileExistsError: ``directory`` holds files but no ``meta.json``.
        """
        out = Path(directory)
        if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / META_FILE).is_file())):
            raise FileExistsError(
                f"{out} exists and is not an embedding bank (no {META_FILE}): choose another --out"
            )
        tmp = out.with_name(out.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        arrays = {name: getattr(self, name) for name in SAMPLE_ARRAYS}
        arrays.update(self.projection.arrays())
        np.savez(tmp / ARRAYS_FILE, **arrays)
        self.index.to_parquet(tmp / INDEX_FILE, index=False)
        meta = dict(self.meta, format=BANK_FORMAT, dtype=self.dtype, n_samples=len(self))
        meta = json.loads(json.dumps(meta, default=str))  # as it will read back
        meta[SHA256_KEY] = {name: _file_sha256(tmp / name) for name in (ARRAYS_FILE, INDEX_FILE)}
        meta[SHA256_KEY][META_FILE] = _meta_sha256(meta)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if out.exists():
            old = out.with_name(out.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
        return out

    @classmethod
    def load(cls, directory: str | Path) -> EmbeddingBank:
        """Read a bank written by :meth:`save` (no pickles: ``allow_pickle=False``).

        Raises:
            FileNotFoundError: No bank at ``directory``.
            BankError: A file is corrupt, an array is missing or has the wrong shape or dtype,
                the format is not this version's, or ``arrays.npz`` / ``index.parquet`` does not
                match the sha256 recorded in ``meta.json``; the message says how to rebuild.
        """
        d = Path(directory)
        if not (d / META_FILE).is_file():
            raise FileNotFoundError(
                f"{d / META_FILE} not found: {d} is not an embedding bank; build one with "
                "`mer-gym embed --corpus <corpus>`"
            )
        hint = _rebuild_hint(d)
        try:
            meta = json.loads((d / META_FILE).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BankError(f"{d / META_FILE} is unreadable ({exc}); {hint}") from None
        recorded = meta.pop(SHA256_KEY, None) if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or meta.get("format") != BANK_FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else None
            raise BankError(f"{d / META_FILE}: bank format {got!r}, this mer-gym reads {BANK_FORMAT}; {hint}")
        for name in (ARRAYS_FILE, INDEX_FILE):
            if not (d / name).is_file():
                raise BankError(f"{d / name} is missing; {hint}")
        try:
            with np.load(d / ARRAYS_FILE, allow_pickle=False) as z:
                missing = [k for k in (*SAMPLE_ARRAYS, *PROJECTION_ARRAYS) if k not in z.files]
                if missing:
                    raise BankError(f"{d / ARRAYS_FILE} lacks array(s) {', '.join(missing)}; {hint}")
                extra = [k for k in z.files if k not in (*SAMPLE_ARRAYS, *PROJECTION_ARRAYS)]
                if extra:
                    raise BankError(
                        f"{d / ARRAYS_FILE} holds unexpected array(s) {', '.join(extra)}: a bank holds "
                        f"only {', '.join((*SAMPLE_ARRAYS, *PROJECTION_ARRAYS))}; {hint}"
                    )
                arrays = {k: z[k] for k in (*SAMPLE_ARRAYS, *PROJECTION_ARRAYS)}
        except BankError:
            raise
        except Exception as exc:  # a damaged zip or .npy header fails in many ways (zipfile, tokenize...)
            raise BankError(f"{d / ARRAYS_FILE} is corrupt ({type(exc).__name__}: {exc}); {hint}") from None
        try:
            index = pd.read_parquet(d / INDEX_FILE)
        except Exception as exc:  # a damaged footer fails in pyarrow or in pandas' metadata
            raise BankError(f"{d / INDEX_FILE} is corrupt ({type(exc).__name__}: {exc}); {hint}") from None
        try:
            projection = FusionProjection(**{k: arrays.pop(k) for k in PROJECTION_ARRAYS})
            bank = cls(index=index, projection=projection, meta=meta, **arrays)
        except ValueError as exc:
            raise BankError(f"{d}: {exc}; {hint}") from None
        if meta.get("dtype") not in (None, bank.dtype):
            raise BankError(f"{d}: meta.json says dtype {meta['dtype']} but the arrays are {bank.dtype}; {hint}")
        if meta.get("n_samples") not in (None, len(bank)):
            raise BankError(f"{d}: meta.json says {meta['n_samples']!r} samples but the arrays hold {len(bank)}; {hint}")
        _verify_sha256(d, recorded, hint, meta)
        return bank


def _file_sha256(path: Path) -> str:
    from mer_gym.hashing import file_sha256  # the one sha256 helper (no cv2/TF import)

    return file_sha256(path)


def _meta_sha256(meta: dict[str, Any]) -> str:
    """sha256 of ``meta`` (without its own sha256 record), as canonical JSON."""
    body = {k: v for k, v in meta.items() if k != SHA256_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _verify_sha256(directory: Path, recorded: Any, hint: str, meta: dict[str, Any] | None = None) -> None:
    """Refuse a bank whose ``arrays.npz`` or ``index.parquet`` differs from the sha256 that
    :meth:`EmbeddingBank.save` recorded in ``meta.json`` (or that records none)."""
    if not isinstance(recorded, dict) or not all(
        isinstance(recorded.get(name), str) for name in (ARRAYS_FILE, INDEX_FILE)
    ):
        raise BankError(
            f"{directory / META_FILE} records no sha256 of {ARRAYS_FILE} and {INDEX_FILE} "
            f"('{SHA256_KEY}'): the bank was not written by this mer-gym, so its files cannot be "
            f"checked; {hint}"
        )
    if meta is not None and recorded.get(META_FILE) != _meta_sha256(meta):
        raise BankError(
            f"{directory / META_FILE} was modified after `mer-gym embed` wrote it (its content no longer "
            f"matches its recorded sha256); {hint}"
        )
    for name in (ARRAYS_FILE, INDEX_FILE):
        actual = _file_sha256(directory / name)
        if actual != recorded[name]:
            raise BankError(
                f"{directory / name} has sha256 {actual[:16]}… but {META_FILE} records "
                f"{recorded[name][:16]}…: the file was modified or damaged after `mer-gym embed` "
                f"wrote it; {hint}"
            )


def bank_key(content_key: str, dtype: str) -> str:
    """The cache key of a bank: its content key (models, source, preprocessing) and dtype.

    Hashed here (not with :func:`mer_gym.models.data.config_key`) so that using a bank never
    imports the preprocessing stack.
    """
    blob = json.dumps(["mer-gym bank", BANK_FORMAT, content_key, check_dtype(dtype)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Models and inference


@dataclass(frozen=True, eq=False)
class FrozenModels:
    """The three loaded models and the sha256s their cards vouch for.

    Attributes:
        face: the face CNN (Keras).
        speech: the speech LSTM (Keras).
        fusion: the fusion head (Keras).
        sha256: model name → sha256 of its ``.keras`` file (checked against the card on load).
        directory: the folder they came from.
    """

    face: Any
    speech: Any
    fusion: Any
    sha256: dict[str, str]
    directory: Path


def model_sha256s(models_dir: str | Path | None = None) -> dict[str, str]:
    """Model name → sha256 from the three cards in ``models_dir`` (no model is loaded)."""
    from mer_gym.models.frozen import MODEL_NAMES, read_card

    return {name: read_card(name, models_dir)["sha256"] for name in MODEL_NAMES}


def load_frozen_models(models_dir: str | Path | None = None) -> FrozenModels:
    """Load face CNN, speech LSTM and fusion head from ``models_dir`` (default ``frozen_models/``),
    each checked against its card's sha256 (:func:`mer_gym.models.frozen.load_model`)."""
    from mer_gym.models.frozen import default_dir, load_model

    directory = Path(models_dir) if models_dir is not None else default_dir()
    shas = model_sha256s(directory)
    face, speech, fusion = (load_model(n, directory) for n in ("face_cnn", "speech_lstm", "fusion_head"))
    return FrozenModels(face, speech, fusion, shas, directory)


def infer(
    model: Any,
    x: np.ndarray,
    *,
    batch_size: int = 256,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    desc: str = "embedding",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Batched ``(embedding, softmax)`` of a face CNN or speech LSTM, and the seconds it took.

    ``model`` is the classifier, or its :func:`~mer_gym.models.architectures.embedding_model`
    (two outputs; pass that to call repeatedly without re-tracing Keras' predict function).
    ``x`` is fed in chunks of whole batches (``prepare`` maps a chunk to the model's input, e.g.
    :func:`~mer_gym.models.data.face_batch`), so memory stays bounded and the batches, hence the
    results, are those of one ``predict(x, batch_size=batch_size)`` call.
    """
    import keras
    from tqdm.auto import tqdm

    from mer_gym.models.architectures import embedding_model

    emb_model = model if len(model.outputs) == 2 else embedding_model(model)
    n = len(x)
    chunk = batch_size * max(1, math.ceil(_CHUNK_SAMPLES / batch_size))
    bar = tqdm(total=n, desc=desc, unit="sample", disable=not progress)

    class _Bar(keras.callbacks.Callback):
        def __init__(self, size: int) -> None:
            super().__init__()
            self.left = size

        def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
            step = min(batch_size, self.left)
            self.left -= step
            bar.update(step)

    embs, probs = [], []
    t0 = time.perf_counter()
    try:
        for start in range(0, n, chunk):
            xb = x[start : start + chunk]
            xb = prepare(xb) if prepare is not None else xb
            e, p = emb_model.predict(xb, batch_size=batch_size, verbose=0, callbacks=[_Bar(len(xb))])
            embs.append(np.asarray(e, np.float32))
            probs.append(np.asarray(p, np.float32))
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    if not embs:
        raise BankError("no samples to embed")
    return np.concatenate(embs), np.concatenate(probs), seconds


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} = {value!r}: expected a positive integer")
    return int(value)


def _versions() -> dict[str, str]:
    import keras

    import mer_gym

    return {"mer_gym": mer_gym.__version__, "keras": keras.__version__, "numpy": np.__version__}


def _arrays_digest(arrays: Arrays) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(arrays.index["sample_id"].astype(str).tolist()).encode())
    h.update(arrays.labels.tobytes())
    for a in (arrays.faces, arrays.speech):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def prep_key() -> str:
    """Hash of the face and speech preprocessing configurations the banks use."""
    from mer_gym.models.data import FACE_PREP, SPEECH_PREP, config_key

    return config_key(FACE_PREP, SPEECH_PREP)


def bank_from_arrays(
    arrays: Arrays,
    models: FrozenModels | str | Path | None = None,
    *,
    dtype: str = "float32",
    batch_size: int = 256,
    progress: bool = True,
    source: dict[str, Any] | None = None,
    content_key: str | None = None,
) -> EmbeddingBank:
    """Run the frozen models over paired preprocessed samples and make a bank (not saved).

    Args:
        arrays: Paired samples (:class:`~mer_gym.models.data.Arrays` with faces and speech), from
            :func:`~mer_gym.models.data.corpus_arrays` or :func:`paired_records_arrays`.
        models: Loaded models, or the folder to load them from (None: ``frozen_models/``).
        dtype: Storage dtype, ``"float32"`` or ``"float16"``.
        batch_size: Inference batch size.
        progress: Show progress bars.
        source: JSON-able description of where the samples came from (stored in ``meta``).
        content_key: The cache identity of (models, source, preprocessing); by default a hash of
            the models' sha256s and the arrays' bytes.

    Returns:
        The bank; ``meta["timing"]`` holds the inference throughput of both models.
    """
    dtype = check_dtype(dtype)
    batch_size = _positive(batch_size, "batch_size")
    if arrays.faces is None or arrays.speech is None or len(arrays) == 0:
        raise BankError(
            "a bank needs paired samples with faces and speech; these arrays have "
            f"{len(arrays)} samples, faces {'absent' if arrays.faces is None else 'present'}, "
            f"speech {'absent' if arrays.speech is None else 'present'}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in arrays.index.columns]
    if missing:
        raise BankError(f"the arrays' index lacks column(s) {', '.join(missing)}")
    from mer_gym.models.data import face_batch

    t0 = time.perf_counter()
    if not isinstance(models, FrozenModels):
        models = load_frozen_models(models)
    load_s = time.perf_counter() - t0
    projection = FusionProjection.from_model(models.fusion)
    check_classes(projection)
    ef, pf, face_s = infer(
        models.face, arrays.faces, batch_size=batch_size, prepare=face_batch, desc="face CNN", progress=progress
    )
    es, ps, speech_s = infer(
        models.speech, arrays.speech, batch_size=batch_size, desc="speech LSTM", progress=progress
    )
    for name, e, p in (("face CNN", ef, pf), ("speech LSTM", es, ps)):
        if e.shape[1] != projection.embedding_dim or p.shape[1] != len(EMOTIONS):
            raise BankError(
                f"the {name} gives {e.shape[1]}-d embeddings and {p.shape[1]} classes; the fusion "
                f"head expects {projection.embedding_dim} and mer-gym {len(EMOTIONS)}: use models "
                "trained together (`mer-gym models train`)"
            )
    face_proj, speech_proj = projection.project(ef, es)
    index = arrays.index.reset_index(drop=True).infer_objects()  # e.g. object → bool, as parquet reads it
    if arrays.face_detected is not None:
        index["face_detected"] = np.asarray(arrays.face_detected, bool)
    if arrays.speech_frames is not None:
        index["speech_frames"] = np.asarray(arrays.speech_frames, np.int32)
    if content_key is None:
        from mer_gym.models.data import config_key

        content_key = config_key("arrays", models.sha256, _arrays_digest(arrays), prep_key())
    n = len(arrays)
    meta: dict[str, Any] = {
        "format": BANK_FORMAT,
        "key": bank_key(content_key, dtype),
        "content_key": content_key,
        "dtype": dtype,
        "n_samples": n,
        "n_persons": int(index["person_id"].nunique()),
        "classes": list(EMOTIONS),
        "models": dict(models.sha256),
        "models_dir": str(models.directory),
        "source": source or {"kind": "arrays"},
        "preprocessing": prep_key(),
        "fused_softmax_dtype": "float64",
        "timing": {
            "batch_size": batch_size,
            "load_models_s": round(load_s, 3),
            "face_cnn_s": round(face_s, 3),
            "speech_lstm_s": round(speech_s, 3),
            "face_cnn_samples_per_s": round(n / face_s, 1),
            "speech_lstm_samples_per_s": round(n / speech_s, 1),
            "build_s": round(time.perf_counter() - t0, 3),
        },
        "versions": _versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return EmbeddingBank(
        index=index,
        face_embedding=ef.astype(dtype),
        speech_embedding=es.astype(dtype),
        face_softmax=pf.astype(dtype),
        speech_softmax=ps.astype(dtype),
        face_proj=face_proj.astype(dtype),
        speech_proj=speech_proj.astype(dtype),
        projection=projection,
        meta=meta,
    )


def _cached(out: Path, key: str, models_dir: str | Path | None) -> EmbeddingBank | None:
    """The bank at ``out`` if its key is ``key`` and the model files still match their cards."""
    from mer_gym.models.frozen import MODEL_NAMES, verify

    try:
        stored = json.loads((out / META_FILE).read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None
    if stored != key:
        return None
    for name in MODEL_NAMES:
        verify(name, models_dir)
    try:
        bank = EmbeddingBank.load(out)
    except BankError as exc:
        warnings.warn(f"cached bank unusable, rebuilding: {exc}", RuntimeWarning, stacklevel=3)
        return None
    return dataclasses.replace(bank, from_cache=True)


def build_bank(
    corpus: str | Path,
    *,
    models_dir: str | Path | None = None,
    out: str | Path | None = None,
    dtype: str = "float32",
    batch_size: int = 256,
    n_jobs: int = 1,
    progress: bool = True,
    force: bool = False,
) -> EmbeddingBank:
    """The embedding bank of a generated corpus, built once and cached.

    Args:
        corpus: A folder written by ``mer-gym corpus``.
        models_dir: Folder with ``face_cnn``/``speech_lstm``/``fusion_head`` ``.keras`` files and
            their cards (default: the repository's ``frozen_models/``).
        out: Where the bank lives (default ``<corpus>/bank-<dtype>``).
        dtype: ``"float32"`` or ``"float16"`` storage.
        batch_size: Inference batch size.
        n_jobs: Preprocessing workers (when the corpus' arrays are not cached yet).
        progress: Progress bars.
        force: Rebuild even when ``out`` holds a bank with the same key.

    Returns:
        The bank; ``from_cache`` says whether it was loaded from ``out`` rather than built.

    Raises:
        FileNotFoundError: ``corpus`` has no manifest.
        FrozenModelError: A model or card is missing, or a file does not match its card.
    """
    from mer_gym.models.data import config_key, corpus_arrays, manifest_hash

    dtype = check_dtype(dtype)
    batch_size = _positive(batch_size, "batch_size")
    corpus = Path(corpus)
    mhash = manifest_hash(corpus)
    shas = model_sha256s(models_dir)
    content_key = config_key("corpus", shas, mhash, prep_key())
    out = Path(out) if out is not None else corpus / f"bank-{dtype}"
    if not force and (bank := _cached(out, bank_key(content_key, dtype), models_dir)) is not None:
        return bank
    t0 = time.perf_counter()
    models = load_frozen_models(models_dir)
    load_s = time.perf_counter() - t0
    arrays = corpus_arrays(corpus, n_jobs=n_jobs, progress=progress)
    prep_s = time.perf_counter() - t0 - load_s
    source = {"kind": "corpus", "path": str(corpus), "manifest_sha256": mhash}
    bank = bank_from_arrays(
        arrays, models, dtype=dtype, batch_size=batch_size, progress=progress,
        source=source, content_key=content_key,
    )
    bank.meta["timing"].update(
        load_models_s=round(load_s, 3),
        preprocess_s=round(prep_s, 3),
        total_s=round(time.perf_counter() - t0, 3),
    )
    bank.save(out)
    return bank


# ---------------------------------------------------------------------------------------------
# Real audio-visual corpora


def paired_records_arrays(pairs: Sequence[tuple[FaceRecord, SpeechRecord]]) -> Arrays:
    """Preprocess ``(face, speech)`` record pairs (:func:`mer_gym.datasets.pair_clips`) into paired
    :class:`~mer_gym.models.data.Arrays`.

    The index holds ``sample_id`` (``"<dataset>:<clip_id>"``), ``person_id`` (the actor),
    ``split`` (``"user_pool"``: the frozen models never saw a real corpus), ``label``,
    ``label_index``, ``dataset``, ``clip_id``, ``face_source``, ``speech_source`` and the face
    record's scalar ``meta`` fields prefixed ``meta_`` (intensity, sex, ... where the loader gives
    them).
    """
    from mer_gym.labels import emotion_index
    from mer_gym.models.data import Arrays, records_arrays

    if not pairs:
        raise BankError("no (face, speech) pairs to preprocess")
    faces = [f for f, _ in pairs]
    speech = [s for _, s in pairs]
    face_arr, speech_arr = records_arrays(faces, speech)
    assert face_arr is not None and speech_arr is not None
    rows = []
    for f, s in pairs:
        row: dict[str, Any] = {
            "sample_id": f"{f.dataset}:{f.clip_id}",
            "person_id": f.user or "",
            "split": "user_pool",
            "label": f.label,
            "label_index": emotion_index(f.label),
            "dataset": f.dataset,
            "clip_id": f.clip_id,
            "face_source": f.source,
            "speech_source": s.source,
        }
        for k, v in f.meta.items():
            if isinstance(v, str | int | float | bool | np.integer | np.floating) or v is None:
                row[f"meta_{k}"] = v
        rows.append(row)
    index = pd.DataFrame(rows)
    for col in index.columns:
        if index[col].dtype == object and not all(isinstance(v, str) or v is None for v in index[col]):
            index[col] = index[col].map(lambda v: None if v is None else str(v))
    return Arrays(index, face_arr.faces, face_arr.face_detected, speech_arr.speech, speech_arr.speech_frames)


def _listing_hash(root: Path) -> str:
    """sha256 of the media files' relative paths, sizes and modification times under ``root``."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in _MEDIA_SUFFIXES):
        st = path.stat()
        h.update(f"{path.relative_to(root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def build_bank_from_dataset(
    name: str,
    root: str | Path,
    *,
    models_dir: str | Path | None = None,
    out: str | Path | None = None,
    dtype: str = "float32",
    batch_size: int = 256,
    limit: int | None = None,
    on_error: str = "skip",
    progress: bool = True,
    force: bool = False,
) -> EmbeddingBank:
    """The bank of a real audio-visual corpus (``"ravdess"`` or ``"cremad"``) on disk.

    Loads its face (middle video frame) and speech records, pairs them per clip
    (:func:`mer_gym.datasets.pair_clips`), preprocesses them like the generated corpus and runs the
    frozen models. With ``out`` the bank is saved there and cached under a key of the models'
    sha256s, the media files' names, sizes and times, ``limit`` and ``on_error``.

    Args:
        name: ``"ravdess"`` or ``"cremad"``.
        root: The corpus folder, as for its loaders.
        models_dir, dtype, batch_size, progress, force: As for :func:`build_bank`.
        out: Where to save the bank (None: not saved, not cached).
        limit: Read at most this many videos (decoding is slow); speech is read in full.
        on_error: The loaders' policy for a bad file, ``"skip"`` (default) or ``"raise"``.

    Raises:
        BankError: An unknown ``name``, or no clip with both a face and a speech record.
    """
    from mer_gym.datasets import LOADERS, pair_clips
    from mer_gym.models.data import config_key

    if name not in AV_DATASETS:
        raise BankError(f"dataset {name!r}: expected one of {', '.join(AV_DATASETS)} (audio-visual corpora)")
    dtype = check_dtype(dtype)
    batch_size = _positive(batch_size, "batch_size")
    root = Path(root)
    shas = model_sha256s(models_dir)
    content_key = None
    if out is not None:
        out = Path(out)
        content_key = config_key(
            "dataset", name, _listing_hash(root), limit, on_error, shas, prep_key()
        )
        if not force and (bank := _cached(out, bank_key(content_key, dtype), models_dir)) is not None:
            return bank
    face_loader, speech_loader = (LOADERS[k] for k in AV_DATASETS[name])
    faces = face_loader(root, on_error=on_error, limit=limit)
    speech = speech_loader(root, on_error=on_error)
    pairs, unmatched = pair_clips(faces, speech)
    if not pairs:
        raise BankError(
            f"{root}: no clip has both a face ({len(faces)} videos read) and a speech record "
            f"({len(speech)} read): point root at a folder holding both the video and audio files"
        )
    arrays = paired_records_arrays(pairs)
    source = {
        "kind": "dataset",
        "dataset": name,
        "root": str(root),
        "limit": limit,
        "pairs": len(pairs),
        "unmatched_clips": len(unmatched),
        "skipped_faces": len(faces.skipped),
        "skipped_speech": len(speech.skipped),
    }
    bank = bank_from_arrays(
        arrays, models_dir, dtype=dtype, batch_size=batch_size, progress=progress,
        source=source, content_key=content_key,
    )
    if out is not None:
        bank.save(out)
    return bank


# ---------------------------------------------------------------------------------------------
# Command line


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def cmd_embed(args: argparse.Namespace) -> int:
    """Handler of ``mer-gym embed``: build (or load) the bank and print a one-paragraph summary."""
    import sys

    from mer_gym.models.frozen import FrozenModelError

    dtype = "float16" if args.float16 else "float32"
    t0 = time.perf_counter()
    try:
        bank = build_bank(
            args.corpus,
            models_dir=args.models_dir,
            out=args.out,
            dtype=dtype,
            batch_size=args.batch_size,
            n_jobs=args.jobs,
            progress=not args.quiet,
            force=args.force,
        )
    except (BankError, FrozenModelError) as exc:
        print(f"mer-gym embed: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out is not None else Path(args.corpus) / f"bank-{dtype}"
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    if bank.from_cache:
        status = (
            f"cache hit (key {bank.meta['key']}): loaded in {time.perf_counter() - t0:.1f} s, "
            "throughput as measured when it was built"
        )
    else:
        status = f"cache miss (key {bank.meta['key']}): built"
    print(f"{bank.summary()} Written to {out} ({size / 1e6:.1f} MB on disk); {status}.")
    return 0


def add_embed_command(subparsers: Any) -> Any:
    """Register ``embed`` on the ``mer-gym`` subparsers; returns its parser."""
    p = subparsers.add_parser(
        "embed", help="run the frozen models over a corpus and write its embedding bank"
    )
    p.add_argument("--corpus", required=True, help="folder written by `mer-gym corpus`")
    p.add_argument(
        "--models-dir",
        default=None,
        help="folder with face_cnn/speech_lstm/fusion_head .keras files and their cards "
        "(default: frozen_models/)",
    )
    p.add_argument("--out", default=None, help="bank folder (default: <corpus>/bank-float32 or bank-float16)")
    p.add_argument("--float16", action="store_true", help="store the arrays as float16 (half the size)")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="inference batch size (default 256)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="preprocessing workers if the corpus arrays are not cached")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached bank is current")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_embed)
    return p


__all__ = [
    "AV_DATASETS",
    "BANK_FORMAT",
    "DTYPES",
    "BankError",
    "EmbeddingBank",
    "FrozenModels",
    "add_embed_command",
    "bank_from_arrays",
    "bank_key",
    "build_bank",
    "build_bank_from_dataset",
    "check_dtype",
    "cmd_embed",
    "infer",
    "load_frozen_models",
    "model_sha256s",
    "paired_records_arrays",
]
