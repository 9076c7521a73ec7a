"""The user pool: what the frozen models see of each simulated user, per emotion and capture condition.

A simulated user is one person of the pool. Every interaction of a pilot shows the system one face
frame and one utterance of that person feeling one emotion, captured under the conditions of the
moment (a dim room, a hand over the mouth, babble at 10 dB ...). The pool holds, for every person,
emotion, *moment* (one rendered repetition) and named capture condition, what the frozen models
make of it: each model's own softmax and the fusion head's per-sample projection
(:class:`~mer_gym.models.fusion.FusionProjection`), so that a stream replays the frozen models at
any fusion weight with numpy alone.

The arrays are dense::

    face_softmax   (P, L, M, Cf, 6)     face_proj    (P, L, M, Cf, H)
    speech_softmax (P, L, M, Cs, 6)     speech_proj  (P, L, M, Cs, H)
    n_moments      (P, L)               moments available per person and emotion

``P`` persons, ``L`` the six canonical emotions (:data:`mer_gym.labels.EMOTIONS` order), ``M``
moments, ``Cf``/``Cs`` the named face and speech conditions. For a generated corpus every moment is
the *same* rendered instant re-rendered under each condition (as
:func:`mer_gym.models.evaluate.condition_arrays` does for the model cards), so a condition changes
nothing but the capture. A real paired corpus (RAVDESS, CREMA-D) has one condition, ``recorded``,
and a ragged number of moments per actor and emotion (``n_moments``).

A *row* is a flat index into the first four axes, ``((p * L + l) * M + m) * C + c``
(:meth:`UserPool.face_row`, :meth:`UserPool.speech_row`); streams store rows.

The shipped pool (``frozen_models/user_pool.npz`` + ``user_pool.json``) is built by ``make pool``:
the ``users`` corpus preset (32 persons never seen in training, 8 moments per emotion) rendered
under the five face and six speech conditions of the model cards plus :func:`pool_extra_conditions`
(face ``dark``, speech ``snr_-10db``). :func:`default_pool` loads it and checks its sha256 first.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer_gym.labels import EMOTIONS
from mer_gym.models.data import file_sha256
from mer_gym.models.fusion import COMPUTE_DTYPE, FusionProjection, check_w_face

POOL_FORMAT = 1
POOL_NAME = "user_pool"
RECORDED = "recorded"
"""The single capture condition of a real corpus: as it was recorded."""
PERSON_COLUMNS = ("person_id", "sex", "facial_expressivity", "vocal_expressivity")
_ARRAYS = ("face_softmax", "face_proj", "speech_softmax", "speech_proj", "n_moments")
_HEAD = ("W_face", "W_speech", "b1", "W2", "b2")


class PoolError(ValueError):
    """A user pool is missing, corrupt, or lacks what a profile asks for."""


@dataclass(frozen=True, eq=False)
class UserPool:
    """Per person, emotion, moment and capture condition: the frozen models' outputs.

    Attributes:
        persons: one row per person: ``person_id``, ``sex``, ``facial_expressivity``,
            ``vocal_expressivity`` (NaN where unknown, e.g. for a real corpus).
        face_conditions: names of the face capture conditions (axis ``Cf``).
        speech_conditions: names of the speech capture conditions (axis ``Cs``).
        face_softmax, face_proj, speech_softmax, speech_proj: see the module docstring.
        n_moments: (P, L) moments per person and emotion; entries beyond it are padding.
        projection: the fusion head's weights.
        meta: provenance (source corpus, model sha256s, dtype, build time).
    """

    persons: pd.DataFrame
    face_conditions: tuple[str, ...]
    speech_conditions: tuple[str, ...]
    face_softmax: np.ndarray
    face_proj: np.ndarray
    speech_softmax: np.ndarray
    speech_proj: np.ndarray
    n_moments: np.ndarray
    projection: FusionProjection
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        persons = self.persons.reset_index(drop=True)
        missing = [c for c in PERSON_COLUMNS if c not in persons.columns]
        if missing:
            raise PoolError(f"the pool's person table lacks column(s) {', '.join(missing)}")
        object.__setattr__(self, "persons", persons)
        object.__setattr__(self, "face_conditions", tuple(self.face_conditions))
        object.__setattr__(self, "speech_conditions", tuple(self.speech_conditions))
        p, l_ = len(persons), len(EMOTIONS)
        m = self.face_softmax.shape[2] if self.face_softmax.ndim == 5 else -1
        h = self.projection.embedding_dim
        want = {
            "face_softmax": (p, l_, m, len(self.face_conditions), len(EMOTIONS)),
            "face_proj": (p, l_, m, len(self.face_conditions), h),
            "speech_softmax": (p, l_, m, len(self.speech_conditions), len(EMOTIONS)),
            "speech_proj": (p, l_, m, len(self.speech_conditions), h),
            "n_moments": (p, l_),
        }
        for name, shape in want.items():
            got = getattr(self, name).shape
            if got != shape:
                raise PoolError(
                    f"pool array {name} has shape {got}, expected {shape} "
                    "(persons, emotions, moments, conditions, ...): the pool is corrupt; rebuild it"
                )
        if (self.n_moments < 0).any() or (self.n_moments > m).any():
            raise PoolError(f"pool n_moments must lie in [0, {m}]: the pool is corrupt; rebuild it")
        for name in ("face_softmax", "face_proj", "speech_softmax", "speech_proj"):
            arr = getattr(self, name)
            if not np.isfinite(arr).all():
                raise PoolError(f"pool array {name} holds NaN or inf: the pool is corrupt; rebuild it")
            arr.setflags(write=False)
        ids = persons["person_id"].astype(str).tolist()
        if len(set(ids)) != len(ids):
            raise PoolError("the pool's person table repeats a person_id")
        object.__setattr__(self, "_pos", {pid: i for i, pid in enumerate(ids)})

    # ---- shape and lookup --------------------------------------------------------------------

    @property
    def person_ids(self) -> list[str]:
        return self.persons["person_id"].astype(str).tolist()

    @property
    def n_persons(self) -> int:
        return len(self.persons)

    @property
    def max_moments(self) -> int:
        return int(self.face_softmax.shape[2])

    def person_index(self, person_id: str, *, where: str = "person_id") -> int:
        """Position of ``person_id``; a PoolError naming ``where`` and the available ids if absent."""
        try:
            return self._pos[str(person_id)]  # type: ignore[attr-defined]
        except KeyError:
            ids = self.person_ids
            shown = ", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "")
            raise PoolError(
                f"{where} = {person_id!r}: the user pool has no such person ({len(ids)} persons: "
                f"{shown}); pick one of them or build a pool that holds it (`mer-gym pool`)"
            ) from None

    def condition_index(self, modality: str, name: str, *, where: str = "condition") -> int:
        names = self.face_conditions if modality == "face" else self.speech_conditions
        try:
            return names.index(name)
        except ValueError:
            raise PoolError(
                f"{where} = {name!r}: the user pool has no {modality} condition of that name "
                f"(it has {', '.join(names)})"
            ) from None

    def face_row(self, p, label, moment, condition) -> np.ndarray:
        """Flat row(s) into the face arrays for person, label, moment and condition index(es)."""
        m, c = self.max_moments, len(self.face_conditions)
        return ((np.asarray(p) * len(EMOTIONS) + label) * m + moment) * c + condition

    def speech_row(self, p, label, moment, condition) -> np.ndarray:
        """Flat row(s) into the speech arrays for person, label, moment and condition index(es)."""
        m, c = self.max_moments, len(self.speech_conditions)
        return ((np.asarray(p) * len(EMOTIONS) + label) * m + moment) * c + condition

    def face_flat(self, name: str) -> np.ndarray:
        """``face_softmax`` or ``face_proj`` with the first four axes flattened (rows)."""
        arr = getattr(self, f"face_{name}")
        return arr.reshape(-1, arr.shape[-1])

    def speech_flat(self, name: str) -> np.ndarray:
        arr = getattr(self, f"speech_{name}")
        return arr.reshape(-1, arr.shape[-1])

    # ---- fusion ------------------------------------------------------------------------------

    def fused_softmax(
        self,
        face_rows: np.ndarray | int,
        speech_rows: np.ndarray | int,
        w_face: float | np.ndarray,
        face_present: np.ndarray | bool = True,
        speech_present: np.ndarray | bool = True,
    ) -> np.ndarray:
        """The fusion head's prediction for face row(s) and speech row(s) at face weight ``w_face``.

        An absent modality (camera off, silence) enters the head as a zero embedding, as the head
        was trained with whole-modality dropout. Returns float64 probabilities (..., 6).
        """
        pf = np.asarray(self.face_flat("proj")[face_rows], COMPUTE_DTYPE)
        ps = np.asarray(self.speech_flat("proj")[speech_rows], COMPUTE_DTYPE)
        if face_present is not True:
            pf = pf * np.asarray(face_present, COMPUTE_DTYPE)[..., None]
        if speech_present is not True:
            ps = ps * np.asarray(speech_present, COMPUTE_DTYPE)[..., None]
        n = None if pf.ndim == 1 else pf.shape[0]
        return self.projection.fused_softmax(pf, ps, check_w_face(w_face, n))

    def late_softmax(self, face_rows, speech_rows, w_face) -> np.ndarray:
        """Weighted average of the two models' own softmaxes (late fusion), float64."""
        pf = np.asarray(self.face_flat("softmax")[face_rows], COMPUTE_DTYPE)
        ps = np.asarray(self.speech_flat("softmax")[speech_rows], COMPUTE_DTYPE)
        w = np.asarray(w_face, COMPUTE_DTYPE)[..., None] if np.ndim(w_face) else w_face
        out = w * pf + (1.0 - w) * ps
        return out / out.sum(axis=-1, keepdims=True)

    # ---- what a researcher checks first -----------------------------------------------------

    def accuracy(self, modality: str) -> pd.DataFrame:
        """Unimodal accuracy per person (rows) and condition (columns), over every moment and emotion."""
        probs = self.face_softmax if modality == "face" else self.speech_softmax
        names = self.face_conditions if modality == "face" else self.speech_conditions
        pred = probs.argmax(axis=-1)  # (P, L, M, C)
        truth = np.arange(len(EMOTIONS))[None, :, None, None]
        valid = (np.arange(self.max_moments)[None, None, :] < self.n_moments[:, :, None])[..., None]
        hits = ((pred == truth) & valid).sum(axis=(1, 2))
        total = valid.sum(axis=(1, 2))
        return pd.DataFrame(hits / np.maximum(total, 1), index=self.person_ids, columns=list(names))

    def summary(self) -> str:
        return (
            f"user pool: {self.n_persons} persons x {len(EMOTIONS)} emotions x up to "
            f"{self.max_moments} moments; face conditions {', '.join(self.face_conditions)}; "
            f"speech conditions {', '.join(self.speech_conditions)}; dtype {self.face_proj.dtype}"
        )

    # ---- persistence -------------------------------------------------------------------------

    def save(self, directory: str | Path, name: str = POOL_NAME) -> Path:
        """Write ``<name>.npz`` (no pickles) and ``<name>.json`` (meta, persons, sha256) atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        npz, card = directory / f"{name}.npz", directory / f"{name}.json"
        tmp = directory / f".{name}.npz.partial"
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        arrays.update({f"head_{k}": getattr(self.projection, k) for k in _HEAD})
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        sha = file_sha256(tmp)
        meta = {
            **self.meta,
            "format": POOL_FORMAT,
            "npz_sha256": sha,
            "face_conditions": list(self.face_conditions),
            "speech_conditions": list(self.speech_conditions),
            "persons": json.loads(self.persons[list(PERSON_COLUMNS)].to_json(orient="records")),
        }
        tmp_card = directory / f".{name}.json.partial"
        tmp_card.write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(tmp, npz)
        os.replace(tmp_card, card)
        return npz

    @classmethod
    def load(cls, directory: str | Path, name: str = POOL_NAME, *, verify_hash: bool = True) -> UserPool:
        """Read a pool written by :meth:`save`, refusing one whose npz does not match its sha256."""
        directory = Path(directory)
        npz, card = directory / f"{name}.npz", directory / f"{name}.json"
        hint = "rebuild it with `make pool` (or `mer-gym pool --corpus <users corpus> --out <dir>`)"
        if not npz.is_file() or not card.is_file():
            raise PoolError(f"no user pool at {directory}: expected {npz.name} and {card.name}; {hint}")
        try:
            meta = json.loads(card.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PoolError(f"{card} is not valid JSON ({exc}); {hint}") from None
        if not isinstance(meta, dict):
            raise PoolError(f"{card}: expected a JSON object written by UserPool.save; {hint}")
        if meta.get("format") != POOL_FORMAT:
            raise PoolError(f"{card}: pool format {meta.get('format')!r}, expected {POOL_FORMAT}; {hint}")
        if verify_hash and file_sha256(npz) != meta.get("npz_sha256"):
            raise PoolError(f"{npz}: sha256 does not match {card.name}; the file was changed or damaged; {hint}")
        try:
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # zip and npz errors come in many types
            raise PoolError(f"{npz} cannot be read ({type(exc).__name__}: {exc}); {hint}") from None
        try:
            projection = FusionProjection(**{k: arrays[f"head_{k}"] for k in _HEAD})
            persons = pd.DataFrame(meta["persons"], columns=list(PERSON_COLUMNS))
            return cls(
                persons=persons,
                face_conditions=tuple(meta["face_conditions"]),
                speech_conditions=tuple(meta["speech_conditions"]),
                **{k: arrays[k] for k in _ARRAYS},
                projection=projection,
                meta={k: v for k, v in meta.items() if k != "persons"},
            )
        except KeyError as exc:
            raise PoolError(f"{directory}: the pool lacks {exc}; {hint}") from None
        except PoolError:
            raise
        except (TypeError, ValueError) as exc:
            raise PoolError(f"{directory}: the pool is malformed ({exc}); {hint}") from None


def default_dir() -> Path:
    """The folder of the shipped pool (``frozen_models/``)."""
    from mer_gym.models.frozen import default_dir as models_dir

    return Path(models_dir())


@functools.lru_cache(maxsize=4)
def _load_cached(directory: str, name: str) -> UserPool:
    return UserPool.load(directory, name)


def default_pool(directory: str | Path | None = None, name: str = POOL_NAME) -> UserPool:
    """The shipped user pool (loaded once per process; its sha256 is checked on first load)."""
    return _load_cached(str(Path(directory) if directory else default_dir()), name)


# ---------------------------------------------------------------------------------------------
# Building a pool


def _dense(
    index: pd.DataFrame, values: dict[str, list[np.ndarray]], n_cond: int, person_ids: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Scatter per-sample arrays (one list entry per condition) into (P, L, M, C, D) arrays."""
    pos = {pid: i for i, pid in enumerate(person_ids)}
    p = index["person_id"].astype(str).map(pos).to_numpy()
    lab = index["label_index"].to_numpy(int)
    moment = index.groupby(["person_id", "label_index"], sort=False).cumcount().to_numpy()
    m_max = int(moment.max()) + 1
    n_moments = np.zeros((len(person_ids), len(EMOTIONS)), np.int32)
    np.maximum.at(n_moments, (p, lab), moment + 1)
    out = {}
    for name, per_cond in values.items():
        d = per_cond[0].shape[1]
        arr = np.zeros((len(person_ids), len(EMOTIONS), m_max, n_cond, d), per_cond[0].dtype)
        for c, v in enumerate(per_cond):
            arr[p, lab, moment, c] = v
        # padding: repeat moment 0 so that a stray index still holds a real sample
        for pi, li in zip(*np.nonzero(n_moments < m_max), strict=True):
            if n_moments[pi, li]:
                arr[pi, li, n_moments[pi, li] :] = arr[pi, li, 0]
        out[name] = arr
    return out, n_moments


def pool_from_bank(bank: Any, *, dtype: str = "float16") -> UserPool:
    """A one-condition (``recorded``) pool from an :class:`~mer_gym.bank.EmbeddingBank`, e.g. of
    CREMA-D or RAVDESS: every actor becomes a person, every clip a moment."""
    index = bank.index.reset_index(drop=True)
    ids = sorted(index["person_id"].astype(str).unique())
    values = {
        "face_softmax": [np.asarray(bank.face_softmax)],
        "face_proj": [np.asarray(bank.face_proj)],
        "speech_softmax": [np.asarray(bank.speech_softmax)],
        "speech_proj": [np.asarray(bank.speech_proj)],
    }
    dense, n_moments = _dense(index, values, 1, ids)
    persons = pd.DataFrame({"person_id": ids})
    first = index.drop_duplicates("person_id").set_index("person_id")
    persons["sex"] = [str(first["sex"].get(i, "unknown")) if "sex" in first else "unknown" for i in ids]
    persons["facial_expressivity"] = np.nan
    persons["vocal_expressivity"] = np.nan
    return UserPool(
        persons=persons,
        face_conditions=(RECORDED,),
        speech_conditions=(RECORDED,),
        face_softmax=dense["face_softmax"].astype(dtype),
        face_proj=dense["face_proj"].astype(dtype),
        speech_softmax=dense["speech_softmax"].astype(dtype),
        speech_proj=dense["speech_proj"].astype(dtype),
        n_moments=n_moments,
        projection=bank.projection,
        meta={"source": {"kind": "bank", **dict(bank.meta.get("source", {}))}, "models": bank.meta.get("models")},
    )


def pool_extra_conditions() -> tuple[dict[str, Any], dict[str, Any]]:
    """Conditions of the pool beyond the model cards': the extremes a user can live in.

    * face ``dark``: a nearly unlit room (illumination 0.08, sensor noise sigma 8 gray levels).
      Histogram equalization (Eq. 1) recovers the merely dim frames of ``low_light`` but not
      these; the Haar cascade finds no face.
    * speech ``snr_-10db``: babble 10 dB louder than the speech (a phone in a pocket in a crowd).

    Both are design defaults (D); the pool's table in docs/users.md shows what they cost.
    """
    from simulators.corpus.faces import FaceConditions
    from simulators.corpus.speech import SpeechConditions

    return (
        {"dark": FaceConditions(illumination=0.08, noise_sigma=8.0)},
        {"snr_-10db": SpeechConditions(noise_type="babble", snr_db=-10.0)},
    )


def build_pool(
    corpus: str | Path,
    models_dir: str | Path | None = None,
    *,
    face_conditions: Sequence[str] | None = None,
    speech_conditions: Sequence[str] | None = None,
    dtype: str = "float16",
    n_jobs: int = 1,
    progress: bool = True,
) -> UserPool:
    """The pool of a generated corpus' ``user_pool`` split, re-rendered under named conditions.

    Every moment is rendered once per face condition (speech clean) and once per speech condition
    (face clean) with :func:`~mer_gym.models.evaluate.condition_arrays`, then run through the
    frozen models. Conditions default to those of the model cards plus
    :func:`pool_extra_conditions`.
    """
    from mer_gym.bank import bank_from_arrays, load_frozen_models
    from mer_gym.models.evaluate import FACE_CONDITIONS, SPEECH_CONDITIONS, condition_arrays

    t0 = time.perf_counter()
    corpus = Path(corpus)
    extra_face, extra_speech = pool_extra_conditions()
    fcs = tuple(face_conditions or (*FACE_CONDITIONS, *extra_face))
    scs = tuple(speech_conditions or (*SPEECH_CONDITIONS, *extra_speech))
    models = load_frozen_models(models_dir)
    banks: dict[tuple[str, str], Any] = {}

    def bank_for(fc: str, sc: str) -> Any:
        if (fc, sc) not in banks:
            arrays = condition_arrays(
                corpus, fc, sc, split="user_pool", n_jobs=n_jobs, extra_face=extra_face, extra_speech=extra_speech
            )
            banks[(fc, sc)] = bank_from_arrays(arrays, models, dtype="float32", progress=progress)
        return banks[(fc, sc)]

    face_banks = [bank_for(fc, "clean") for fc in fcs]
    speech_banks = [bank_for("clean", sc) for sc in scs]
    index = face_banks[0].index
    if len(index) == 0:
        raise PoolError(f"{corpus} has no user_pool samples: generate it with `mer-gym corpus --preset users`")
    ids = sorted(index["person_id"].astype(str).unique())
    values = {
        "face_softmax": [b.face_softmax for b in face_banks],
        "face_proj": [b.face_proj for b in face_banks],
    }
    face, n_moments = _dense(index, values, len(fcs), ids)
    values = {
        "speech_softmax": [b.speech_softmax for b in speech_banks],
        "speech_proj": [b.speech_proj for b in speech_banks],
    }
    speech, _ = _dense(index, values, len(scs), ids)
    people = pd.read_parquet(corpus / "persons.parquet").set_index("person_id").loc[ids].reset_index()
    from simulators.corpus.writer import load_preset

    preset = load_preset(corpus / "preset.yaml")
    return UserPool(
        persons=people[list(PERSON_COLUMNS)],
        face_conditions=fcs,
        speech_conditions=scs,
        face_softmax=face["face_softmax"].astype(dtype),
        face_proj=face["face_proj"].astype(dtype),
        speech_softmax=speech["speech_softmax"].astype(dtype),
        speech_proj=speech["speech_proj"].astype(dtype),
        n_moments=n_moments,
        projection=face_banks[0].projection,
        meta={
            "source": {"kind": "generated", "corpus": str(corpus), "preset": preset.name, "seed": preset.seed},
            "models": dict(models.sha256),
            "dtype": dtype,
            "build_s": round(time.perf_counter() - t0, 1),
            "command": f"mer-gym pool --corpus {corpus}",
        },
    )

