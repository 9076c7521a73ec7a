"""Model-ready arrays from a corpus: §5.1 face crops and §5.2 MFCC sequences, paired per sample.

:func:`corpus_arrays` reads a generated corpus (``mer-gym corpus``), runs the two preprocessors over
every sample (joblib workers) and caches the result as ``<corpus>/arrays-<key>.npz`` where the key
hashes the manifest and both preprocessor configurations; a later call with the same inputs loads
the cache. :func:`records_arrays` does the same for loader records of a real dataset.

Faces are kept as ``uint8`` (N, 112, 112) to save memory (72 MB for 5,760 frames); use
:func:`face_batch` to get the model's float input. Speech is ``float32`` (N, 120, 13) with the
padded tail at exactly 0.0 (the Masking value of Table 6).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import soundfile as sf
from joblib import Parallel, delayed

from mer_gym.hashing import file_sha256
from mer_gym.labels import emotion_index
from mer_gym.preprocessing.face import FacePreprocessor
from mer_gym.preprocessing.speech import SpeechPreprocessor
from simulators.corpus.writer import MANIFEST, read_manifest

# The speech front end the shipped models use: Table 6's 120 × 13 MFCC, keeping the middle of
# longer utterances (the generated sadness/disgust utterances run up to 2.9 s; 120 frames = 1.2 s).
SPEECH_PREP = SpeechPreprocessor(truncate="center")
FACE_PREP = FacePreprocessor()
_CHUNK = 64


@dataclass(frozen=True)
class Arrays:
    """Preprocessed, paired samples.

    Attributes:
        index: one row per sample: ``sample_id``, ``person_id``, ``split``, ``label``,
            ``label_index`` and the capture-condition columns (``face_*``, ``speech_*``).
        faces: ``uint8`` (N, size, size) crops (histogram-equalized), or None when absent.
        face_detected: whether the Haar cascade found the face (else the centred fallback crop).
        speech: ``float32`` (N, frames, features) MFCC sequences, or None when absent.
        speech_frames: valid (unpadded) frames per utterance.
    """

    index: pd.DataFrame
    faces: np.ndarray | None
    face_detected: np.ndarray | None
    speech: np.ndarray | None
    speech_frames: np.ndarray | None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> np.ndarray:
        return self.index["label_index"].to_numpy(np.int64)

    def subset(self, mask: np.ndarray | Sequence[bool] | pd.Series) -> Arrays:
        """The samples where ``mask`` is true (index renumbered from 0)."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != (len(self),):
            raise ValueError(f"mask has shape {m.shape}, expected ({len(self)},)")

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[m]

        return Arrays(
            self.index[m].reset_index(drop=True),
            take(self.faces),
            take(self.face_detected),
            take(self.speech),
            take(self.speech_frames),
        )

    def save_npz(self, path: Path) -> None:
        """Cache the arrays (not the index) at ``path``, atomically; read back with :func:`load_npz`."""
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez(
            tmp,
            sample_id=self.index["sample_id"].to_numpy(str),
            faces=self.faces,
            face_detected=self.face_detected,
            speech=self.speech,
            speech_frames=self.speech_frames,
        )
        tmp.replace(path)

    def split(self, name: str) -> Arrays:
        """One corpus split (``train``, ``val``, ``test``, ``user_pool``)."""
        if "split" not in self.index:
            raise KeyError("these arrays carry no 'split' column")
        return self.subset(self.index["split"].to_numpy() == name)


def load_npz(path: Path, index: pd.DataFrame) -> Arrays | None:
    """The arrays cached at ``path`` by :meth:`Arrays.save_npz`, or None when the file is absent
    or holds other samples than ``index``."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if list(z["sample_id"]) != index["sample_id"].tolist():
            return None
        return Arrays(index, z["faces"], z["face_detected"], z["speech"], z["speech_frames"])


def face_batch(faces_u8: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) crops → the CNN's float32 (N, H, W, 1) input in [0, 1]."""
    return (faces_u8.astype(np.float32) / np.float32(255.0))[..., np.newaxis]


def config_key(*parts: object) -> str:
    """A short stable hash of JSON-able parts (dataclasses are expanded)."""

    def plain(p: object) -> object:
        return dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p  # type: ignore[arg-type]

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def manifest_hash(root: str | Path) -> str:
    """sha256 of a generated corpus' ``manifest.parquet`` (the corpus' identity in caches and cards)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        read_manifest(root)  # raises the explanatory FileNotFoundError
    return file_sha256(path)


def paired_index(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per sample from the manifest's face and speech rows (conditions prefixed)."""
    keys = ["sample_id", "person_id", "split", "sex", "label", "label_index", "repetition", "intensity"]
    face = manifest[manifest["modality"] == "face"]
    speech = manifest[manifest["modality"] == "speech"]
    fcols = [c for c in face.columns if c.startswith("face_")]
    scols = [c for c in speech.columns if c.startswith("speech_")]
    left = face[[*keys, "path", "expressed_intensity", *fcols]].rename(
        columns={"path": "face_path", "expressed_intensity": "face_expressed_intensity"}
    )
    right = speech[["sample_id", "path", "expressed_intensity", "duration_s", *scols]].rename(
        columns={"path": "speech_path", "expressed_intensity": "speech_expressed_intensity"}
    )
    out = left.merge(right, on="sample_id", how="inner", validate="one_to_one")
    if len(out) != len(face) or len(out) != len(speech):
        raise ValueError(
            f"manifest pairs {len(out)} samples but has {len(face)} face and {len(speech)} speech rows: "
            "regenerate the corpus with `mer-gym corpus`"
        )
    return out.sort_values("sample_id", kind="stable").reset_index(drop=True)


def _faces_chunk(root: Path, paths: list[str], prep: FacePreprocessor) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty((len(paths), prep.size, prep.size), np.uint8)
    det = np.empty(len(paths), bool)
    for i, rel in enumerate(paths):
        img = cv2.imread(str(root / rel), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise OSError(f"{root / rel}: unreadable image; regenerate the corpus with `mer-gym corpus`")
        res = prep(img, name=rel)
        out[i] = np.round(res.array[..., 0] * 255.0).astype(np.uint8)
        det[i] = res.detected
    return out, det


def _speech_chunk(root: Path, paths: list[str], prep: SpeechPreprocessor) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty((len(paths), prep.max_frames, prep.n_features), np.float32)
    n = np.empty(len(paths), np.int32)
    for i, rel in enumerate(paths):
        wave, sr = sf.read(root / rel, dtype="float32", always_2d=False)
        feat = prep(wave, sr, name=rel)
        out[i], n[i] = feat.features, feat.n_frames
    return out, n


def _run_chunks(fn, root: Path, paths: list[str], prep: object, n_jobs: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    gen = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(fn)(root, c, prep) for c in chunks)
    results = list(tqdm(gen, total=len(chunks), desc=desc, unit="chunk", disable=not progress))
    if not results:
        return None, None
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def corpus_arrays(
    root: str | Path,
    *,
    face_prep: FacePreprocessor = FACE_PREP,
    speech_prep: SpeechPreprocessor = SPEECH_PREP,
    n_jobs: int = 1,
    cache: bool = True,
    progress: bool = True,
) -> Arrays:
    """Preprocess every sample of a generated corpus (cached beside the corpus)."""
    root = Path(root)
    manifest = read_manifest(root)
    key = config_key(manifest_hash(root), face_prep, speech_prep)
    path = root / f"arrays-{key}.npz"
    index = paired_index(manifest)
    cached = load_npz(path, index) if cache else None
    if cached is not None:
        return cached
    faces, det = _run_chunks(
        _faces_chunk, root, index["face_path"].tolist(), face_prep, n_jobs, "faces", progress
    )
    speech, frames = _run_chunks(
        _speech_chunk, root, index["speech_path"].tolist(), speech_prep, n_jobs, "speech", progress
    )
    arrays = Arrays(index, faces, det, speech, frames)
    if cache:
        arrays.save_npz(path)
    return arrays


def records_arrays(
    faces: Sequence | None = None,
    speech: Sequence | None = None,
    *,
    face_prep: FacePreprocessor = FACE_PREP,
    speech_prep: SpeechPreprocessor = SPEECH_PREP,
) -> tuple[Arrays | None, Arrays | None]:
    """Preprocess loader records (:class:`~mer_gym.datasets.FaceRecord` /
    :class:`~mer_gym.datasets.SpeechRecord`) of a real dataset into unpaired face and speech arrays.

    The index holds ``sample_id`` (the record's source), ``person_id`` (subject/speaker, ``""`` where
    the dataset has none), ``label``, ``label_index`` and ``dataset``.
    """

    def index(records: Sequence, who: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "sample_id": [r.source for r in records],
                "person_id": [getattr(r, who) or "" for r in records],
                "label": [r.label for r in records],
                "label_index": [emotion_index(r.label) for r in records],
                "dataset": [r.dataset for r in records],
            }
        )

    face_arr = speech_arr = None
    if faces:
        batch = face_prep.batch([r.image for r in faces], names=[r.source for r in faces])
        u8 = np.round(batch.arrays[..., 0] * 255.0).astype(np.uint8)
        face_arr = Arrays(index(faces, "subject"), u8, batch.detected, None, None)
    if speech:
        feats = [speech_prep(r.waveform, r.sample_rate, name=r.source) for r in speech]
        speech_arr = Arrays(
            index(speech, "speaker"),
            None,
            None,
            np.stack([f.features for f in feats]),
            np.array([f.n_frames for f in feats], np.int32),
        )
    return face_arr, speech_arr


__all__ = [
    "FACE_PREP",
    "SPEECH_PREP",
    "Arrays",
    "config_key",
    "corpus_arrays",
    "face_batch",
    "file_sha256",
    "load_npz",
    "manifest_hash",
    "paired_index",
    "records_arrays",
]
