"""The records every dataset loader returns, and the result that accounts for what it skipped.

A loader turns one corpus on disk into a :class:`LoadResult`: a list of :class:`FaceRecord` or
:class:`SpeechRecord` (one per usable sample, labelled with a canonical emotion) and a list of
:class:`Skip` entries, one per file or row it did not turn into a record, each with the reason. A
loader never returns fewer samples silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mer_gym.labels import EMOTIONS, validate_emotion


class DatasetError(ValueError):
    """A corpus on disk does not match its published layout, or a file in it is unreadable.

    Attributes:
        source: The file, row or folder at fault (``""`` when none applies).
        reason: A short, path-free reason, used to group skipped files in :meth:`LoadResult.summary`.
    """

    def __init__(self, message: str, *, source: str = "", reason: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.reason = reason if reason is not None else message


class Skip(NamedTuple):
    """One file or row a loader did not turn into a record."""

    source: str
    reason: str


@dataclass(frozen=True, eq=False)
class FaceRecord:
    """One face image with its canonical emotion.

    Attributes:
        dataset: Corpus name, e.g. ``"ckplus"``.
        subject: The person shown (``"S005"``, RAVDESS actor ``"12"``), or None where the corpus has
            no subject ids (FER-2013).
        label: Canonical emotion name (one of :data:`mer_gym.labels.EMOTIONS`).
        image: 2-D ``uint8`` gray image, H x W, as stored (no crop, no resize).
        source: Where it came from: a file path, or ``"<csv>:<line>"`` for FER-2013.
        clip_id: Id shared by the face and speech records of one audio-visual clip (RAVDESS,
            CREMA-D; match on ``(dataset, clip_id)``), the sequence id for CK+, else None.
        meta: Dataset-specific fields (usage, intensity, sentence, sex, frame index, ...).
    """

    dataset: str
    subject: str | None
    label: str
    image: np.ndarray
    source: str
    clip_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_emotion(self.label, what=f"{self.dataset} face record label ({self.source})")
        img = self.image
        if (
            not isinstance(img, np.ndarray)
            or img.ndim != 2
            or img.dtype != np.uint8
            or img.size == 0
        ):
            raise ValueError(
                f"{self.source}: FaceRecord.image must be a non-empty 2-D uint8 array, got "
                f"{getattr(img, 'dtype', type(img).__name__)} with shape {getattr(img, 'shape', None)}"
            )

    @property
    def user(self) -> str | None:
        """The natural user id: the subject (one person = one user)."""
        return self.subject


@dataclass(frozen=True, eq=False)
class SpeechRecord:
    """One utterance with its canonical emotion.

    Attributes:
        dataset: Corpus name, e.g. ``"emodb"``.
        speaker: The speaker id (EMO-DB ``"03"``, RAVDESS ``"12"``, CREMA-D ``"1001"``).
        label: Canonical emotion name.
        waveform: 1-D ``float32`` mono samples in [-1, 1] at the file's native rate.
        sample_rate: Native sample rate of the file, Hz (never resampled by a loader).
        source: The file path.
        clip_id: As for :class:`FaceRecord`; the utterance id for single-modality corpora.
        meta: Dataset-specific fields; ``channels`` and ``downmix`` say how stereo became mono.
    """

    dataset: str
    speaker: str
    label: str
    waveform: np.ndarray
    sample_rate: int
    source: str
    clip_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_emotion(self.label, what=f"{self.dataset} speech record label ({self.source})")
        wav = self.waveform
        if (
            not isinstance(wav, np.ndarray)
            or wav.ndim != 1
            or wav.dtype != np.float32
            or wav.size == 0
        ):
            raise ValueError(
                f"{self.source}: SpeechRecord.waveform must be a non-empty 1-D float32 array, got "
                f"{getattr(wav, 'dtype', type(wav).__name__)} with shape {getattr(wav, 'shape', None)}"
            )
        if int(self.sample_rate) <= 0:
            raise ValueError(f"{self.source}: sample_rate must be positive, got {self.sample_rate}")

    @property
    def user(self) -> str:
        """The natural user id: the speaker (one actor = one user)."""
        return self.speaker

    @property
    def duration_s(self) -> float:
        """Length of the waveform in seconds."""
        return self.waveform.size / self.sample_rate


@dataclass(frozen=True, eq=False)
class LoadResult:
    """What a loader found: the records, and every file or row it skipped with the reason.

    Attributes:
        dataset: Corpus name.
        root: The folder or file the loader read.
        records: The usable samples, in a deterministic (sorted-path or file-row) order.
        skipped: One :class:`Skip` per file, row or sequence not turned into a record.
        truncated: True when ``limit=`` stopped the loader before the end of the corpus.
    """

    dataset: str
    root: str
    records: list[Any]
    skipped: list[Skip] = field(default_factory=list)
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.records)

    def counts_by_label(self) -> dict[str, int]:
        """Number of records per canonical emotion, in canonical order, zeros included."""
        counts = Counter(r.label for r in self.records)
        return {e: counts.get(e, 0) for e in EMOTIONS}

    def counts_by_reason(self) -> dict[str, int]:
        """Number of skipped entries per reason, most frequent first."""
        return dict(Counter(s.reason for s in self.skipped).most_common())

    def users(self) -> list[str]:
        """Sorted distinct user ids (subjects or speakers); empty for corpora without them."""
        return sorted({r.user for r in self.records if r.user is not None})

    def summary(self) -> str:
        """One-paragraph account: records per label, skipped per reason, truncation."""
        labels = ", ".join(f"{k} {v}" for k, v in self.counts_by_label().items())
        lines = [f"{self.dataset}: {len(self.records)} records from {self.root} ({labels})"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {n:6d}  {reason}" for reason, n in self.counts_by_reason().items()]
        if self.truncated:
            lines.append("stopped early by limit=")
        return "\n".join(lines)


def pair_clips(
    faces: LoadResult, speech: LoadResult
) -> tuple[list[tuple[FaceRecord, SpeechRecord]], list[str]]:
    """Match face and speech records of the same audio-visual clip on ``(dataset, clip_id)``.

    Args:
        faces: Result of a face loader (e.g. ``load_ravdess_faces``).
        speech: Result of a speech loader of the same corpus (e.g. ``load_ravdess_speech``).

    Returns:
        The pairs, in the face records' order, and the sorted clip ids found in only one of them.

    Raises:
        DatasetError: If a matched pair disagrees on its label or user, which means the two results
            do not come from the same corpus release.
    """
    by_clip = {(r.dataset, r.clip_id): r for r in speech.records if r.clip_id is not None}
    pairs: list[tuple[FaceRecord, SpeechRecord]] = []
    seen: set[tuple[str, str | None]] = set()
    for face in faces.records:
        key = (face.dataset, face.clip_id)
        sp = by_clip.get(key)
        if face.clip_id is None or sp is None:
            continue
        if sp.label != face.label or sp.user != face.user:
            raise DatasetError(
                f"clip {face.clip_id}: face {face.source} ({face.label}, user {face.user}) and "
                f"speech {sp.source} ({sp.label}, user {sp.user}) disagree; are they the same corpus?",
                source=face.source,
            )
        pairs.append((face, sp))
        seen.add(key)
    unmatched = {f.clip_id for f in faces.records if (f.dataset, f.clip_id) not in seen}
    unmatched |= {k[1] for k in by_clip if k not in seen}
    return pairs, sorted(c for c in unmatched if c is not None)
